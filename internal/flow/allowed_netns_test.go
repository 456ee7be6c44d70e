package flow_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// TestAllowedRealTraffic enforces in a test bed, reads the node
// namespace's conntrack NEW events as the agent does with
// --monitor-allowed, and checks that an allowed TCP and an allowed UDP
// probe each give exactly one allowed record explained as `netfence check`
// explains that pair and port, and that denied probes give none.
func TestAllowedRealTraffic(t *testing.T) {
	needRoot(t)
	ctx, bed, c, sub := upMonitorBed(t, "nfalw", nft.Options{AllLocal: true},
		func(ctx context.Context, gens *flow.Generations, hub *flow.Hub, metrics *flow.Metrics) error {
			ar := &flow.AllowedReader{Source: flow.Source{Node: "n1", Gens: gens, Hub: hub, Metrics: metrics}}
			return ar.Run(ctx) // binds the conntrack event socket in the node namespace
		})
	set := policy.NewSet(c)
	pod := func(name string) *cluster.Pod { return c.Pod("app/" + name) }
	web := pod("web").IPs[0]

	type probe struct {
		from    string
		proto   corev1.Protocol
		port    int32
		allowed bool
	}
	probes := []probe{
		{"client", corev1.ProtocolTCP, 80, true},
		{"client", corev1.ProtocolUDP, 5353, true},
		{"intruder", corev1.ProtocolTCP, 80, false},
		{"intruder", corev1.ProtocolUDP, 5353, false},
		{"locked", corev1.ProtocolTCP, 80, false},
	}
	for _, p := range probes {
		res, err := bed.Probe(ctx, pod(p.from), web, p.proto, p.port, 700*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if res.Reached != p.allowed {
			t.Fatalf("%s -> web %s/%d: %s; the dataplane disagrees with the test", p.from, p.proto, p.port, res)
		}
	}
	recs := collect(sub, 2*time.Second)
	for _, r := range recs {
		if r.Verdict != flow.Allowed || r.DeniedAt != "" {
			t.Errorf("record not allowed: %+v", r)
		}
		if r.From == "app/intruder" || r.From == "app/locked" {
			t.Errorf("a denied probe was reported allowed: %+v", r)
		}
	}
	for _, p := range probes {
		if !p.allowed {
			continue
		}
		n := 0
		for _, r := range recs {
			if r.From != "app/"+p.from || r.To != "app/web" || r.Protocol != string(p.proto) || r.Port != int(p.port) {
				continue
			}
			n++
			if r.Node != "n1" || r.DstIP != web.String() || r.SrcPort == 0 || r.Count != 1 {
				t.Errorf("%s -> web %s/%d: record %+v", p.from, p.proto, p.port, r)
			}
			want, err := analysis.Check(set, analysis.CheckRequest{From: "app/" + p.from, To: "app/web", Port: string(p.proto) + "/" + itoa(p.port)})
			if err != nil {
				t.Fatal(err)
			}
			if !want.Egress.Allowed || !want.Ingress.Allowed {
				t.Errorf("%s -> web %s/%d: check does not allow it", p.from, p.proto, p.port)
			}
			for _, pair := range [][2]any{{r.Egress, want.Egress}, {r.Ingress, want.Ingress}} {
				got, _ := json.Marshal(pair[0])
				exp, _ := json.Marshal(pair[1])
				if string(got) != string(exp) {
					t.Errorf("%s -> web %s/%d: side %s, check says %s", p.from, p.proto, p.port, got, exp)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s -> web %s/%d: %d allowed records, want 1 (records: %+v)", p.from, p.proto, p.port, n, recs)
		}
	}
	t.Logf("%d allowed records", len(recs))
}
