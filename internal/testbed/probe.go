package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/probe"
)

// Outcome is what a probe observed.
type Outcome string

const (
	// OutcomeReached: TCP connected and read the destination's token; UDP
	// got the destination's reply; SCTP's INIT arrived at a pod serving the
	// port.
	OutcomeReached Outcome = "reached"
	// OutcomeRefused: the destination answered that nothing serves the port
	// (TCP reset, ICMP port unreachable), or an SCTP INIT arrived at a pod
	// that does not serve the port.
	OutcomeRefused Outcome = "refused"
	// OutcomeUnreachable: an ICMP host, network or administratively
	// prohibited error came back.
	OutcomeUnreachable Outcome = "unreachable"
	// OutcomeTimeout: nothing came back within the timeout, as when packets
	// are dropped.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeWrongReply: an answer came, but not the destination pod's.
	OutcomeWrongReply Outcome = "wrong-reply"
	// OutcomeFailed: another network error; see Detail.
	OutcomeFailed Outcome = "failed"
	// OutcomeUnprobed: the probe cannot be made; see Detail.
	OutcomeUnprobed Outcome = "unprobed"
	// OutcomeError: the probe was not run because of a caller or bed error
	// (unknown pod, address outside the bed, bed down, context canceled);
	// see Err.
	OutcomeError Outcome = "error"
)

// ProbeSpec is one probe: from a pod to an address of a pod in the bed.
type ProbeSpec struct {
	// From is the source pod, matched to the bed's pods by namespace and
	// name.
	From *cluster.Pod
	// To must be an address of a pod in the bed.
	To       netip.Addr
	Protocol corev1.Protocol
	Port     int32
}

// String describes the probe as "NAMESPACE/POD -> ADDR:PORT PROTOCOL".
func (s ProbeSpec) String() string {
	from := "<nil>"
	if s.From != nil {
		from = s.From.Key()
	}
	return fmt.Sprintf("%s -> %s %s", from, netip.AddrPortFrom(s.To, uint16(s.Port)), s.Protocol)
}

// Result is the result of a probe.
type Result struct {
	ProbeSpec
	Outcome Outcome
	// Reached is Outcome == OutcomeReached: TCP connected and read the
	// destination pod's token, UDP got the destination pod's reply, or
	// SCTP's INIT reached a pod serving the port.
	Reached bool
	// Unprobed is Outcome == OutcomeUnprobed.
	Unprobed bool
	// Detail describes the outcome in words.
	Detail string
	// Err is set when Outcome is OutcomeError.
	Err error
	// Elapsed is how long the probe took.
	Elapsed time.Duration
}

// String describes the probe and its outcome.
func (r Result) String() string {
	s := fmt.Sprintf("%s: %s", r.ProbeSpec, r.Outcome)
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

// Probe tries to reach port port of address to, which must belong to a pod
// in the bed, from pod from, over proto, waiting at most timeout. Sockets of
// the source are created in the source pod's namespace. The returned error
// is non-nil, and Result.Outcome is OutcomeError, only when the probe could
// not be run (caller error, bed down, ctx done); network outcomes are in the
// Result.
func (b *Bed) Probe(ctx context.Context, from *cluster.Pod, to netip.Addr, proto corev1.Protocol, port int32, timeout time.Duration) (Result, error) {
	start := time.Now()
	to = to.Unmap()
	res := Result{ProbeSpec: ProbeSpec{From: from, To: to, Protocol: proto, Port: port}}
	finish := func(o Outcome, detail string, err error) (Result, error) {
		res.Outcome, res.Detail, res.Err = o, detail, err
		res.Reached = o == OutcomeReached
		res.Unprobed = o == OutcomeUnprobed
		res.Elapsed = time.Since(start)
		return res, err
	}
	fail := func(err error) (Result, error) {
		err = fmt.Errorf("testbed: probe %s: %w", res.ProbeSpec, err)
		return finish(OutcomeError, err.Error(), err)
	}

	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	src, dst, local, err := b.endpoints(from, to)
	if err != nil {
		return fail(err)
	}
	if err := validPort(Port{Protocol: proto, Port: port}); err != nil {
		return fail(err)
	}
	if timeout <= 0 {
		return fail(fmt.Errorf("timeout %v is not positive", timeout))
	}
	if _, err := b.beginOp(); err != nil {
		return fail(err)
	}
	defer b.ops.Done()
	if !local.IsValid() {
		return finish(OutcomeUnprobed, fmt.Sprintf("source pod has no IPv%d address", family(to)), nil)
	}

	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var o Outcome
	var detail string
	switch proto {
	case corev1.ProtocolTCP:
		o, detail, err = b.probeTCP(pctx, src, dst, local, to, port)
	case corev1.ProtocolUDP:
		o, detail, err = b.probeUDP(pctx, src, dst, local, to, port)
	case corev1.ProtocolSCTP:
		o, detail, err = b.probeSCTP(pctx, src, dst, local, to, port)
	}
	if err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		// The caller's context ended, not the probe's own timeout: the
		// outcome says nothing about the network.
		return fail(err)
	}
	return finish(o, detail, nil)
}

