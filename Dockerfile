# netfence agent image: a static binary on a distroless base.
# Build: docker build -t ghcr.io/netfence/netfence:v0.1.0 .
# (optionally --build-arg VERSION=vX.Y.Z; the default is the version in
# cmd/netfence/version.go).
#
# Without Docker, hack/image builds the same content (same binary build
# flags and path, entrypoint, user 65532, version ldflag, CA bundle and
# distroless's users) as a reproducible OCI image tarball,
# bin/images/netfence-<version>.oci.tar; see hack/image and hack/imagebuild.
#
# Base images are pinned by digest (tag kept for the reader). To move to
# newer bases: docker pull IMAGE:TAG && docker inspect --format
# '{{index .RepoDigests 0}}' IMAGE:TAG, and replace the digests below.
FROM golang:1.26-bookworm@sha256:6ef6e30f0ea5c384f6d111cf856e024e3086bbdcb1779da3f3b3fbba0aea53d2 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=
# The same build command as hack/image.
RUN V="${VERSION:-$(sed -n 's/^var version = "\(.*\)"$/\1/p' cmd/netfence/version.go)}" && \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=$V" -o /out/netfence ./cmd/netfence

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/netfence /usr/local/bin/netfence
# A non-privileged default (distroless nonroot). The agent programs
# nftables and conntrack over netlink: the DaemonSet runs it as root
# (runAsUser: 0) with NET_ADMIN only.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/netfence"]
