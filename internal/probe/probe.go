// Package probe is the workload of live connectivity tests: a server that
// answers on TCP and UDP ports with a token naming its pod, and a client
// that connects to targets and says what came back. Both run inside pods
// of a real cluster (the netfence image: `netfence probe serve` and
// `netfence probe dial`), so that traffic crosses the node's real
// dataplane; the testbed (package testbed) does the same from network
// namespaces it creates.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outcomes of a probe (the testbed's words).
const (
	Reached     = "reached"
	Refused     = "refused"
	Unreachable = "unreachable"
	Timeout     = "timeout"
	WrongReply  = "wrong-reply"
	Failed      = "failed"
	Unprobed    = "unprobed"
)

// Port is a protocol and port number, e.g. TCP/80.
type Port struct {
	Protocol string
	Port     int32
}

func (p Port) String() string { return p.Protocol + "/" + strconv.Itoa(int(p.Port)) }

// ParsePort parses "TCP/80" (the protocol defaults to TCP).
func ParsePort(s string) (Port, error) {
	proto, num, ok := strings.Cut(s, "/")
	if !ok {
		proto, num = "TCP", s
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return Port{}, fmt.Errorf("port %q: want PROTOCOL/NUMBER", s)
	}
	proto = strings.ToUpper(proto)
	switch proto {
	case "TCP", "UDP", "SCTP":
	default:
		return Port{}, fmt.Errorf("port %q: protocol must be TCP, UDP or SCTP", s)
	}
	return Port{Protocol: proto, Port: int32(n)}, nil
}

// Token is the greeting of the server of pod key.
func Token(key string) string { return "netfence-probe " + key }

// Serve answers on every port until ctx ends: a TCP connection is greeted
// with the token and a newline, a UDP datagram answered with the token, a
// newline and the datagram. SCTP ports are skipped (Go has no SCTP
// sockets). It returns once every listener is open, or the first error.
func Serve(ctx context.Context, token string, ports []Port) error {
	var closers []func() error
	fail := func(err error) error {
		for _, c := range closers {
			c()
		}
		return err
	}
	for _, p := range ports {
		addr := ":" + strconv.Itoa(int(p.Port))
		switch p.Protocol {
		case "TCP":
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fail(fmt.Errorf("listen %s: %w", p, err))
			}
			closers = append(closers, ln.Close)
			go serveTCP(ln, token)
		case "UDP":
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return fail(fmt.Errorf("listen %s: %w", p, err))
			}
			closers = append(closers, pc.Close)
			go serveUDP(pc, token)
		}
	}
	go func() {
		<-ctx.Done()
		for _, c := range closers {
			c()
		}
	}()
	return nil
}

func serveTCP(ln net.Listener, token string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte(token + "\n"))
		}()
	}
}

func serveUDP(pc net.PacketConn, token string) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		reply := append([]byte(token+"\n"), buf[:n]...)
		_, _ = pc.WriteTo(reply, from)
	}
}

// Target is one probe: connect to To on Protocol/Port and expect the
// token Expect.
type Target struct {
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	Expect   string `json:"expect"`
}

// Result is a target's outcome.
type Result struct {
	Target
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// Reached reports whether the probe got through.
func (r Result) Reached() bool { return r.Outcome == Reached }

// DialAll probes the targets, at most parallel at a time, each bounded by
// timeout, and returns the results in the order of targets.
func DialAll(ctx context.Context, targets []Target, parallel int, timeout time.Duration) []Result {
	parallel = min(max(parallel, 1), 256)
	out := make([]Result, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = Dial(ctx, t, timeout)
		}()
	}
	wg.Wait()
	return out
}

// Dial probes one target within timeout.
func Dial(ctx context.Context, t Target, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := Result{Target: t}
	to, err := netip.ParseAddr(t.To)
	if err != nil {
		r.Outcome, r.Detail = Failed, fmt.Sprintf("address %q: %v", t.To, err)
		return r
	}
	addr := netip.AddrPortFrom(to, uint16(t.Port)).String()
	switch strings.ToUpper(t.Protocol) {
	case "TCP":
		r.Outcome, r.Detail = dialTCP(ctx, addr, t.Expect)
	case "UDP":
		r.Outcome, r.Detail = dialUDP(ctx, addr, t.Expect)
	default:
		r.Outcome, r.Detail = Unprobed, t.Protocol+": no sockets for it in Go; not probed"
	}
	return r
}

func dialTCP(ctx context.Context, addr, expect string) (string, string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Classify(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
	if err != nil {
		o, d := Classify(err)
		if o == Timeout {
			d = "connected, but no greeting before the timeout"
		}
		return o, d
	}
	if got := strings.TrimSuffix(line, "\n"); got != expect {
		return WrongReply, fmt.Sprintf("greeting %q, want %q", got, expect)
	}
	return Reached, "connected, greeted"
}

func dialUDP(ctx context.Context, addr, expect string) (string, string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Classify(err)
	}
	defer c.Close()
	nonce := fmt.Sprintf("probe %016x", rand.Uint64())
	want := []byte(expect + "\n" + nonce)
	deadline, _ := ctx.Deadline()
	buf := make([]byte, 2048)
	wrong := ""
	// Resend every 200 ms (datagrams may be lost), at most 25 times.
	for sends := 0; sends < 25 && time.Now().Before(deadline); sends++ {
		if _, err := c.Write([]byte(nonce)); err != nil {
			return Classify(err)
		}
		_ = c.SetReadDeadline(earliest(time.Now().Add(200*time.Millisecond), deadline))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return Classify(err)
			}
			if bytes.Equal(buf[:n], want) {
				return Reached, "reply received"
			}
			wrong = fmt.Sprintf("reply %q, want %q", buf[:n], want)
		}
	}
	if wrong != "" {
		return WrongReply, wrong
	}
	return Timeout, "no reply before the timeout"
}

func earliest(a, b time.Time) time.Time {
	if b.IsZero() || a.Before(b) {
		return a
	}
	return b
}

// Classify names the outcome of a network error: timeout, refused (TCP
// reset, ICMP port unreachable), unreachable (ICMP host, network or
// administratively prohibited) or failed; the detail says more.
func Classify(err error) (outcome, detail string) {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return Timeout, "no answer before the timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return Refused, err.Error()
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return Unreachable, err.Error()
	}
	return Failed, err.Error()
}
