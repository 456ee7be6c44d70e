package flow

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// TestExplainPending: with a staged default deny for shop's ingress
// (examples/staged-rollout), a flow the enforced policies allow carries
// the verdict it would get once the staged policy is enforced.
func TestExplainPending(t *testing.T) {
	objs, err := (&manifest.Loader{}).Load([]string{filepath.Join("..", "..", "examples", "staged-rollout")})
	if err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(objs.Cluster())
	// api -> db TCP/5432: no enforced policy isolates db; the staged
	// default-deny-ingress would deny it at db's ingress.
	p := Packet{Src: netip.MustParseAddr("10.244.1.20"), Dst: netip.MustParseAddr("10.244.1.30"), Proto: 6, SrcPort: 40000, DstPort: 5432}
	r := Explain(set, "node-1", time.Now(), p, false, policy.Ingress)
	if r.Pending == nil || r.Pending.Verdict != Denied || r.Pending.DeniedAt != "ingress" {
		t.Fatalf("pending = %+v, want denied at ingress", r.Pending)
	}
	if !r.Ingress.Allowed {
		t.Fatalf("enforced ingress: %+v", r.Ingress)
	}
	// Without staged policies, no pending.
	if r := Explain(set.WithStaged(), "node-1", time.Now(), p, true, policy.Ingress); r.Pending != nil {
		t.Fatalf("pending with staged policies enforced: %+v", r.Pending)
	}
}
