package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Endpoint names a flow's end as given on the command line: "ns/pod" or an
// IP address.
type Endpoint = policy.Endpoint

// ResolveEndpoint resolves "ns/pod" (or "pod" in namespace default) or an
// address. An address owned by a pod is that pod; any other is external.
func ResolveEndpoint(c *cluster.Cluster, s string) (Endpoint, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		ip = ip.Unmap()
		return Endpoint{Pod: c.PodByIP(ip), IP: ip}, nil
	}
	key := s
	if !strings.Contains(key, "/") {
		key = "default/" + key
	}
	p := c.Pod(key)
	if p == nil {
		return Endpoint{}, fmt.Errorf("%q: no such pod and not an IP address", s)
	}
	return Endpoint{Pod: p}, nil
}

// CheckRequest is a question "can From reach To on Port?". Port is
// "PROTO/NUMBER" or "PROTO/NAME" (a named port of the destination pod).
type CheckRequest struct {
	From, To string
	Port     string
}

// CheckResult is the answer, in the JSON form of `netfence check -o json`.
type CheckResult struct {
	Allowed  bool       `json:"allowed"`
	From     FlowEnd    `json:"from"`
	To       FlowEnd    `json:"to"`
	Protocol string     `json:"protocol"`
	Port     int32      `json:"port"`
	PortName string     `json:"portName,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Egress   SideResult `json:"egress"`
	Ingress  SideResult `json:"ingress"`
	// Notes are remarks, such as an inactive pod.
	Notes []string `json:"notes,omitempty"`
	// Warnings are the input's warnings (manifests and cluster), set by
	// the caller.
	Warnings []string `json:"warnings,omitempty"`
}

// FlowEnd is one end of a checked flow.
type FlowEnd struct {
	Pod string `json:"pod,omitempty"`
	IP  string `json:"ip,omitempty"`
}

// SideResult is one direction's verdict.
type SideResult struct {
	// Subject is false for external endpoints and hostNetwork pods.
	Subject   bool     `json:"subject"`
	Isolated  bool     `json:"isolated"`
	Policies  []string `json:"policies"`
	Allowed   bool     `json:"allowed"`
	AllowedBy []string `json:"allowedBy"`
	Reason    string   `json:"reason"`
}

// Check answers a request.
func Check(set *policy.Set, req CheckRequest) (*CheckResult, error) {
	c := set.Cluster
	from, err := ResolveEndpoint(c, req.From)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	to, err := ResolveEndpoint(c, req.To)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	byIP := [2]bool{from.IP.IsValid(), to.IP.IsValid()}
	// An address several running pods hold (see cluster.AddressConflict)
	// is the pod at the other end when that pod holds it: a pod sending
	// to its own address talks to itself.
	if byIP[1] && from.Pod != nil && to.Pod != nil && holds(c.Holders(to.IP), from.Pod) {
		to.Pod = from.Pod
	} else if byIP[0] && from.Pod != nil && to.Pod != nil && holds(c.Holders(from.IP), to.Pod) {
		from.Pod = to.Pod
	}
	protoS, portS, ok := strings.Cut(req.Port, "/")
	if !ok {
		protoS, portS = "TCP", req.Port
	}
	proto := corev1.Protocol(strings.ToUpper(protoS))
	switch proto {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return nil, fmt.Errorf("--port %q: protocol must be TCP, UDP or SCTP", req.Port)
	}
	res := &CheckResult{Protocol: string(proto)}
	if n, err := strconv.Atoi(portS); err == nil {
		if n < 1 || n > 65535 {
			return nil, fmt.Errorf("--port %q: port must be from 1 to 65535", req.Port)
		}
		res.Port = int32(n)
	} else {
		if to.Pod == nil {
			return nil, fmt.Errorf("--port %q: a named port needs a destination pod, and %s is not one", req.Port, req.To)
		}
		n, ok := to.Pod.NamedPort(portS, proto)
		if !ok {
			return nil, fmt.Errorf("--port %q: pod %s has no container port named %q for %s", req.Port, to.Pod.Key(), portS, proto)
		}
		res.Port, res.PortName = n, portS
	}
	// Addresses: the destination's primary address unless given, the
	// source's address of the same family.
	if !to.IP.IsValid() && to.Pod != nil && len(to.Pod.IPs) > 0 {
		to.IP = to.Pod.IPs[0]
	}
	if !from.IP.IsValid() && from.Pod != nil {
		from.IP = from.Pod.IPFor(to.IP)
	}
	for i, e := range []Endpoint{from, to} {
		if hs := c.Holders(e.IP); byIP[i] && len(hs) > 0 && e.Pod != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("address %s is held by %d running pods; it is taken as %s here, and every one of them is denied all traffic (fail closed)", e.IP, len(hs), e.Pod.Key()))
		}
	}
	for _, e := range []Endpoint{from, to} {
		if e.Pod != nil {
			if ok, why := e.Pod.Active(); !ok {
				res.Notes = append(res.Notes, fmt.Sprintf("pod %s %s: it takes part in no traffic now; the verdict is what policy says once it runs", e.Pod.Key(), why))
			}
		}
	}
	v := set.Evaluate(policy.Flow{
		From:     policy.Endpoint{Pod: from.Pod, IP: from.IP},
		To:       policy.Endpoint{Pod: to.Pod, IP: to.IP},
		Protocol: proto,
		Port:     res.Port,
	})
	res.Allowed, res.Reason = v.Allowed, v.Reason
	res.From, res.To = flowEnd(from), flowEnd(to)
	res.Egress, res.Ingress = sideResult(v.Egress), sideResult(v.Ingress)
	return res, nil
}

// holds reports whether p is one of pods.
func holds(pods []*cluster.Pod, p *cluster.Pod) bool {
	for _, h := range pods {
		if h.Key() == p.Key() {
			return true
		}
	}
	return false
}

func flowEnd(e Endpoint) FlowEnd {
	out := FlowEnd{}
	if e.Pod != nil {
		out.Pod = e.Pod.Key()
	}
	if e.IP.IsValid() {
		out.IP = e.IP.String()
	}
	return out
}

func sideResult(s policy.Side) SideResult {
	out := SideResult{Subject: s.Subject, Isolated: s.Isolated(), Allowed: s.Allowed, Reason: s.Reason, Policies: []string{}, AllowedBy: []string{}}
	for _, p := range s.Isolating {
		out.Policies = append(out.Policies, p.Key())
	}
	for _, m := range s.AllowedBy {
		out.AllowedBy = append(out.AllowedBy, m.String())
	}
	return out
}

// WriteJSON writes the result as JSON.
func (r *CheckResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result in words.
func (r *CheckResult) WriteText(w io.Writer) {
	verdict := "DENIED"
	if r.Allowed {
		verdict = "ALLOWED"
	}
	port := fmt.Sprintf("%s/%d", r.Protocol, r.Port)
	if r.PortName != "" {
		port += " (" + r.PortName + ")"
	}
	fmt.Fprintf(w, "%s: %s -> %s on %s\n", verdict, endWords(r.From), endWords(r.To), port)
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", r.Reason)
	}
	for _, s := range []struct {
		name string
		side SideResult
		end  FlowEnd
	}{{"egress at source", r.Egress, r.From}, {"ingress at destination", r.Ingress, r.To}} {
		mark := "denied"
		if s.side.Allowed {
			mark = "allowed"
		}
		fmt.Fprintf(w, "  %s (%s): %s\n", s.name, endWords(s.end), mark)
		if s.side.Isolated && len(s.side.Policies) > 0 {
			fmt.Fprintf(w, "    isolated by: %s\n", strings.Join(s.side.Policies, ", "))
		}
		if len(s.side.AllowedBy) > 0 {
			for _, a := range s.side.AllowedBy {
				fmt.Fprintf(w, "    allowed by: %s\n", a)
			}
		} else {
			fmt.Fprintf(w, "    %s\n", s.side.Reason)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func endWords(e FlowEnd) string {
	switch {
	case e.Pod != "" && e.IP != "":
		return e.Pod + " (" + e.IP + ")"
	case e.Pod != "":
		return e.Pod
	}
	return e.IP
}
