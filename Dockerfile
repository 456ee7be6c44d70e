# netfence agent image: a static binary on a distroless base.
# Build: docker build -t ghcr.io/netfence/netfence:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/netfence ./cmd/netfence

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/netfence /usr/local/bin/netfence
# The agent programs nftables over netlink: it needs NET_ADMIN in the host
# network namespace, which the DaemonSet grants; run as root for that.
USER 0:0
ENTRYPOINT ["/usr/local/bin/netfence"]
