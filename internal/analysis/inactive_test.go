package analysis

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestCheckInactivePodAddressIsExternal: an address held by a Pending pod
// is external, as the dataplane (which renders only active pods) sees it,
// so the pod's ingress isolation does not apply to a check by address.
func TestCheckInactivePodAddressIsExternal(t *testing.T) {
	pending := &cluster.Pod{Namespace: "ns", Name: "pending", Labels: labels.Set{"app": "db"}, Phase: corev1.PodPending,
		IPs: []netip.Addr{netip.MustParseAddr("10.7.0.1")}}
	client := &cluster.Pod{Namespace: "ns", Name: "client", Phase: corev1.PodRunning, IPs: []netip.Addr{netip.MustParseAddr("10.7.0.21")}}
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	set := policy.NewSet(cluster.New(nil, []*cluster.Pod{pending, client}, []*networkingv1.NetworkPolicy{deny}))
	res, err := Check(set, CheckRequest{From: "ns/client", To: "10.7.0.1", Port: "TCP/80"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed || res.Ingress.Subject {
		t.Fatalf("check to a pending pod's address: allowed=%v, ingress %+v", res.Allowed, res.Ingress)
	}
}
