package policy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/iprange"
)

func rng(s string) AddrRange {
	r, err := iprange.Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func rangeStrings(rs []AddrRange) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func TestBlockRanges(t *testing.T) {
	b := &IPBlock{
		CIDR: netip.MustParsePrefix("10.0.0.0/24"),
		Except: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.16/28"),
			netip.MustParsePrefix("10.0.0.0/31"),
			netip.MustParsePrefix("10.0.0.255/32"),
			netip.MustParsePrefix("fd00::/64"), // other family: no effect
		},
	}
	got := rangeStrings(blockRanges(b))
	want := []string{"10.0.0.2-10.0.0.15", "10.0.0.32-10.0.0.254"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	b = &IPBlock{CIDR: netip.MustParsePrefix("10.0.0.0/24"), Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}
	if got := blockRanges(b); len(got) != 0 {
		t.Errorf("block inside its exception: got %v", got)
	}
}

func TestNormalizeExample(t *testing.T) {
	p := &Policy{Namespace: "ns", Name: "p"}
	src := func(rule int) RuleMatch { return RuleMatch{Policy: p, Rule: rule, Peer: 0, Port: 0} }
	a := &Allowance{Items: []Item{
		// 10.0.0.0/30 on TCP 80-90
		{Addrs: []AddrRange{rng("10.0.0.0/30")}, Service: Service{Protocol: corev1.ProtocolTCP, FromPort: 80, ToPort: 90}, Source: src(0)},
		// 10.0.0.4 on TCP 85-100: overlaps ports 85-90
		{Addrs: []AddrRange{rng("10.0.0.4")}, Service: Service{Protocol: corev1.ProtocolTCP, FromPort: 85, ToPort: 100}, Source: src(1)},
		// 10.0.0.2 on everything: removed from the port part
		{Addrs: []AddrRange{rng("10.0.0.2"), rng("fd00::1")}, Service: Service{AllProtocols: true}, Source: src(2)},
		// UDP 53 from two adjacent single addresses and one more
		{Addrs: []AddrRange{rng("10.0.0.8"), rng("10.0.0.9"), rng("10.0.0.20")}, Service: Service{Protocol: corev1.ProtocolUDP, FromPort: 53, ToPort: 53}, Source: src(3)},
		// same rectangle twice on UDP 54: merges with 53 (equal addresses)
		{Addrs: []AddrRange{rng("10.0.0.8-10.0.0.9"), rng("10.0.0.20")}, Service: Service{Protocol: corev1.ProtocolUDP, FromPort: 54, ToPort: 54}, Source: src(4)},
	}}
	n := a.Normalize()
	var got []string
	for _, s := range n.All {
		got = append(got, fmt.Sprintf("all %s %d", s.Addrs(), len(n.SourcesOf(&s))))
	}
	for _, r := range n.Ports {
		got = append(got, fmt.Sprintf("%s %s %d-%d %d", ProtocolOf(r.Protocol), r.Addrs(), r.FromPort, r.ToPort, len(n.SourcesOf(&r))))
	}
	want := []string{
		"all 10.0.0.2 1",
		"all fd00::1 1",
		"TCP 10.0.0.0/31 80-84 1",
		"TCP 10.0.0.3 80-84 1",
		"TCP 10.0.0.0/31 85-90 2",
		"TCP 10.0.0.3-10.0.0.4 85-90 2",
		"TCP 10.0.0.4 91-100 1",
		"UDP 10.0.0.8/31 53-54 2",
		"UDP 10.0.0.20 53-54 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// randomCluster builds a small cluster whose pods share few addresses, so
// that ownership, ipBlocks, named ports and inactive pods interact.
func randomCluster(r *rand.Rand) *cluster.Cluster {
	nss := []*cluster.Namespace{
		{Name: "a", Labels: labels.Set{"team": "x"}, Defined: true},
		{Name: "b", Labels: labels.Set{"team": "y"}, Defined: true},
		{Name: "c", Labels: labels.Set{"team": "x", "env": "prod"}, Defined: true},
	}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	portChoices := []cluster.ContainerPort{
		{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
		{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080},
		{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
		{Name: "dns", Protocol: corev1.ProtocolTCP, Port: 53},
		{Name: "sig", Protocol: corev1.ProtocolSCTP, Port: 9000},
		{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090},
		{Protocol: corev1.ProtocolTCP, Port: 443},
	}
	var pods []*cluster.Pod
	n := 4 + r.IntN(8)
	for i := 0; i < n; i++ {
		p := &cluster.Pod{
			Namespace: pick("a", "b", "c"),
			Name:      fmt.Sprintf("p%d", i),
			Labels:    labels.Set{},
			Phase:     corev1.PodRunning,
			NodeName:  "n1",
		}
		if r.IntN(4) > 0 {
			p.Labels["app"] = pick("web", "db", "api")
		}
		if r.IntN(2) == 0 {
			p.Labels["tier"] = pick("front", "back")
		}
		switch r.IntN(10) {
		case 0:
			p.Phase = corev1.PodPending
		case 1:
			p.Phase = corev1.PodSucceeded
		}
		switch {
		case r.IntN(8) == 0:
			p.HostNetwork = true
			p.IPs = []netip.Addr{netip.MustParseAddr("192.168.0.1")}
		case r.IntN(12) == 0:
			// no address
		default:
			if r.IntN(5) > 0 {
				p.IPs = append(p.IPs, netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(12))}))
			}
			if r.IntN(3) == 0 || len(p.IPs) == 0 {
				p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00::%x", r.IntN(12))))
			}
		}
		for _, cp := range portChoices {
			if r.IntN(3) == 0 {
				p.Ports = append(p.Ports, cp)
			}
		}
		pods = append(pods, p)
	}
	var nps []*networkingv1.NetworkPolicy
	for i, m := 0, 2+r.IntN(6); i < m; i++ {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pick("a", "b", "c"), Name: fmt.Sprintf("np%d", i)}}
		if r.IntN(3) > 0 {
			np.Spec.PodSelector.MatchLabels = map[string]string{"app": pick("web", "db", "api")}
		}
		switch r.IntN(4) {
		case 1:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 2:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		case 3:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		}
		for j, k := 0, r.IntN(3); j < k; j++ {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randomPeers(r), Ports: randomPorts(r)})
		}
		for j, k := 0, r.IntN(3); j < k; j++ {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randomPeers(r), Ports: randomPorts(r)})
		}
		nps = append(nps, np)
	}
	return cluster.New(nss, pods, nps)
}

