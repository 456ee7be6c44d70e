package synth

import (
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metadataName is the label the API server puts on every namespace.
const metadataName = "kubernetes.io/metadata.name"

// Labels Kubernetes controllers and Istio put on pods.
const (
	podTemplateHashLabel      = "pod-template-hash"
	controllerRevisionLabel   = "controller-revision-hash"
	statefulSetPodNameLabel   = "statefulset.kubernetes.io/pod-name"
	statefulSetPodIndexLabel  = "apps.kubernetes.io/pod-index"
	istioCanonicalNameLabel   = "service.istio.io/canonical-name"
	istioCanonicalRevisionLbl = "service.istio.io/canonical-revision"
	istioTLSModeLabel         = "security.istio.io/tlsMode"
)

// Shape of the generated workloads.
const (
	pendingFraction         = 0.01 // pods Pending without an address
	canaryFraction          = 0.08 // Deployments of 3+ replicas split off a canary
	versionFraction         = 0.35 // workloads with a version label
	podTeamLabelFraction    = 0.2  // workloads whose pods carry team=<team>
	portOverrideFraction    = 0.05 // http ports moved off 8080
	metricsDroppedFraction  = 0.1  // workloads without their metrics port
	maxWorkloadNameAttempts = 4
	nodeFirstHost           = 2
)

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func objectMeta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}
}

// pods decides the workloads of every namespace and emits their pods.
func (g *gen) pods() error {
	budget := g.cfg.Pods
	take := func(n int) int {
		n = min(n, budget)
		budget -= n
		return n
	}
	g.podNames = make(map[string]bool, g.cfg.Pods)
	if len(g.ns) == 0 {
		return nil
	}
	ks := g.ns[0]
	if n := take(2); n > 0 {
		g.infra(ks, "coredns", false, n, "registry.k8s.io/coredns/coredns:v1.11.3",
			map[string]string{"k8s-app": "kube-dns"},
			[]port{udpPort("dns", 53), tcpPort("dns-tcp", 53), tcpPort("metrics", 9153)})
	}
	if g.promNS != nil {
		if n := take(2); n > 0 {
			g.infra(g.promNS, "prometheus-k8s", true, n, "quay.io/prometheus/prometheus:v2.54.1",
				map[string]string{"app": "prometheus", "app.kubernetes.io/name": "prometheus"},
				[]port{tcpPort("web", 9090)})
		}
	}
	if g.ingNS != nil {
		if n := take(2); n > 0 {
			g.infra(g.ingNS, "ingress-nginx-controller", false, n, "registry.k8s.io/ingress-nginx/controller:v1.11.2",
				map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
				[]port{tcpPort("http", 80), tcpPort("https", 443), tcpPort("metrics", 10254), tcpPort("webhook", 8443)})
		}
	}
	if n := take(1); n > 0 {
		g.infra(ks, "metrics-server", false, n, "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
			map[string]string{"k8s-app": "metrics-server"}, []port{tcpPort("https", 10250)})
	}
	if g.promNS != nil {
		if n := take(1); n > 0 {
			g.infra(g.promNS, "grafana", false, n, "grafana/grafana:11.2.0",
				map[string]string{"app": "grafana", "app.kubernetes.io/name": "grafana"},
				[]port{tcpPort("http", 3000)})
		}
	}

	// Every application namespace gets one workload while pods last, then
	// workloads go to namespaces by weight.
	for _, ni := range g.appNS {
		if budget == 0 {
			break
		}
		g.appWorkload(ni, take)
	}
	cum := make([]float64, len(g.appNS))
	total := 0.0
	for i, ni := range g.appNS {
		total += ni.weight
		cum[i] = total
	}
	for budget > 0 {
		x := g.r.Float64() * total
		i := searchFloat(cum, x)
		g.appWorkload(g.appNS[i], take)
	}

	var exporters *nsInfo
	if g.cfg.ClusterPolicies > 0 {
		exporters = g.exporterNamespace()
	}
	for _, ni := range g.ns {
		for _, w := range ni.workloads {
			if err := g.emitPods(w); err != nil {
				return err
			}
		}
		if ni == exporters {
			g.nodeExporters(ni)
		}
	}
	return nil
}

