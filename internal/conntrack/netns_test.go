package conntrack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
)

// The tests below run real traffic in a testbed (see internal/testbed): a
// node namespace enforcing netfence's ruleset and pod namespaces linked
// only to it. Nothing is created in the root namespace; the revoker's
// socket lives in the node namespace.

const (
	tcpPort = 8080
	udpPort = 5353
	ns      = "rv"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces, nftables rules and conntrack entries (CI runs as root)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("no network namespace support: %v", err)
	}
}

func prefix(t *testing.T) string {
	t.Helper()
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "nfct" + hex.EncodeToString(r[:])
}

func mkPod(name, app string, ips ...string) *cluster.Pod {
	p := &cluster.Pod{Namespace: ns, Name: name, Labels: labels.Set{"app": app}, NodeName: "n", Phase: corev1.PodRunning,
		Ports: []cluster.ContainerPort{{Protocol: corev1.ProtocolTCP, Port: tcpPort}, {Protocol: corev1.ProtocolUDP, Port: udpPort}}}
	for _, ip := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(ip))
	}
	return p
}

// ingressFrom isolates the server for ingress and allows the pods with
// one of the given app labels on every port. No app means no ingress.
func ingressFrom(apps ...string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if len(apps) > 0 {
		sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: apps}}}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel}}}}
	}
	return np
}

// rig is a testbed with netfence's ruleset applied in its node namespace
// and a revoker there.
type rig struct {
	bed     *testbed.Bed
	applier *nft.Applier
	revoker *Revoker
	pods    []*cluster.Pod
	nss     []*cluster.Namespace
}