func randomPeers(r *rand.Rand) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPeer
		switch r.IntN(7) {
		case 0:
			p.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": []string{"web", "db", "api"}[r.IntN(3)]}}
		case 1:
			p.PodSelector = &metav1.LabelSelector{}
		case 2:
			p.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
			if r.IntN(2) == 0 {
				p.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}
			}
		case 3:
			p.NamespaceSelector = &metav1.LabelSelector{}
		default:
			blocks := []networkingv1.IPBlock{
				{CIDR: "10.0.0.0/30"},
				{CIDR: "10.0.0.0/28", Except: []string{"10.0.0.2/31", "10.0.0.8/32"}},
				{CIDR: "fd00::/125"},
				{CIDR: "fd00::/120", Except: []string{"fd00::4/126"}},
				{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/29"}},
				{CIDR: "192.168.0.0/24"},
				{CIDR: "::/0"},
			}
			b := blocks[r.IntN(len(blocks))]
			p.IPBlock = &b
		}
		out = append(out, p)
	}
	return out
}

func randomPorts(r *rand.Rand) []networkingv1.NetworkPolicyPort {
	proto := func(p corev1.Protocol) *corev1.Protocol { return &p }
	num := func(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }
	name := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	end := func(n int32) *int32 { return &n }
	choices := []networkingv1.NetworkPolicyPort{
		{Port: num(80)},
		{Protocol: proto(corev1.ProtocolUDP), Port: num(53)},
		{Protocol: proto(corev1.ProtocolTCP), Port: num(8000), EndPort: end(8100)},
		{Protocol: proto(corev1.ProtocolTCP), Port: num(79), EndPort: end(81)},
		{Port: name("http")},
		{Protocol: proto(corev1.ProtocolUDP), Port: name("dns")},
		{Protocol: proto(corev1.ProtocolTCP), Port: name("dns")},
		{Protocol: proto(corev1.ProtocolSCTP), Port: num(9000)},
		{Protocol: proto(corev1.ProtocolSCTP), Port: name("sig")},
		{Protocol: proto(corev1.ProtocolTCP)},
		{Protocol: proto(corev1.ProtocolUDP)},
	}
	var out []networkingv1.NetworkPolicyPort
	for i, n := 0, r.IntN(3); i < n; i++ {
		out = append(out, choices[r.IntN(len(choices))])
	}
	return out
}