// searchFloat returns the first i with cum[i] > x.
func searchFloat(cum []float64, x float64) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		m := (lo + hi) / 2
		if cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// infra adds an infrastructure workload.
func (g *gen) infra(ni *nsInfo, name string, stateful bool, replicas int, image string, labels map[string]string, ports []port) *workload {
	w := &workload{ns: ni, name: name, app: labels["app"], stateful: stateful, replicas: replicas,
		labels: labels, ports: ports, image: image, hash: g.templateHash()}
	g.finishLabels(w)
	ni.addWorkload(w)
	return w
}

// templateHash returns a pod-template-hash-like value.
func (g *gen) templateHash() string { return g.randString(9 + g.r.IntN(2)) }

// drawReplicas returns a replica count: mostly small, sometimes large.
func (g *gen) drawReplicas(stateful bool) int {
	x := g.r.Float64()
	if stateful {
		switch {
		case x < 0.4:
			return 1
		case x < 0.85:
			return 3
		case x < 0.93:
			return 2
		default:
			return 5
		}
	}
	switch {
	case x < 0.40:
		return 1
	case x < 0.65:
		return 2
	case x < 0.80:
		return 3
	case x < 0.90:
		return 4 + g.r.IntN(3)
	case x < 0.97:
		return 7 + g.r.IntN(6)
	default:
		return 13 + g.r.IntN(8)
	}
}

// appWorkload adds an application workload (and maybe a canary of it) to
// ni, taking its pods from the budget through take.
func (g *gen) appWorkload(ni *nsInfo, take func(int) int) {
	t := pick(g.r, templates)
	replicas := take(g.drawReplicas(t.stateful))
	if replicas == 0 {
		return
	}
	name := ""
	for range maxWorkloadNameAttempts {
		name = oneOf(g.r, prefixes) + "-" + t.role
		if !ni.hasWorkload(name) {
			break
		}
	}
	for i := 2; ni.hasWorkload(name); i++ {
		name = fmt.Sprintf("%s-%s-%d", oneOf(g.r, prefixes), t.role, i)
	}
	w := &workload{ns: ni, name: name, app: name, tier: t.tier, tmpl: t, stateful: t.stateful,
		replicas: replicas, image: t.image, hash: g.templateHash()}
	for _, p := range t.ports {
		if p.name == "metrics" && len(t.ports) > 1 && g.chance(metricsDroppedFraction) {
			continue
		}
		if p.name == "http" && p.num == 8080 && g.chance(portOverrideFraction) {
			p.num = oneOf(g.r, []int32{8000, 8081, 8443})
		}
		w.ports = append(w.ports, p)
	}
	w.labels = map[string]string{"app": name, "tier": t.tier, "app.kubernetes.io/name": name}
	version := 0
	if g.chance(versionFraction) {
		version = 1 + g.r.IntN(4)
		w.labels["version"] = "v" + strconv.Itoa(version)
	}
	if g.chance(podTeamLabelFraction) && ni.team != "" {
		w.labels["team"] = ni.team
	}
	var canary *workload
	if !w.stateful && replicas >= 3 && g.chance(canaryFraction) {
		w.replicas--
		if version == 0 {
			version = 1
			w.labels["version"] = "v1"
		}
		canary = &workload{ns: ni, name: name + "-canary", app: name, tier: t.tier, tmpl: t,
			replicas: 1, image: t.image + "-rc1", hash: g.templateHash()}
		canary.ports = append([]port(nil), w.ports...)
		if len(canary.ports) > 0 && g.chance(0.5) {
			// The new version moved its main port: the same name now means
			// another number.
			canary.ports[0].num++
		}
		canary.labels = clone(w.labels)
		canary.labels["version"] = "v" + strconv.Itoa(version+1)
		canary.labels["track"] = "canary"
	}
	g.finishLabels(w)
	ni.addWorkload(w)
	if canary != nil {
		g.finishLabels(canary)
		ni.addWorkload(canary)
	}
}

