package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
)

const probeTimeout = 500 * time.Millisecond

// requireNetns skips the test unless it runs as root on a kernel that lets
// it create network namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testbed tests need root (network namespaces, veth pairs, raw sockets); run as root")
	}
	name := testPrefix(t) + "-check"
	h, err := createNamedNetNS(name)
	if err != nil {
		t.Skipf("testbed tests need network namespace support: %v", err)
	}
	h.Close()
	if err := deleteNamedNetNS(name); err != nil {
		t.Fatalf("delete check namespace: %v", err)
	}
}

func testPrefix(t *testing.T) string {
	t.Helper()
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "nft" + hex.EncodeToString(r[:])
}

func mkPod(ns, name string, ips []string, ports ...cluster.ContainerPort) *cluster.Pod {
	p := &cluster.Pod{Namespace: ns, Name: name, Phase: corev1.PodRunning, Ports: ports}
	for _, s := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(s))
	}
	return p
}

func tcp(port int32) cluster.ContainerPort {
	return cluster.ContainerPort{Protocol: corev1.ProtocolTCP, Port: port}
}
func udp(port int32) cluster.ContainerPort {
	return cluster.ContainerPort{Protocol: corev1.ProtocolUDP, Port: port}
}
func sctp(port int32) cluster.ContainerPort {
	return cluster.ContainerPort{Protocol: corev1.ProtocolSCTP, Port: port}
}

// testCluster has IPv4, dual-stack and IPv6-only pods, plus a host-network
// pod and a pending pod that the bed must leave out.
func testCluster() *cluster.Cluster {
	hostNet := mkPod("b", "hostnet", []string{"10.0.0.1"}, tcp(10250))
	hostNet.HostNetwork = true
	pending := mkPod("b", "pending", []string{"10.244.2.99"}, tcp(80))
	pending.Phase = corev1.PodPending
	return cluster.New(nil, []*cluster.Pod{
		mkPod("a", "web", []string{"10.244.1.10"}, tcp(8080), udp(5353), sctp(3868)),
		mkPod("a", "db", []string{"10.244.1.11"}, tcp(5432)),
		mkPod("b", "client", []string{"10.244.2.10"}),
		mkPod("b", "dual", []string{"10.244.2.11", "fd00:10:244:2::11"}, tcp(8080), udp(5353), sctp(3868)),
		mkPod("b", "v6", []string{"fd00:10:244:3::5"}, tcp(80)),
		hostNet,
		pending,
	}, nil)
}

func netnsNames(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			out = append(out, n)
		}
	}
	return out
}

// rootLinks lists the links of the root namespace (the test process's).
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	var links []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			links = append(links, f[0]+f[1])
		}
	}
	return links
}