// checkNormalized verifies the invariants Normalize promises.
func checkNormalized(t *testing.T, n *Normalized) {
	t.Helper()
	for i, s := range n.All {
		if s.Protocol != AnyProtocol || s.FromPort != 0 || s.ToPort != 65535 || s.Action != Accept || len(n.SourcesOf(&s)) == 0 {
			t.Fatalf("bad All rectangle %+v", s)
		}
		if i == 0 {
			continue
		}
		a, b := n.All[i-1].Addrs(), s.Addrs()
		if a.From.BitLen() == b.From.BitLen() && (b.From.Compare(a.To) <= 0 || a.To.Next() == b.From) {
			t.Fatalf("All not disjoint and apart: %s, %s", a, b)
		}
		if iprange.Compare(a, b) >= 0 {
			t.Fatalf("All not sorted: %s, %s", a, b)
		}
	}
	for i, x := range n.Ports {
		xa := x.Addrs()
		if x.Protocol == AnyProtocol || x.Action != Accept || x.FromPort > x.ToPort || xa.From.Compare(xa.To) > 0 || len(n.SourcesOf(&x)) == 0 {
			t.Fatalf("bad rectangle %+v", x)
		}
		for _, s := range n.All {
			if sa := s.Addrs(); sa.From.BitLen() == xa.From.BitLen() && sa.Overlaps(xa) {
				t.Fatalf("rectangle %d %s overlaps All %s", x.Protocol, xa, sa)
			}
		}
		for _, y := range n.Ports[i+1:] {
			ya := y.Addrs()
			if x.Protocol == y.Protocol && xa.From.BitLen() == ya.From.BitLen() &&
				xa.Overlaps(ya) && x.FromPort <= y.ToPort && y.FromPort <= x.ToPort {
				t.Fatalf("rectangles overlap: %+v, %+v", x, y)
			}
		}
	}
}

