package flow

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/netfence/netfence/internal/analysis"
)

// side returns the side that decided the record, and its direction: the
// denying side of a denied record, else ingress (the last to decide).
func side(r *Record) (*analysis.SideResult, string) {
	if r.DeniedAt == "egress" || r.Verdict == Denied && r.DeniedAt == "" && !r.Egress.Allowed {
		return &r.Egress, "egress"
	}
	return &r.Ingress, "ingress"
}

// DecidedBy names the policy that decided a record, for the verdict
// metric: a cluster policy's key (namespace empty) when a tier decided;
// for a flow denied because no NetworkPolicy allowed it (or allowed by
// default), the namespace of the pod of that side and policy "" (the
// default deny); for an allowed flow, the namespace and name of the first
// allowing NetworkPolicy rule.
func DecidedBy(r Record) (namespace, policy, direction string) {
	s, dir := side(&r)
	if s.DecidedBy != nil {
		return "", s.DecidedBy.Policy, dir
	}
	end := r.To
	if dir == "egress" {
		end = r.From
	}
	ns, _, _ := strings.Cut(end, "/")
	if !strings.Contains(end, "/") {
		ns = ""
	}
	if r.Verdict == Allowed && len(s.AllowedBy) > 0 {
		ref, _, _ := strings.Cut(s.AllowedBy[0], " ")
		if pns, name, ok := strings.Cut(ref, "/"); ok {
			return pns, name, dir
		}
		return ns, ref, dir
	}
	return ns, "", dir
}

// why says in words what decided the record: the cluster policy rule, the
// NetworkPolicy rule, or the default deny and the isolating policies.
func why(r *Record) string {
	s, _ := side(r)
	switch {
	case s.DecidedBy != nil:
		return "by " + s.DecidedBy.Match
	case r.Verdict == Allowed && len(s.AllowedBy) > 0:
		return "by " + strings.Join(s.AllowedBy, ", ")
	case r.Verdict == Denied && len(s.Policies) > 0:
		return "default deny (isolated by " + strings.Join(s.Policies, ", ") + ")"
	case r.Verdict == Denied:
		return "default deny"
	}
	return ""
}

// WriteText writes the record as one line: time, verdict, from -> to,
// protocol/port, where it was denied and why.
func (r *Record) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s -> %s %s/%d", r.Time.Format(time.RFC3339Nano), r.Verdict, r.From, r.To, r.Protocol, r.Port)
	if r.DeniedAt != "" {
		b.WriteString(" " + r.DeniedAt)
	}
	if w := why(r); w != "" {
		b.WriteString(" " + w)
	}
	if r.Count > 1 {
		fmt.Fprintf(&b, " (x%d)", r.Count)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// Filter selects records; zero fields select everything.
type Filter struct {
	Verdict   string // denied or allowed
	Pod       string // ns/name, at either end
	Namespace string // at either end
	Policy    string // ns/name (or a cluster policy's key) among the deciders or isolating policies
	Port      int
}

// Match reports whether the filter selects r.
func (f *Filter) Match(r *Record) bool {
	if f.Verdict != "" && r.Verdict != f.Verdict {
		return false
	}
	if f.Port != 0 && r.Port != f.Port {
		return false
	}
	if f.Pod != "" && r.From != f.Pod && r.To != f.Pod {
		return false
	}
	if f.Namespace != "" && !inNamespace(r.From, f.Namespace) && !inNamespace(r.To, f.Namespace) {
		return false
	}
	if f.Policy != "" && !mentions(r, f.Policy) {
		return false
	}
	return true
}

func inNamespace(end, ns string) bool {
	return strings.HasPrefix(end, ns+"/")
}

// mentions reports whether the policy decided r or isolates one of its
// ends.
func mentions(r *Record, pol string) bool {
	for _, s := range []*analysis.SideResult{&r.Egress, &r.Ingress} {
		if s.DecidedBy != nil && s.DecidedBy.Policy == pol {
			return true
		}
		for _, p := range s.Policies {
			if p == pol {
				return true
			}
		}
		for _, a := range s.AllowedBy {
			if strings.HasPrefix(a, pol+" ") {
				return true
			}
		}
	}
	return false
}