// endpoints resolves a probe's source and destination pods, and the source
// address of the destination's family (invalid if the source has none).
func (b *Bed) endpoints(from *cluster.Pod, to netip.Addr) (src, dst *podState, local netip.Addr, err error) {
	if from == nil {
		return nil, nil, netip.Addr{}, errors.New("nil source pod")
	}
	src, ok := b.byKey[from.Key()]
	if !ok {
		return nil, nil, netip.Addr{}, fmt.Errorf("source pod %s is not in the bed (only active pods without host networking are)", from.Key())
	}
	to = to.Unmap()
	dst, ok = b.byAddr[to]
	if !ok {
		return nil, nil, netip.Addr{}, fmt.Errorf("destination %s is not an address of a pod in the bed", to)
	}
	for _, ip := range src.pod.IPs {
		if ip.Is4() == to.Is4() {
			return src, dst, ip, nil
		}
	}
	return src, dst, netip.Addr{}, nil
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return 4
	}
	return 6
}

// classify turns a network error into an outcome.
func classify(err error) (Outcome, string) {
	o, d := probe.Classify(err)
	return Outcome(o), d
}

// dialTCP connects from the source pod's namespace. netErr is the network's
// answer; err is a failure of the bed.
func (b *Bed) dialTCP(ctx context.Context, src *podState, local, to netip.Addr, port int32) (conn *net.TCPConn, netErr, err error) {
	err = inNetNS(src.ns, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(to, uint16(port)).String())
		if err != nil {
			netErr = err
			return nil
		}
		conn = c.(*net.TCPConn)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source namespace %s: %w", src.nsName, err)
	}
	return conn, netErr, nil
}

// readToken reads the greeting line of a TCP server and checks it is dst's
// token.
func readToken(ctx context.Context, c net.Conn, dst *podState) (Outcome, string) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	defer c.SetReadDeadline(time.Time{})
	line := make([]byte, 0, len(dst.token)+1)
	var one [1]byte
	for len(line) <= len(dst.token) {
		n, err := c.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			line = append(line, one[0])
			continue
		}
		if err != nil {
			o, d := classify(err)
			if o == OutcomeTimeout {
				d = "connected, but no greeting before the timeout"
			}
			return o, d
		}
	}
	if string(line) != dst.token {
		return OutcomeWrongReply, fmt.Sprintf("greeting %q, want %q", line, dst.token)
	}
	return OutcomeReached, "connected, greeted by " + dst.key
}

func (b *Bed) probeTCP(ctx context.Context, src, dst *podState, local, to netip.Addr, port int32) (Outcome, string, error) {
	conn, netErr, err := b.dialTCP(ctx, src, local, to, port)
	if err != nil {
		return "", "", err
	}
	if netErr != nil {
		o, d := classify(netErr)
		return o, d, nil
	}
	defer conn.Close()
	o, d := readToken(ctx, conn, dst)
	return o, d, nil
}

// resendInterval is how often UDP and SCTP probes resend within timeout.
func resendInterval(ctx context.Context) time.Duration {
	iv := 250 * time.Millisecond
	if dl, ok := ctx.Deadline(); ok {
		iv = min(iv, max(time.Until(dl)/5, 20*time.Millisecond))
	}
	return iv
}