// TestResolveMatchesEvaluate checks, on random clusters, that an allowance
// and its normalised form allow exactly what Evaluate allows on the same
// side of a flow.
func TestResolveMatchesEvaluate(t *testing.T) {
	clusters := 150
	if testing.Short() {
		clusters = 60
	}
	var addrs []netip.Addr
	for i := 0; i < 16; i++ {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), netip.MustParseAddr(fmt.Sprintf("fd00::%x", i)))
	}
	for _, s := range []string{"192.168.0.0", "192.168.0.1", "192.168.0.2", "8.8.8.8", "0.0.0.0", "255.255.255.255", "9.255.255.255", "::", "fd00::ff", "fd00::100", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		addrs = append(addrs, netip.MustParseAddr(s))
	}
	ports := []int32{0, 1, 52, 53, 54, 79, 80, 81, 82, 443, 7999, 8000, 8080, 8100, 8101, 9000, 9090, 65535}
	protos := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	var checked, allowed, isolated, conflicted int
	for seed := 0; seed < clusters; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		c := randomCluster(r)
		s := NewSet(c)
		if len(s.Rejected) > 0 {
			t.Fatalf("seed %d: rejected policies: %v", seed, s.Rejected)
		}
		res := NewResolver(s)
		owner := func(ip netip.Addr) *cluster.Pod {
			if p := c.PodByIP(ip); p != nil {
				if ok, _ := p.Active(); ok {
					return p
				}
			}
			return nil
		}
		for _, subject := range c.Pods {
			if ok, _ := subject.Active(); !ok || subject.HostNetwork {
				continue
			}
			for _, dir := range Directions {
				a := res.Resolve(subject, dir)
				if b := s.Resolve(subject, dir); (a == nil) != (b == nil) || (a != nil && len(a.Items) != len(b.Items)) {
					t.Fatalf("seed %d: Resolver and Set.Resolve differ", seed)
				}
				if c.Conflicted(subject) {
					conflicted++
					if a == nil || a.Conflict == nil || len(a.Items) != 0 {
						t.Fatalf("seed %d: %s holds a shared address, but its %s allowance is %+v", seed, subject.Key(), dir, a)
					}
				}
				var n *Normalized
				if a != nil {
					isolated++
					n = a.Normalize()
					checkNormalized(t, n)
				}
				// A random half of the ports keeps the test quick under -race.
				sample := slices.Clone(ports)
				r.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
				sample = sample[:len(sample)/2]
				for _, ip := range addrs {
					peer := Endpoint{Pod: owner(ip), IP: ip}
					if peer.Pod == subject {
						continue // a pod talking to itself never reaches the dataplane
					}
					if _, own := s.FromOwnNode(peer, subject); own && dir == Ingress {
						continue // nor does its own node's traffic (the output hook)
					}
					self := Endpoint{Pod: subject, IP: subject.IPFor(ip)}
					for _, proto := range protos {
						for _, port := range sample {
							f := Flow{From: self, To: peer, Protocol: proto, Port: port}
							if dir == Ingress {
								f = Flow{From: peer, To: self, Protocol: proto, Port: port}
							}
							v := s.Evaluate(f)
							side := v.Ingress
							if dir == Egress {
								side = v.Egress
							}
							checked++
							if side.Allowed {
								allowed++
							}
							if a == nil {
								if side.Isolated() || !side.Allowed {
									t.Fatalf("seed %d: %s %s not isolated by Resolve but Evaluate says %s", seed, subject.Key(), dir, side.Reason)
								}
								continue
							}
							if got := a.Allows(ip, proto, port); got != side.Allowed {
								t.Fatalf("seed %d: %s %s peer %s %s/%d: allowance says %v, Evaluate %v (%s)\nitems: %s",
									seed, subject.Key(), dir, ip, proto, port, got, side.Allowed, side.Reason, describeItems(a))
							}
							if got := n.Allows(ip, proto, port); got != side.Allowed {
								t.Fatalf("seed %d: %s %s peer %s %s/%d: normalised allowance says %v, Evaluate %v (%s)\nitems: %s",
									seed, subject.Key(), dir, ip, proto, port, got, side.Allowed, side.Reason, describeItems(a))
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d checks over %d isolated pod directions (%d of pods with a shared address), %d allowed", checked, isolated, conflicted, allowed)
	if isolated == 0 || allowed == 0 || allowed == checked || conflicted == 0 {
		t.Fatalf("degenerate random test: %d checks, %d allowed, %d isolated", checked, allowed, isolated)
	}
}

func describeItems(a *Allowance) string {
	var b strings.Builder
	for _, it := range a.Items {
		fmt.Fprintf(&b, "\n  %v %s from %s", rangeStrings(it.Addrs), it.Service, it.Source)
	}
	return b.String()
}

func TestResolveNotIsolated(t *testing.T) {
	pod := &cluster.Pod{Namespace: "a", Name: "x", Phase: corev1.PodRunning, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	host := &cluster.Pod{Namespace: "a", Name: "h", Phase: corev1.PodRunning, HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "deny"}}
	s := NewSet(cluster.New(nil, []*cluster.Pod{pod, host}, []*networkingv1.NetworkPolicy{np}))
	if a := s.Resolve(pod, Egress); a != nil {
		t.Errorf("egress: want nil, got %+v", a)
	}
	if a := s.Resolve(host, Ingress); a != nil {
		t.Errorf("hostNetwork pod: want nil, got %+v", a)
	}
	a := s.Resolve(pod, Ingress)
	if a == nil || len(a.Items) != 0 || len(a.Isolating) != 1 {
		t.Fatalf("ingress: want deny-all allowance, got %+v", a)
	}
	if n := a.Normalize(); len(n.All) != 0 || len(n.Ports) != 0 {
		t.Errorf("deny-all normalises to %+v", n)
	}
}

// TestResolverAdvance changes random clusters a little (pods readdressed,
// often to another pod's address, started, stopped, relabelled) and checks
// that a resolver moved on with Advance resolves exactly as a fresh one,
// also for the pods that came to share an address, or stopped sharing one,
// without changing themselves.
func TestResolverAdvance(t *testing.T) {
	runs := 200
	if testing.Short() {
		runs = 80
	}
	flipped := 0
	for seed := 0; seed < runs; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		c1 := randomCluster(r)
		s1 := NewSet(c1)
		res := NewResolver(s1)
		for _, p := range c1.Pods {
			for _, dir := range Directions {
				res.Resolve(p, dir) // fill the cache
			}
		}
		pods := slices.Clone(c1.Pods)
		var changed []string
		for k := 1 + r.IntN(3); k > 0; k-- {
			i := r.IntN(len(pods))
			p := *pods[i]
			p.Labels = maps.Clone(p.Labels)
			switch r.IntN(5) {
			case 0, 1: // to another pod's address
				if o := pods[r.IntN(len(pods))]; len(o.IPs) > 0 {
					p.IPs = []netip.Addr{o.IPs[r.IntN(len(o.IPs))]}
				}
			case 2: // to a fresh address
				p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 1, byte(seed)})}
			case 3:
				if p.Phase == corev1.PodRunning {
					p.Phase = corev1.PodSucceeded
				} else {
					p.Phase = corev1.PodRunning
				}
			default:
				p.Labels["app"] = []string{"web", "db", "api"}[r.IntN(3)]
			}
			pods[i] = &p
			changed = append(changed, p.Key())
		}
		var nss []*cluster.Namespace
		for _, ns := range c1.Namespaces {
			nss = append(nss, ns)
		}
		c2 := cluster.New(nss, pods, c1.Policies)
		s2 := NewSet(c2)
		for _, p := range c2.Pods {
			if !slices.Contains(changed, p.Key()) && c1.Conflicted(c1.Pod(p.Key())) != c2.Conflicted(p) {
				flipped++
			}
		}
		res.Advance(s2, changed, nil)
		fresh := NewResolver(s2)
		for _, p := range c2.Pods {
			for _, dir := range Directions {
				got, want := res.Resolve(p, dir), fresh.Resolve(p, dir)
				if (got == nil) != (want == nil) || (got != nil && ((got.Conflict == nil) != (want.Conflict == nil) ||
					!reflect.DeepEqual(got.Normalize(), want.Normalize()))) {
					t.Fatalf("seed %d: after changing %v, %s %s resolves differently after Advance:\ngot %s\nwant %s",
						seed, changed, p.Key(), dir, describeAllowance(got), describeAllowance(want))
				}
			}
		}
	}
	t.Logf("%d runs: %d unchanged pods came to share an address or stopped sharing one", runs, flipped)
	if flipped == 0 {
		t.Fatal("no pod's shared address changed through another pod")
	}
}

func describeAllowance(a *Allowance) string {
	if a == nil {
		return "not isolated"
	}
	if a.Conflict != nil {
		return "shared address " + a.Conflict.Addr.String()
	}
	return describeItems(a)
}