// hasWorkload reports whether ni already has a workload named name (or a
// canary of it).
func (ni *nsInfo) hasWorkload(name string) bool {
	return ni.wlNames[name] || ni.wlNames[name+"-canary"]
}

// addWorkload records w as one of ni's workloads.
func (ni *nsInfo) addWorkload(w *workload) {
	if ni.wlNames == nil {
		ni.wlNames = map[string]bool{}
	}
	ni.wlNames[w.name] = true
	ni.workloads = append(ni.workloads, w)
}

// finishLabels adds the controller and sidecar labels to w.labels.
func (g *gen) finishLabels(w *workload) {
	if w.stateful {
		w.labels[controllerRevisionLabel] = w.name + "-" + w.hash
	} else {
		w.labels[podTemplateHashLabel] = w.hash
	}
	if w.ns.istio {
		w.labels[istioTLSModeLabel] = "istio"
		w.labels[istioCanonicalNameLabel] = w.app
		rev := w.labels["version"]
		if rev == "" {
			rev = "latest"
		}
		w.labels[istioCanonicalRevisionLbl] = rev
	}
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// nodeHostIPs returns node i's addresses.
func (g *gen) nodeHostIPs(i int) []corev1.HostIP {
	a := uint32(172)<<24 | uint32(18)<<16 | uint32(i+nodeFirstHost)
	v4 := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	ips := []corev1.HostIP{{IP: v4.String()}}
	if g.cfg.IPv6 {
		b := netip.MustParseAddr("fd00:172:18::").As16()
		h := i + nodeFirstHost
		b[14], b[15] = byte(h>>8), byte(h)
		ips = append(ips, corev1.HostIP{IP: netip.AddrFrom16(b).String()})
	}
	return ips
}

// emitPods creates w's pods, spread over nodes from a random start.
func (g *gen) emitPods(w *workload) error {
	nodes := g.cfg.Nodes
	start := g.r.IntN(nodes)
	ports := make([]corev1.ContainerPort, len(w.ports))
	for i, p := range w.ports {
		ports[i] = corev1.ContainerPort{Name: p.name, ContainerPort: p.num, Protocol: p.proto}
	}
	cname := w.name
	if w.tmpl != nil {
		cname = w.tmpl.role
	}
	for j := range w.replicas {
		node := (start + j) % nodes
		labels := clone(w.labels)
		var name string
		if w.stateful {
			name = w.name + "-" + strconv.Itoa(j)
			labels[statefulSetPodNameLabel] = name
			labels[statefulSetPodIndexLabel] = strconv.Itoa(j)
		} else {
			for name == "" || g.podNames[w.ns.name+"/"+name] {
				name = w.name + "-" + w.hash + "-" + g.randString(5)
			}
		}
		g.podNames[w.ns.name+"/"+name] = true
		pod := &corev1.Pod{
			TypeMeta:   typeMeta("v1", "Pod"),
			ObjectMeta: objectMeta(name, w.ns.name, labels),
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: cname, Image: w.image, Ports: ports}},
				NodeName:   nodeName(node),
			},
		}
		if w.ns.istio {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
				Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.23.2",
				Ports: []corev1.ContainerPort{{Name: istioProxyPorts[0].name,
					ContainerPort: istioProxyPorts[0].num, Protocol: istioProxyPorts[0].proto}},
			})
		}
		hostIPs := g.nodeHostIPs(node)
		pod.Status.HostIP = hostIPs[0].IP
		pod.Status.HostIPs = hostIPs
		if g.chance(pendingFraction) {
			pod.Status.Phase = corev1.PodPending
		} else {
			pod.Status.Phase = corev1.PodRunning
			b, h, err := g.ipam.alloc(node)
			if err != nil {
				return err
			}
			v4 := hostAddr(blockPrefix4(b.index), h).String()
			pod.Status.PodIP = v4
			pod.Status.PodIPs = []corev1.PodIP{{IP: v4}}
			if g.cfg.IPv6 {
				pod.Status.PodIPs = append(pod.Status.PodIPs,
					corev1.PodIP{IP: hostAddr(blockPrefix6(b.index), h).String()})
			}
		}
		g.out.Pods = append(g.out.Pods, pod)
	}
	return nil
}
