package bench

import (
	"testing"

	"github.com/netfence/netfence/internal/policy"
)

// TestClusterPolicyScenarioPath checks what the benchmark claims of its
// cluster policies: the client's connection to the server is allowed, its
// egress passed on by the Admin tier, its ingress decided by NetworkPolicy
// after the Admin tier matched nothing; and a remote pod of a denied group
// is denied at the server by a cluster policy.
func TestClusterPolicyScenarioPath(t *testing.T) {
	c, err := Build(Scenario{Policies: 100, RemotePods: 1000, ClusterPolicies: 100})
	if err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(c)
	if len(set.Rejected) > 0 || len(set.ClusterPolicies) != 100 {
		t.Fatalf("rejected %v, compiled %d", set.Rejected, len(set.ClusterPolicies))
	}
	v := set.Evaluate(set.AddrFlow(ClientAddr, ServerAddr, "TCP", ServerPort))
	if !v.Allowed || v.Egress.PassedBy == nil || v.Ingress.Layer != policy.LayerNetworkPolicy {
		t.Fatalf("client -> server: allowed=%v\negress: %s\ningress: %s", v.Allowed, v.Egress.Reason, v.Ingress.Reason)
	}
	v = set.Evaluate(set.AddrFlow(RemoteAddr(0), ServerAddr, "TCP", ServerPort))
	if v.Allowed || v.Ingress.Layer != policy.LayerAdmin {
		t.Fatalf("remote g0 -> server: allowed=%v\ningress: %s", v.Allowed, v.Ingress.Reason)
	}
}