func up(t *testing.T, c *cluster.Cluster, opts Options) *Bed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	b, err := Up(ctx, c, opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("Up of %d pods took %v", len(b.Pods()), time.Since(start))
	t.Cleanup(func() {
		if err := b.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return b
}

type expect struct {
	from  string
	to    string
	proto corev1.Protocol
	port  int32
	want  Outcome
}

func runExpectations(t *testing.T, b *Bed, c *cluster.Cluster, cases []expect) {
	t.Helper()
	specs := make([]ProbeSpec, len(cases))
	for i, e := range cases {
		from := c.Pod(e.from)
		if from == nil {
			t.Fatalf("no pod %s", e.from)
		}
		specs[i] = ProbeSpec{From: from, To: netip.MustParseAddr(e.to), Protocol: e.proto, Port: e.port}
	}
	results := b.ProbeAll(context.Background(), specs, 8, probeTimeout)
	for i, r := range results {
		if r.Outcome != cases[i].want {
			t.Errorf("%s: got %s (%s), want %s", specs[i], r.Outcome, r.Detail, cases[i].want)
		}
		if r.Reached != (r.Outcome == OutcomeReached) || r.Unprobed != (r.Outcome == OutcomeUnprobed) {
			t.Errorf("%s: inconsistent result %+v", specs[i], r)
		}
	}
}

func TestBed(t *testing.T) {
	requireNetns(t)
	linksBefore := rootLinks(t)
	c := testCluster()
	prefix := testPrefix(t)
	b := up(t, c, Options{
		Prefix:     prefix,
		ExtraPorts: []Port{{Protocol: corev1.ProtocolTCP, Port: 9999}, {Protocol: corev1.ProtocolUDP, Port: 9999}},
	})

	t.Run("namespaces", func(t *testing.T) {
		got := withPrefix(netnsNames(t), prefix)
		want := []string{prefix + "-node", prefix + "-p0", prefix + "-p1", prefix + "-p2", prefix + "-p3", prefix + "-p4"}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("namespaces %v, want %v", got, want)
		}
		if b.NodeNamespace() != prefix+"-node" {
			t.Errorf("NodeNamespace() = %q", b.NodeNamespace())
		}
		if len(b.Pods()) != 5 {
			t.Errorf("bed has %d pods, want 5 (no host-network or pending pod)", len(b.Pods()))
		}
		if links := rootLinks(t); !slices.Equal(links, linksBefore) {
			t.Errorf("root namespace links changed while the bed is up:\nbefore %v\nafter  %v", linksBefore, links)
		}
	})

	t.Run("node", func(t *testing.T) {
		var fwd4, fwd6 []byte
		err := b.InNode(func() error {
			var err error
			if fwd4, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil {
				return err
			}
			fwd6, err = os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(fwd4)) != "1" || strings.TrimSpace(string(fwd6)) != "1" {
			t.Errorf("node forwarding: ipv4 %q ipv6 %q, want 1 and 1", fwd4, fwd6)
		}
		out, err := exec.Command("ip", "-n", b.NodeNamespace(), "-o", "link", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link in node: %v: %s", err, out)
		}
		for _, p := range b.Pods() {
			ifName, _ := b.HostInterface(p.Key())
			if !strings.Contains(string(out), ifName+"@") {
				t.Errorf("node namespace lacks %s for %s:\n%s", ifName, p.Key(), out)
			}
		}
		nsName, _ := b.PodNamespace("b/dual")
		out, err = exec.Command("ip", "-n", nsName, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in pod: %v: %s", err, out)
		}
		for _, want := range []string{"10.244.2.11/32", "fd00:10:244:2::11/128"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("b/dual eth0 lacks %s:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "tentative") {
			t.Errorf("b/dual has tentative (DAD) addresses:\n%s", out)
		}
	})

	t.Run("probes", func(t *testing.T) {
		runExpectations(t, b, c, []expect{
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 8080, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolUDP, 5353, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 9999, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolUDP, 9999, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolSCTP, 3868, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 8081, OutcomeRefused},
			{"b/client", "10.244.1.10", corev1.ProtocolUDP, 5354, OutcomeRefused},
			{"b/client", "10.244.1.10", corev1.ProtocolSCTP, 3869, OutcomeRefused},
			{"b/client", "10.244.1.11", corev1.ProtocolTCP, 5432, OutcomeReached},
			{"a/web", "10.244.1.11", corev1.ProtocolTCP, 5432, OutcomeReached},
			{"a/db", "10.244.2.11", corev1.ProtocolTCP, 8080, OutcomeReached},
			{"a/db", "10.244.2.11", corev1.ProtocolUDP, 5353, OutcomeReached},
			{"b/dual", "fd00:10:244:3::5", corev1.ProtocolTCP, 80, OutcomeReached},
			{"b/dual", "fd00:10:244:3::5", corev1.ProtocolTCP, 81, OutcomeRefused},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolTCP, 8080, OutcomeReached},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolUDP, 5353, OutcomeReached},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolUDP, 5354, OutcomeRefused},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolSCTP, 3868, OutcomeReached},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolSCTP, 3869, OutcomeRefused},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolTCP, 9999, OutcomeReached},
			{"b/client", "fd00:10:244:3::5", corev1.ProtocolTCP, 80, OutcomeUnprobed},
		})
	})

	t.Run("refuses addresses outside the bed", func(t *testing.T) {
		client := c.Pod("b/client")
		for _, to := range []string{"10.0.0.1", "8.8.8.8", "10.244.2.99", "127.0.0.1"} {
			r, err := b.Probe(context.Background(), client, netip.MustParseAddr(to), corev1.ProtocolTCP, 80, probeTimeout)
			if err == nil || r.Outcome != OutcomeError || r.Err == nil {
				t.Errorf("probe to %s: got %v, %v; want an error", to, r, err)
			}
		}
		if _, err := b.Probe(context.Background(), c.Pod("b/hostnet"), netip.MustParseAddr("10.244.1.10"), corev1.ProtocolTCP, 8080, probeTimeout); err == nil {
			t.Error("probe from a host-network pod: want an error")
		}
		if _, err := b.Dial(context.Background(), client, netip.MustParseAddr("8.8.8.8"), 80); err == nil {
			t.Error("dial to an address outside the bed: want an error")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if r, err := b.Probe(ctx, client, netip.MustParseAddr("10.244.1.10"), corev1.ProtocolTCP, 8080, probeTimeout); err == nil {
			t.Errorf("probe with a canceled context: got %v, want an error", r)
		}
	})

	t.Run("established connection survives a policy", func(t *testing.T) {
		client, web := c.Pod("b/client"), netip.MustParseAddr("10.244.1.10")
		conn, err := b.Dial(context.Background(), client, web, 8080)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		echo(t, conn, "before")

		nodeNft(t, b, `
table inet nftest {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state established,related accept
		ct state invalid drop
		ip daddr 10.244.1.10 tcp dport 8080 drop
		ip daddr 10.244.1.10 sctp dport 3868 drop
		ip6 daddr fd00:10:244:2::11 udp dport 5353 reject
	}
}`)
		echo(t, conn, "after")
		runExpectations(t, b, c, []expect{
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 8080, OutcomeTimeout},
			{"b/client", "10.244.1.10", corev1.ProtocolSCTP, 3868, OutcomeTimeout},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolUDP, 5353, OutcomeRefused},
			// Untouched flows still pass, SCTP INITs included: conntrack
			// does not find them invalid.
			{"b/client", "10.244.1.10", corev1.ProtocolUDP, 5353, OutcomeReached},
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 9999, OutcomeReached},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolSCTP, 3868, OutcomeReached},
			{"b/v6", "fd00:10:244:2::11", corev1.ProtocolTCP, 8080, OutcomeReached},
		})
		nodeNft(t, b, "delete table inet nftest")
		runExpectations(t, b, c, []expect{
			{"b/client", "10.244.1.10", corev1.ProtocolTCP, 8080, OutcomeReached},
		})
	})

	t.Run("down", func(t *testing.T) {
		if err := b.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		if left := withPrefix(netnsNames(t), prefix); len(left) > 0 {
			t.Errorf("namespaces left after Down: %v", left)
		}
		if links := rootLinks(t); !slices.Equal(links, linksBefore) {
			t.Errorf("root namespace links changed:\nbefore %v\nafter  %v", linksBefore, links)
		}
		if err := b.Down(); err != nil {
			t.Errorf("second Down: %v", err)
		}
		if _, err := b.Probe(context.Background(), c.Pod("b/client"), netip.MustParseAddr("10.244.1.10"), corev1.ProtocolTCP, 8080, probeTimeout); err == nil {
			t.Error("probe after Down: want an error")
		}
		if err := b.InNode(func() error { return nil }); err == nil {
			t.Error("InNode after Down: want an error")
		}
	})
}