// defaultDialTimeout bounds Dial when its context has no deadline.
const defaultDialTimeout = 30 * time.Second

// maxSends bounds how many datagrams a UDP or SCTP probe sends.
const maxSends = 50

func (b *Bed) probeUDP(ctx context.Context, src, dst *podState, local, to netip.Addr, port int32) (Outcome, string, error) {
	var conn *net.UDPConn
	var dialErr error
	err := inNetNS(src.ns, func() error {
		conn, dialErr = net.DialUDP("udp",
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, uint16(port))))
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("source namespace %s: %w", src.nsName, err)
	}
	if dialErr != nil {
		return "", "", fmt.Errorf("open UDP socket: %w", dialErr)
	}
	defer conn.Close()

	nonce := fmt.Sprintf("probe %016x", rand.Uint64())
	want := []byte(dst.token + "\n" + nonce)
	deadline, _ := ctx.Deadline()
	iv := resendInterval(ctx)
	buf := make([]byte, 2048)
	var wrong string
	for sends := 0; sends < maxSends && time.Now().Before(deadline); sends++ {
		if _, err := conn.Write([]byte(nonce)); err != nil {
			o, d := classify(err)
			return o, d, nil
		}
		window := earliest(time.Now().Add(iv), deadline)
		_ = conn.SetReadDeadline(window)
		for reads := 0; reads < 64; reads++ {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				o, d := classify(err)
				return o, d, nil
			}
			if bytes.Equal(buf[:n], want) {
				return OutcomeReached, "reply from " + dst.key, nil
			}
			wrong = fmt.Sprintf("reply %q, want %q", buf[:n], want)
		}
	}
	if wrong != "" {
		return OutcomeWrongReply, wrong, nil
	}
	return OutcomeTimeout, "no reply before the timeout", nil
}

// ProbeAll runs probes with at most parallel at a time (at least 1, at most
// 256), each with the given timeout, and returns their results in the order
// of probes. Probes that cannot run have Outcome OutcomeError and Err set.
func (b *Bed) ProbeAll(ctx context.Context, probes []ProbeSpec, parallel int, timeout time.Duration) []Result {
	parallel = min(max(parallel, 1), 256, max(len(probes), 1))
	results := make([]Result, len(probes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := probes[i]
				results[i], _ = b.Probe(ctx, p.From, p.To, p.Protocol, p.Port, timeout)
			}
		}()
	}
	for i := range probes {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// Dial opens a TCP connection from pod from to port port of address to,
// which must belong to a pod in the bed. It reads and checks the server's
// greeting (the destination pod's token and a newline) before returning;
// afterwards the server echoes whatever is written, until the connection is
// idle for the bed's idle timeout. ctx bounds only the dial and greeting.
// The caller closes the connection; Down closes it too.
func (b *Bed) Dial(ctx context.Context, from *cluster.Pod, to netip.Addr, port int32) (net.Conn, error) {
	to = to.Unmap()
	src, dst, local, err := b.endpoints(from, to)
	if err != nil {
		return nil, fmt.Errorf("testbed: dial: %w", err)
	}
	if err := validPort(Port{Protocol: corev1.ProtocolTCP, Port: port}); err != nil {
		return nil, fmt.Errorf("testbed: dial: %w", err)
	}
	if !local.IsValid() {
		return nil, fmt.Errorf("testbed: dial %s: source pod %s has no IPv%d address", to, src.key, family(to))
	}
	if _, err := b.beginOp(); err != nil {
		return nil, err
	}
	defer b.ops.Done()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDialTimeout)
		defer cancel()
	}
	target := netip.AddrPortFrom(to, uint16(port))
	conn, netErr, err := b.dialTCP(ctx, src, local, to, port)
	if err == nil {
		err = netErr
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: dial %s from %s: %w", target, src.key, err)
	}
	if o, d := readToken(ctx, conn, dst); o != OutcomeReached {
		conn.Close()
		return nil, fmt.Errorf("testbed: dial %s from %s: %s: %s", target, src.key, o, d)
	}
	if !b.trackConn(conn) {
		return nil, fmt.Errorf("testbed: dial %s from %s: bed is down", target, src.key)
	}
	return conn, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
