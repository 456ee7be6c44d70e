package bench

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// TestScenario checks the cluster builder without the kernel: the policies
// compile, select the server as intended, allow (or deny) the client, and
// the server's sets hold every remote address whatever the policy count.
func TestScenario(t *testing.T) {
	for _, tc := range []struct {
		s         Scenario
		selecting int
	}{
		{Scenario{Policies: 1, RemotePods: 200}, 1},
		{Scenario{Policies: 10, RemotePods: 200}, 2},
		{Scenario{Policies: 1000, RemotePods: 400}, 200},
		{Scenario{Policies: 10, RemotePods: 200, DenyClient: true}, 2},
	} {
		t.Run(tc.s.String(), func(t *testing.T) {
			c, err := Build(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			set := policy.NewSet(c)
			if len(set.Rejected) > 0 {
				t.Fatalf("rejected: %v", set.Rejected)
			}
			srv, cli := c.Pod(ServerPod().Key()), c.Pod(ClientPod().Key())
			if got := len(set.Isolating(srv, policy.Ingress)); got != tc.selecting {
				t.Errorf("%d policies select the server, want %d", got, tc.selecting)
			}
			if got := len(set.Isolating(cli, policy.Ingress)) + len(set.Isolating(cli, policy.Egress)); got != 0 {
				t.Errorf("%d policies select the client, want 0", got)
			}
			v := set.Evaluate(policy.Flow{
				From:     policy.Endpoint{Pod: cli, IP: ClientAddr},
				To:       policy.Endpoint{Pod: srv, IP: ServerAddr},
				Protocol: corev1.ProtocolTCP, Port: ServerPort,
			})
			if v.Allowed == tc.s.DenyClient {
				t.Errorf("client -> server allowed = %v, want %v (%s)", v.Allowed, !tc.s.DenyClient, v.Ingress.Reason)
			}
			m := nft.Render(set, nft.Options{Node: Node})
			if len(m.Chains) != 1 {
				t.Errorf("%d chains, want only the server's", len(m.Chains))
			}
			as, ps, ok := ServerSets(m)
			if !ok {
				t.Fatal("the server is not in the ingress map")
			}
			a, p := setLen(as), setLen(ps)
			// Every remote pod is in one of the two sets; the client
			// only in the ports set.
			n := tc.s.RemotePods
			if a+p < n || a == 0 && tc.selecting > 1 || p == 0 {
				t.Errorf("server sets hold %d addresses and %d address.proto.port elements, want at least %d in all", a, p, n)
			}
			addrs := map[netip.Addr]bool{}
			for _, s := range []*nft.PeerSet{as, ps} {
				if s != nil {
					for _, e := range s.Elements {
						if e.Addrs.From == e.Addrs.To {
							addrs[e.Addrs.From] = true
						}
					}
				}
			}
			for k := range n {
				if !addrs[RemoteAddr(k)] {
					t.Fatalf("remote pod %d (%s) is in neither set", k, RemoteAddr(k))
				}
			}
			if addrs[ClientAddr] == tc.s.DenyClient {
				t.Errorf("client in the sets = %v, want %v", addrs[ClientAddr], !tc.s.DenyClient)
			}
			if as != nil {
				for _, e := range as.Elements {
					if e.Addrs.Contains(ClientAddr) {
						t.Errorf("client allowed on every port by %s; want it only in the ports set", e.Comment)
					}
				}
			}
		})
	}
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the dataplane harness needs root (network namespaces and nftables)")
	}
}

// TestHarness runs the harness end to end on a tiny cluster: connections
// succeed with no table, with the conntrack-only table and through
// netfence's table, and fail when the policies leave the client out. It
// asserts nothing about timing.
func TestHarness(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allow, _, err := RenderScenario(Scenario{Policies: 4, RemotePods: 200})
	if err != nil {
		t.Fatal(err)
	}
	deny, _, err := RenderScenario(Scenario{Policies: 4, RemotePods: 200, DenyClient: true})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Up(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	prefix := d.Bed().Prefix()
	node := d.Bed().NodeNamespace()
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if _, err := os.Stat("/var/run/netns/" + node); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind (prefix %s): %v", node, prefix, err)
		}
	})
	opts := LoadOptions{Workers: 2, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		install func() error
		tables  []string
		reach   bool
	}{
		{"none", d.InstallNone, nil, true},
		{"ct-only", d.InstallConntrackOnly, []string{ConntrackTable}, true},
		{"netfence allows the client", func() error { return d.InstallModel(allow) }, []string{nft.TableName}, true},
		{"netfence denies the client", func() error { return d.InstallModel(deny) }, []string{nft.TableName}, false},
		{"none again", d.InstallNone, nil, true},
	} {
		if err := tc.install(); err != nil {
			t.Fatalf("%s: install: %v", tc.name, err)
		}
		tables, err := d.Tables()
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) != len(tc.tables) || len(tables) > 0 && tables[0] != tc.tables[0] {
			t.Errorf("%s: tables %v, want %v", tc.name, tables, tc.tables)
		}
		// Let the server accept what the previous configuration left in
		// its queue.
		before := d.Server().Accepted()
		for range 40 {
			time.Sleep(25 * time.Millisecond)
			now := d.Server().Accepted()
			if now == before {
				break
			}
			before = now
		}
		r, err := d.Load(ctx, opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		accepted := d.Server().Accepted() - before
		t.Logf("%s: %d connections (%.0f/s), %d failures %v, %d accepted", tc.name, r.Conns, r.Rate(), r.Failures, r.Errors, accepted)
		if tc.reach {
			if r.Conns == 0 || r.Failures > 0 || accepted == 0 {
				t.Errorf("%s: %d connections, %d failures %v, want only successes", tc.name, r.Conns, r.Failures, r.Errors)
			}
			if len(r.Latencies) != r.Conns || r.CPUPerConn() <= 0 {
				t.Errorf("%s: %d latencies for %d connections, CPU %v", tc.name, len(r.Latencies), r.Conns, r.CPU)
			}
		} else if r.Conns > 0 || r.Failures == 0 || accepted > 0 {
			t.Errorf("%s: %d connections, %d failures, %d accepted; want only failures", tc.name, r.Conns, r.Failures, accepted)
		}
	}
}
