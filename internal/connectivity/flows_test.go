package connectivity

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// flowStats count what checkFlows checked.
type flowStats struct {
	probes, denied, audited, pending int
}

// checkFlows holds the flow records of a run (Options.Flows) to the wire
// and to the analyzer: every probe appears in exactly one record (its
// packets merged), with the verdict the probe observed (allowed, in audit
// mode, where nothing is denied), denied at the direction the analyzer
// denies it in, with the sides `netfence check -o json` gives for that
// flow, and with the pending verdict of the policies with the staged ones
// enforced (Set.WithStaged); and every TCP, UDP or SCTP record is a
// probe's.
func checkFlows(t *testing.T, name string, set *policy.Set, rep *Report, st *flowStats) {
	t.Helper()
	type key struct {
		src, dst, proto string
		port            int
	}
	recs := map[key][]flow.Record{}
	for _, r := range rep.Flows {
		switch r.Protocol {
		case "TCP", "UDP", "SCTP":
			k := key{r.SrcIP, r.DstIP, r.Protocol, r.Port}
			recs[k] = append(recs[k], r)
		}
	}
	staged := set.WithStaged()
	seen := map[key]bool{}
	for _, res := range rep.Results {
		if !res.Probed {
			continue
		}
		st.probes++
		k := key{res.FromAddress, res.ToAddress, res.Protocol, int(res.Port)}
		seen[k] = true
		what := fmt.Sprintf("%s: %s -> %s (%s -> %s) %s/%d", name, res.From, res.To, res.FromAddress, res.ToAddress, res.Protocol, res.Port)
		got := recs[k]
		if len(got) != 1 {
			t.Errorf("%s: %d flow records, want exactly one: %+v", what, len(got), got)
			continue
		}
		r := got[0]
		src, dst := netip.MustParseAddr(res.FromAddress), netip.MustParseAddr(res.ToAddress)
		proto := corev1.Protocol(res.Protocol)
		v := set.Evaluate(set.AddrFlow(src, dst, proto, res.Port))
		pv := staged.Evaluate(staged.AddrFlow(src, dst, proto, res.Port))

		// The verdict is the wire's.
		wantVerdict := flow.Denied
		if res.Allowed {
			wantVerdict = flow.Allowed
		}
		if r.Verdict != wantVerdict {
			t.Errorf("%s: record verdict %s, the probe was %s (%s)", what, r.Verdict, wantVerdict, res.Outcome)
		}
		if rep.Audit && r.Verdict != flow.Allowed {
			t.Errorf("%s: audit mode, record verdict %s", what, r.Verdict)
		}
		if !rep.Audit && r.Verdict == flow.Denied != !v.Allowed {
			t.Errorf("%s: record verdict %s, analyzer allowed=%v", what, r.Verdict, v.Allowed)
		}
		if want := deniedAt(v); !rep.Audit && r.DeniedAt != want {
			t.Errorf("%s: denied at %q, analyzer %q", what, r.DeniedAt, want)
		}
		if r.Verdict == flow.Denied {
			st.denied++
		}

		// The sides are check's.
		cr, err := analysis.Check(set, analysis.CheckRequest{From: res.FromAddress, To: res.ToAddress, Port: fmt.Sprintf("%s/%d", res.Protocol, res.Port)})
		if err != nil {
			t.Fatalf("%s: check: %v", what, err)
		}
		if !reflect.DeepEqual(r.Egress, cr.Egress) || !reflect.DeepEqual(r.Ingress, cr.Ingress) {
			t.Errorf("%s: record sides differ from check's:\n  record egress %+v ingress %+v\n  check  egress %+v ingress %+v", what, r.Egress, r.Ingress, cr.Egress, cr.Ingress)
		}
		if cr.Egress.Allowed != v.Egress.Allowed || cr.Ingress.Allowed != v.Ingress.Allowed {
			t.Errorf("%s: check says egress %v ingress %v, Set.Evaluate %v %v", what, cr.Egress.Allowed, cr.Ingress.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
		}

		// Pending: the verdict with the staged policies enforced, there
		// whenever it can differ from the verdict (staged policies, or
		// audit mode denying nothing).
		pendingVerdict, pendingAt := r.Verdict, r.DeniedAt
		if r.Pending != nil {
			pendingVerdict, pendingAt = r.Pending.Verdict, r.Pending.DeniedAt
			st.pending++
		} else if rep.Audit && !pv.Allowed || len(set.Staged)+len(set.StagedCluster) > 0 {
			t.Errorf("%s: no pending verdict", what)
		}
		if (pendingVerdict == flow.Allowed) != pv.Allowed || pendingAt != deniedAt(pv) {
			t.Errorf("%s: pending %s at %q, analyzer with staged policies allowed=%v at %q", what, pendingVerdict, pendingAt, pv.Allowed, deniedAt(pv))
		}
		if rep.Audit && !v.Allowed {
			st.audited++
		}
	}
	for k, rs := range recs {
		if !seen[k] {
			t.Errorf("%s: flow record of no probe: %+v", name, rs)
		}
	}
}

// deniedAt is the direction a decision denies a flow in, as records say
// it: the source's egress first.
func deniedAt(v policy.Verdict) string {
	switch {
	case v.Allowed:
		return ""
	case !v.Egress.Allowed:
		return "egress"
	}
	return "ingress"
}

// TestExampleFlows runs every bundled example with the flow monitor on,
// enforcing and then in audit mode, and holds its records to the probes
// and the analyzer (checkFlows). examples/staged-rollout stages policies:
// its pending verdicts are the analyzer's with them enforced.
func TestExampleFlows(t *testing.T) {
	needRoot(t)
	dirs, err := filepath.Glob("../../examples/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var st flowStats
	stagedSeen := false
	for i, dir := range dirs {
		objs, err := (&manifest.Loader{}).Load([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		set := policy.NewSet(objs.Cluster())
		stagedSeen = stagedSeen || len(set.Staged) > 0
		for _, audit := range []bool{false, true} {
			name := fmt.Sprintf("%s audit=%v", filepath.Base(dir), audit)
			rep, err := Run(context.Background(), set, Options{Deny: nft.DenyDrop, Timeout: 500 * time.Millisecond, Flows: true, Audit: audit,
				Prefix: fmt.Sprintf("nfxf%d", i)})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if rep.Mismatches > 0 {
				t.Errorf("%s: %d mismatches between traffic and analyzer", name, rep.Mismatches)
			}
			checkFlows(t, name, set, rep, &st)
		}
	}
	t.Logf("%d probes, each in exactly one record: %d denied, %d audited (allowed, pending denied), %d with a pending verdict", st.probes, st.denied, st.audited, st.pending)
	if st.denied == 0 || st.audited == 0 || !stagedSeen || st.pending == 0 {
		t.Errorf("the examples do not exercise denied, audited and staged flows: %+v, staged example %v", st, stagedSeen)
	}
}