func newRig(t *testing.T, pods []*cluster.Pod, pols ...*networkingv1.NetworkPolicy) *rig {
	t.Helper()
	needRoot(t)
	r := &rig{pods: pods, nss: []*cluster.Namespace{{Name: ns, Labels: labels.Set{}, Defined: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bed, err := testbed.Up(ctx, r.cluster(pols...), testbed.Options{Prefix: prefix(t)})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := bed.Down(); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})
	r.bed = bed
	if err := bed.InNode(func() error {
		var err error
		if r.applier, err = nft.NewApplier(0); err != nil {
			return err
		}
		r.revoker, err = NewRevoker(0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.applier.Close() })
	t.Cleanup(func() {
		if err := r.revoker.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := r.applier.CheckKernel(ctx); err != nil {
		t.Skipf("kernel lacks an nftables feature netfence needs: %v", err)
	}
	// The revoker must reach the node's conntrack table.
	if _, err := r.revoker.Revoke(ctx, func(netip.Addr) bool { return false }, func(Flow) bool { return true }); err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no conntrack netlink support: %v", err)
		}
		t.Fatalf("first revoke: %v", err)
	}
	r.apply(t, pols...)
	return r
}

func (r *rig) cluster(pols ...*networkingv1.NetworkPolicy) *cluster.Cluster {
	return cluster.New(r.nss, r.pods, pols)
}

// apply replaces the node's ruleset with the one rendered for pols (a full
// sync) and returns how long it took.
func (r *rig) apply(t *testing.T, pols ...*networkingv1.NetworkPolicy) time.Duration {
	t.Helper()
	m := nft.Render(policy.NewSet(r.cluster(pols...)), nft.Options{AllLocal: true})
	start := time.Now()
	if err := r.applier.FullSync(context.Background(), m); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	return time.Since(start)
}

// local reports whether an address is a pod's.
func (r *rig) local(c *cluster.Cluster) func(netip.Addr) bool {
	return func(a netip.Addr) bool { return c.PodByIP(a) != nil }
}

// allowed evaluates flows against the compiled policy of c, as the agent
// does.
func allowedBy(c *cluster.Cluster) func(Flow) bool {
	set := policy.NewSet(c)
	return func(f Flow) bool {
		return set.Evaluate(set.AddrFlow(f.Src, f.Dst, f.Protocol, int32(f.DstPort))).Allowed
	}
}

// tcpFlow is an open TCP connection to a pod's echo server.
type tcpFlow struct {
	name string
	conn net.Conn
	rd   *bufio.Reader
	n    int
}

func (r *rig) dialTCP(t *testing.T, from *cluster.Pod, to netip.Addr) *tcpFlow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := r.bed.Dial(ctx, from, to, tcpPort)
	if err != nil {
		t.Fatalf("dial %s -> %s: %v", from.Name, to, err)
	}
	t.Cleanup(func() { c.Close() })
	return &tcpFlow{name: fmt.Sprintf("TCP %s -> %s", from.Name, to), conn: c, rd: bufio.NewReader(c)}
}

// echo writes a line and reads it back within timeout.
func (f *tcpFlow) echo(timeout time.Duration) error {
	f.n++
	msg := fmt.Sprintf("ping %d\n", f.n)
	_ = f.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := f.conn.Write([]byte(msg)); err != nil {
		return err
	}
	got, err := f.rd.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// udpFlow is a testbed UDP flow with a name for messages.
type udpFlow struct {
	name string
	*testbed.UDPFlow
}

func (r *rig) dialUDP(t *testing.T, from *cluster.Pod, to netip.Addr) *udpFlow {
	t.Helper()
	f, err := r.bed.DialUDP(from, to, udpPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &udpFlow{name: fmt.Sprintf("UDP %s -> %s", from.Name, to), UDPFlow: f}
}

// mustPass fails unless every flow passes data.
func mustPass(t *testing.T, when string, tcps []*tcpFlow, udps []*udpFlow) {
	t.Helper()
	for _, f := range tcps {
		if err := f.echo(3 * time.Second); err != nil {
			t.Fatalf("%s: %s: %v", when, f.name, err)
		}
	}
	for _, f := range udps {
		ok, err := f.Exchange(5, 500*time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("%s: %s: no answer (%v)", when, f.name, err)
		}
	}
}

// mustBlock fails if any flow still passes data.
func mustBlock(t *testing.T, when string, tcps []*tcpFlow, udps []*udpFlow) {
	t.Helper()
	for _, f := range tcps {
		err := f.echo(time.Second)
		if err == nil {
			t.Fatalf("%s: %s still echoes", when, f.name)
		}
		t.Logf("%s: %s blocked: %v", when, f.name, err)
	}
	for _, f := range udps {
		ok, err := f.Exchange(3, 300*time.Millisecond)
		if ok {
			t.Fatalf("%s: %s still answered", when, f.name)
		}
		t.Logf("%s: %s blocked (no answer, %v)", when, f.name, err)
	}
}

func flowStrings(fs []Flow) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return strings.Join(s, ", ")
}

// TestRevokeCutsEstablished shows that a policy change alone leaves
// established TCP and UDP flows passing, and that Revoke cuts them.
func TestRevokeCutsEstablished(t *testing.T) {
	client := mkPod("client", "client", "10.244.71.2", "fd00:10:244:71::2")
	server := mkPod("server", "server", "10.244.71.3", "fd00:10:244:71::3")
	r := newRig(t, []*cluster.Pod{client, server}, ingressFrom("client"))

	tcps := []*tcpFlow{r.dialTCP(t, client, server.IPs[0]), r.dialTCP(t, client, server.IPs[1])}
	udps := []*udpFlow{r.dialUDP(t, client, server.IPs[0]), r.dialUDP(t, client, server.IPs[1])}
	mustPass(t, "allowed", tcps, udps)

	// The change: the client is denied. Without revocation, the flows
	// conntrack holds keep passing.
	denied := r.cluster(ingressFrom())
	syncTime := r.apply(t, ingressFrom())
	mustPass(t, "denied, before revocation (the problem)", tcps, udps)
	if p, err := r.bed.Probe(context.Background(), client, server.IPs[0], corev1.ProtocolTCP, tcpPort, 300*time.Millisecond); err != nil || p.Reached {
		t.Fatalf("a new connection is not denied after the change: %v %v", p, err)
	}

	quiesce()
	revokeStart := time.Now()
	got, err := r.revoker.Revoke(context.Background(), r.local(denied), allowedBy(denied))
	revoke := time.Since(revokeStart)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked: %s", flowStrings(got))
	mustBlock(t, "after revocation", tcps, udps)

	// Two TCP, two UDP flows; the denied probe left no entry.
	if len(got) != 4 {
		t.Errorf("revoked %d flows, want 4: %s", len(got), flowStrings(got))
	}
	for _, f := range got {
		if c := denied.PodByIP(f.Src); c == nil || c.Name != "client" || denied.PodByIP(f.Dst).Name != "server" {
			t.Errorf("revoked an unexpected flow %s", f)
		}
	}
	// total is how long an agent that revokes right after each sync takes
	// from starting the change to the last established byte passing.
	t.Logf("revocation: sync=%s revoke=%s total=%s entries=%d",
		ms(syncTime), ms(revoke), ms(syncTime+revoke), len(got))

	// Nothing is left to revoke.
	again, err := r.revoker.Revoke(context.Background(), r.local(denied), allowedBy(denied))
	if err != nil || len(again) != 0 {
		t.Fatalf("second revoke: %v, %v; want nothing", flowStrings(again), err)
	}
}

// quiesce waits until no packet of the test's flows is in flight, delayed
// TCP acknowledgements included. A packet from the server side still in
// flight when its entry is deleted is picked up by conntrack as a new flow
// from the server (which policy lets the server start), whose replies then
// carry the revoked client's packets again: see TestRevokedServerPush.
func quiesce() { time.Sleep(300 * time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// TestRevokeKeepsAllowed checks that Revoke deletes only the entries of
// denied flows: the flows of a pod that stays allowed keep passing, and
// entries of non-local addresses are never touched.
func TestRevokeKeepsAllowed(t *testing.T) {
	client := mkPod("client", "client", "10.244.72.2", "fd00:10:244:72::2")
	other := mkPod("other", "other", "10.244.72.4", "fd00:10:244:72::4")
	server := mkPod("server", "server", "10.244.72.3", "fd00:10:244:72::3")
	r := newRig(t, []*cluster.Pod{client, other, server}, ingressFrom("client", "other"))

	keepTCP := []*tcpFlow{r.dialTCP(t, other, server.IPs[0]), r.dialTCP(t, other, server.IPs[1])}
	keepUDP := []*udpFlow{r.dialUDP(t, other, server.IPs[0]), r.dialUDP(t, other, server.IPs[1])}
	cutTCP := []*tcpFlow{r.dialTCP(t, client, server.IPs[0])}
	cutUDP := []*udpFlow{r.dialUDP(t, client, server.IPs[1])}
	mustPass(t, "allowed", append(keepTCP, cutTCP...), append(keepUDP, cutUDP...))

	// Only "other" stays allowed.
	c := r.cluster(ingressFrom("other"))
	r.apply(t, ingressFrom("other"))

	// With no local address, nothing is revoked, even denied flows.
	got, err := r.revoker.Revoke(context.Background(), func(netip.Addr) bool { return false }, func(Flow) bool { return false })
	if err != nil || len(got) != 0 {
		t.Fatalf("revoke with no local address: %s, %v; want nothing", flowStrings(got), err)
	}
	// Every flow is allowed: nothing is revoked.
	got, err = r.revoker.Revoke(context.Background(), r.local(c), func(Flow) bool { return true })
	if err != nil || len(got) != 0 {
		t.Fatalf("revoke with every flow allowed: %s, %v; want nothing", flowStrings(got), err)
	}
	mustPass(t, "denied, not revoked", append(keepTCP, cutTCP...), append(keepUDP, cutUDP...))

	quiesce()
	got, err = r.revoker.Revoke(context.Background(), r.local(c), allowedBy(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked: %s", flowStrings(got))
	if len(got) != 2 {
		t.Errorf("revoked %d flows, want 2 (the client's)", len(got))
	}
	for _, f := range got {
		if c.PodByIP(f.Src).Name != "client" {
			t.Errorf("revoked a flow of another pod: %s", f)
		}
	}
	mustPass(t, "after revocation, allowed flows", keepTCP, keepUDP)
	mustBlock(t, "after revocation, denied flows", cutTCP, cutUDP)
	mustPass(t, "after revocation, allowed flows still", keepTCP, keepUDP)
}

// TestRevokeScale fills a node's conntrack table with many entries (made
// over netlink, no traffic) and measures one Revoke that deletes 1% of
// them.
func TestRevokeScale(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	server := mkPod("server", "server", "10.244.73.3")
	r := newRig(t, []*cluster.Pod{server}, ingressFrom())
	const n = 20000
	var dialErr error
	var conn *ct.Conn
	if err := r.bed.InNode(func() error {
		conn, dialErr = ct.Dial(&netlink.Config{})
		return nil
	}); err != nil || dialErr != nil {
		t.Fatalf("ctnetlink socket in the node: %v %v", err, dialErr)
	}
	defer conn.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		src := netip.AddrFrom4([4]byte{10, 244, 74, byte(i % 200)})
		f := ct.NewFlow(unix.IPPROTO_UDP, 0, src, server.IPs[0], uint16(10000+i), udpPort, 120, 0)
		if err := conn.Create(f); err != nil {
			t.Fatalf("create entry %d: %v", i, err)
		}
	}
	t.Logf("created %d entries in %s", n, ms(time.Since(start)))
	local := func(a netip.Addr) bool { return a == server.IPs[0] }
	allowed := func(f Flow) bool { return f.SrcPort%100 != 0 }
	start = time.Now()
	got, err := r.revoker.Revoke(context.Background(), local, allowed)
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n/100 {
		t.Errorf("revoked %d entries, want %d", len(got), n/100)
	}
	start = time.Now()
	if _, err := r.revoker.Revoke(context.Background(), local, allowed); err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation-scale: table=%d revoked=%d revoke=%s dump_only=%s", n, len(got), ms(d), ms(time.Since(start)))
}

// TestRevokedServerPush documents a limit of revocation (see the package
// documentation): after Revoke, a TCP segment the server sends is picked up
// by conntrack as a new flow (nf_conntrack_tcp_loose, default 1) from the
// server to the client, which policy lets through when the client's
// ingress is open; the client's packets are then replies of that entry.
// With netfence's ruleset as it is, the test reports what the kernel does
// rather than failing, since the fix belongs to the ruleset; with a rule
// dropping new TCP flows that do not start with a SYN added, it checks
// that the gap closes.
func TestRevokedServerPush(t *testing.T) {
	t.Run("ruleset as rendered", func(t *testing.T) {
		t.Logf("revoked-server-push: %s", serverPush(t, ""))
	})
	t.Run("with new non-SYN drop", func(t *testing.T) {
		const rule = "insert rule inet netfence forward ct state new tcp flags & (fin|syn|rst|ack) != syn drop"
		if _, err := exec.LookPath("nft"); err != nil {
			t.Skipf("needs the nft tool (Debian's nftables, which .ci/run installs): %v", err)
		}
		if got := serverPush(t, rule); got != "closed" {
			t.Fatalf("revoked-server-push with %q: %s", rule, got)
		}
	})
}

// serverPush opens a TCP connection, denies and revokes it, lets the
// server push a segment and tells what then passes. extra is an nft
// command run in the node after each ruleset change.
func serverPush(t *testing.T, extra string) string {
	client := mkPod("client", "client", "10.244.75.2")
	server := mkPod("server", "server", "10.244.75.3")
	r := newRig(t, []*cluster.Pod{client, server}, ingressFrom("client"))
	const port = 9000
	srvNS, _ := r.bed.PodNamespace(server.Key())
	cliNS, _ := r.bed.PodNamespace(client.Key())
	var ln net.Listener
	if err := testbed.InNamespace(srvNS, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(server.IPs[0], port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	var cc net.Conn
	if err := testbed.InNamespace(cliNS, func() error {
		var err error
		cc, err = net.DialTimeout("tcp", netip.AddrPortFrom(server.IPs[0], port).String(), 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(3 * time.Second):
	}
	if sc == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { sc.Close() })
	buf := make([]byte, 64)
	xfer := func(from, to net.Conn, msg string, timeout time.Duration) error {
		_ = to.SetReadDeadline(time.Now().Add(timeout))
		if _, err := from.Write([]byte(msg)); err != nil {
			return err
		}
		n, err := io.ReadAtLeast(to, buf, len(msg))
		if err != nil {
			return err
		}
		if string(buf[:n]) != msg {
			return fmt.Errorf("got %q, want %q", buf[:n], msg)
		}
		return nil
	}
	if err := xfer(cc, sc, "hello", 3*time.Second); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if err := xfer(sc, cc, "hi", 3*time.Second); err != nil {
		t.Fatalf("allowed: %v", err)
	}

	denied := r.cluster(ingressFrom())
	r.apply(t, ingressFrom())
	if extra != "" {
		if err := r.bed.InNode(func() error {
			out, err := exec.Command("nft", extra).CombinedOutput()
			if err != nil {
				return fmt.Errorf("nft %s: %w: %s", extra, err, out)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	quiesce()
	got, err := r.revoker.Revoke(context.Background(), r.local(denied), allowedBy(denied))
	if err != nil || len(got) != 1 {
		t.Fatalf("revoke: %s, %v; want the one flow", flowStrings(got), err)
	}
	if err := xfer(cc, sc, "after", time.Second); err == nil {
		t.Fatal("the client still reaches the server after revocation")
	}
	// The server pushes; the client's unacknowledged "after" is then
	// retransmitted as a reply of the server's new entry.
	if err := xfer(sc, cc, "push", 2*time.Second); err != nil {
		t.Logf("the server's segment was dropped: %v", err)
		return "closed"
	}
	// The server may first get the retransmitted "after".
	_ = sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := cc.Write([]byte("revived")); err != nil {
		t.Fatal(err)
	}
	var seen []byte
	for !bytes.HasSuffix(seen, []byte("revived")) {
		n, err := sc.Read(buf)
		if err != nil {
			t.Logf("client does not reach server: %v", err)
			return "half-open (the server reaches the client, not the reverse)"
		}
		seen = append(seen, buf[:n]...)
	}
	return "KNOWN GAP: after Revoke, a segment from the server re-created the entry " +
		"(loose TCP pickup) and the client reaches the denied server again"
}