func echo(t *testing.T, conn io.ReadWriter, msg string) {
	t.Helper()
	if d, ok := conn.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(time.Now().Add(2 * time.Second))
	}
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("read echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// nodeNft runs an nft script in the node namespace, the way netfence's agent
// may: a process started from a thread inside the namespace.
func nodeNft(t *testing.T, b *Bed, script string) {
	t.Helper()
	var out []byte
	err := b.InNode(func() error {
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("nft in node: %v: %s", err, out)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestUpFailureCleansUp(t *testing.T) {
	requireNetns(t)
	prefix := testPrefix(t)
	// Take the name of the second pod's namespace, so Up fails after
	// creating the node and the first pod.
	taken := prefix + "-p1"
	h, err := createNamedNetNS(taken)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		if err := deleteNamedNetNS(taken); err != nil {
			t.Error(err)
		}
	})
	linksBefore := rootLinks(t)
	b, err := Up(context.Background(), testCluster(), Options{Prefix: prefix})
	if err == nil {
		b.Down()
		t.Fatal("Up succeeded with a namespace name taken")
	}
	t.Logf("Up failed as expected: %v", err)
	if left := withPrefix(netnsNames(t), prefix); !slices.Equal(left, []string{taken}) {
		t.Errorf("namespaces after failed Up: %v, want only the pre-existing %s", left, taken)
	}
	if links := rootLinks(t); !slices.Equal(links, linksBefore) {
		t.Errorf("root namespace links changed:\nbefore %v\nafter  %v", linksBefore, links)
	}
}

func TestUpCanceled(t *testing.T) {
	requireNetns(t)
	prefix := testPrefix(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Up(ctx, testCluster(), Options{Prefix: prefix}); err == nil {
		t.Fatal("Up with a canceled context succeeded")
	}
	if left := withPrefix(netnsNames(t), prefix); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
}

func TestUpRejectsBadInput(t *testing.T) {
	// Validation happens before anything is created, so no root is needed.
	for name, c := range map[string]*cluster.Cluster{
		"shared address": cluster.New(nil, []*cluster.Pod{
			mkPod("a", "x", []string{"10.244.0.1"}), mkPod("a", "y", []string{"10.244.0.1"}),
		}, nil),
		"link-local address": cluster.New(nil, []*cluster.Pod{mkPod("a", "x", []string{"169.254.1.1"})}, nil),
		"bad port":           cluster.New(nil, []*cluster.Pod{mkPod("a", "x", []string{"10.244.0.1"}, tcp(0))}, nil),
		"bad protocol": cluster.New(nil, []*cluster.Pod{mkPod("a", "x", []string{"10.244.0.1"},
			cluster.ContainerPort{Protocol: "ICMP", Port: 1})}, nil),
	} {
		if b, err := Up(context.Background(), c, Options{Prefix: "nfbad"}); err == nil {
			b.Down()
			t.Errorf("%s: Up succeeded", name)
		}
	}
	if b, err := Up(context.Background(), testCluster(), Options{Prefix: "bad/prefix"}); err == nil {
		b.Down()
		t.Error("bad prefix: Up succeeded")
	}
}

func TestSCTPInit(t *testing.T) {
	// RFC 3720 B.4: the CRC32c of 32 zero bytes.
	if got := sctpChecksum(make([]byte, 32)); got != 0x8a9136aa {
		t.Errorf("CRC32c of 32 zeros = %#x, want 0x8a9136aa", got)
	}
	p := sctpInit(40000, 3868, 0xdeadbeef)
	if !isSCTPInit(p, 40000, 3868, 0xdeadbeef) || isSCTPInit(p, 40000, 3868, 1) {
		t.Error("isSCTPInit does not match its own packet")
	}
	q := bytes.Clone(p)
	copy(q[8:12], []byte{0, 0, 0, 0})
	sum := sctpChecksum(q)
	if want := []byte{byte(sum), byte(sum >> 8), byte(sum >> 16), byte(sum >> 24)}; !bytes.Equal(p[8:12], want) {
		t.Errorf("checksum bytes %x, want %x (CRC32c, least significant byte first)", p[8:12], want)
	}
}

// TestScale brings up ten pods, probes every pair and logs timings.
func TestScale(t *testing.T) {
	requireNetns(t)
	var pods []*cluster.Pod
	for i := range 10 {
		ips := []string{fmt.Sprintf("10.244.5.%d", i+1)}
		if i%2 == 0 {
			ips = append(ips, fmt.Sprintf("fd00:10:244:5::%x", i+1))
		}
		pods = append(pods, mkPod("scale", fmt.Sprintf("p%d", i), ips, tcp(80), udp(53)))
	}
	c := cluster.New(nil, pods, nil)
	prefix := testPrefix(t)
	netnsNames(t) // let the runtime open what it keeps open (poller, pipes)
	fdsBefore, goroutinesBefore := countFDs(t), runtime.NumGoroutine()
	start := time.Now()
	b, err := Up(context.Background(), c, Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	upTook := time.Since(start)
	t.Cleanup(func() { b.Down() })

	var specs []ProbeSpec
	for _, from := range c.Pods {
		for _, to := range c.Pods {
			if from != to {
				specs = append(specs, ProbeSpec{From: from, To: to.IPs[0], Protocol: corev1.ProtocolTCP, Port: 80})
				specs = append(specs, ProbeSpec{From: from, To: to.IPs[0], Protocol: corev1.ProtocolUDP, Port: 53})
			}
		}
	}
	start = time.Now()
	results := b.ProbeAll(context.Background(), specs, 8, 2*time.Second)
	allTook := time.Since(start)
	var maxLat time.Duration
	for _, r := range results {
		if !r.Reached {
			t.Errorf("%v", r)
		}
		maxLat = max(maxLat, r.Elapsed)
		if r.Elapsed > 200*time.Millisecond {
			t.Logf("slow probe: %v took %v", r, r.Elapsed)
		}
	}
	start = time.Now()
	const n = 20
	for range n {
		if r, _ := b.Probe(context.Background(), c.Pods[0], c.Pods[1].IPs[0], corev1.ProtocolTCP, 80, time.Second); !r.Reached {
			t.Errorf("%v", r)
		}
	}
	tcpLat := time.Since(start) / n
	start = time.Now()
	for range n {
		if r, _ := b.Probe(context.Background(), c.Pods[0], c.Pods[1].IPs[0], corev1.ProtocolSCTP, 80, time.Second); r.Outcome != OutcomeRefused {
			t.Errorf("%v", r)
		}
	}
	sctpLat := time.Since(start) / n

	start = time.Now()
	if err := b.Down(); err != nil {
		t.Fatal(err)
	}
	downTook := time.Since(start)
	if left := withPrefix(netnsNames(t), prefix); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	// Nothing keeps the namespaces alive: no handle, socket or goroutine of
	// the bed is left.
	if fds := countFDs(t); fds != fdsBefore {
		t.Errorf("%d open files after Down, %d before Up", fds, fdsBefore)
	}
	for i := 0; runtime.NumGoroutine() > goroutinesBefore && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Errorf("%d goroutines after Down, %d before Up", n, goroutinesBefore)
	}
	t.Logf("10 pods: Up %v, Down %v; %d probes (8 parallel) %v, slowest %v; sequential TCP probe %v, SCTP probe %v",
		upTook, downTook, len(specs), allTook, maxLat, tcpLat, sctpLat)
}

// TestHostNetwork runs host-network pods in the node namespace: pods reach
// them at the node's addresses on every protocol (through the node's
// input hook), they reach pods, a second host-network pod on the same
// address is left out, and nothing of it shows in the root namespace.
func TestHostNetwork(t *testing.T) {
	requireNetns(t)
	linksBefore := rootLinks(t)
	host := mkPod("n", "host", []string{"10.244.255.1", "fd00:10:244:ff::1"}, tcp(80))
	host.HostNetwork = true
	twin := mkPod("n", "twin", []string{"10.244.255.1"}, tcp(9100))
	twin.HostNetwork = true
	c := cluster.New(nil, []*cluster.Pod{
		mkPod("a", "web", []string{"10.244.1.10"}, tcp(8080)),
		mkPod("a", "dual", []string{"10.244.1.11", "fd00:10:244:1::11"}),
		host, twin,
	}, nil)
	prefix := testPrefix(t)
	b := up(t, c, Options{Prefix: prefix, HostNetwork: true, ExtraPorts: []Port{{Protocol: corev1.ProtocolUDP, Port: 53}, {Protocol: corev1.ProtocolSCTP, Port: 9000}}})
	if hp := b.HostPods(); len(hp) != 1 || hp[0].Key() != "n/host" {
		t.Fatalf("host pods %v, want n/host", hp)
	}
	if len(b.Pods()) != 2 {
		t.Fatalf("pods %v", b.Pods())
	}
	if why := b.Skipped()["n/twin"]; !strings.Contains(why, "10.244.255.1") {
		t.Fatalf("n/twin: %q, want it left out for its address", why)
	}
	if ns, ok := b.PodNamespace("n/host"); !ok || ns != b.NodeNamespace() {
		t.Fatalf("n/host runs in %q, want the node namespace %s", ns, b.NodeNamespace())
	}
	if _, ok := b.HostInterface("n/host"); ok {
		t.Fatal("a host-network pod has a veth")
	}
	runExpectations(t, b, c, []expect{
		{"a/web", "10.244.255.1", corev1.ProtocolTCP, 80, OutcomeReached},
		{"a/web", "10.244.255.1", corev1.ProtocolUDP, 53, OutcomeReached},
		{"a/web", "10.244.255.1", corev1.ProtocolSCTP, 9000, OutcomeReached},
		{"a/web", "10.244.255.1", corev1.ProtocolTCP, 81, OutcomeRefused},
		{"a/dual", "fd00:10:244:ff::1", corev1.ProtocolTCP, 80, OutcomeReached},
		{"a/dual", "fd00:10:244:ff::1", corev1.ProtocolUDP, 53, OutcomeReached},
		{"a/web", "fd00:10:244:ff::1", corev1.ProtocolTCP, 80, OutcomeUnprobed},
		// From the node: the output hook.
		{"n/host", "10.244.1.10", corev1.ProtocolTCP, 8080, OutcomeReached},
		{"n/host", "fd00:10:244:1::11", corev1.ProtocolSCTP, 9000, OutcomeReached},
	})
	// The addresses are the node namespace's, on its loopback.
	var out []byte
	if err := b.InNode(func() error {
		var err error
		out, err = exec.Command("ip", "-o", "addr", "show", "dev", "lo").CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("ip addr in the node namespace: %v: %s", err, out)
	}
	for _, want := range []string{"10.244.255.1/32", "fd00:10:244:ff::1/128"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("node lo lacks %s:\n%s", want, out)
		}
	}
	if err := b.Down(); err != nil {
		t.Fatal(err)
	}
	if left := withPrefix(netnsNames(t), prefix); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if after := rootLinks(t); !slices.Equal(linksBefore, after) {
		t.Errorf("root links changed:\n%v\n%v", linksBefore, after)
	}
}
