package nft

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/policy"
)

func logOpts() Options {
	return Options{Node: "node-1", Log: &LogOptions{Group: 7, Rate: 50}}
}

func TestLogPrefix(t *testing.T) {
	for _, dir := range policy.Directions {
		p := LogPrefix(42, dir)
		gen, d, ok := ParseLogPrefix(p + "\x00")
		if !ok || gen != 42 || d != dir {
			t.Fatalf("ParseLogPrefix(%q) = %d %v %v", p, gen, d, ok)
		}
	}
	for _, bad := range []string{"", "nf:", "nf:x:e", "nf:1:x", "xx:1:e", "nf:1"} {
		if _, _, ok := ParseLogPrefix(bad); ok {
			t.Errorf("ParseLogPrefix(%q) ok", bad)
		}
	}
}

// TestLogRules: with Log, every final deny of a pod or layer chain logs
// first, and a tier's Deny elements go to the drop chain, which logs;
// without it, nothing changes.
func TestLogRules(t *testing.T) {
	c := guardrailsCluster()
	plain := render(c, Options{Node: "node-1"})
	m := render(c, logOpts())
	if strings.Contains(plain.Text(), "log") || strings.Contains(plain.Text(), ChainDropEgress) {
		t.Fatal("logging rendered without Options.Log")
	}
	txt := m.Text()
	for _, want := range []string{
		`log prefix "nf:1:e" group 7`, `log prefix "nf:1:i" group 7`,
		"limit rate 50/second burst 100 packets jump nflog-in",
		": goto nfdrop-out", ": goto nfdrop-in",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, ": drop") {
		t.Errorf("a tier map element still drops without logging")
	}
	for _, ch := range m.Chains {
		for i, r := range ch.Rules {
			if r.Kind == RuleDeny && (i == 0 || ch.Rules[i-1].Kind != RuleLogJump && ch.Rules[i-1].Kind != RuleTCPReset) {
				t.Errorf("chain %s: deny without a log rule before it", ch.Name)
			}
		}
	}
	if m.LogGen != 1 {
		t.Fatalf("LogGen %d", m.LogGen)
	}
}

// TestLogGeneration: the generation moves only when the snapshot changes,
// so that an unchanged resync applies nothing; a change replaces only the
// log chains besides what changed, and only widens when nothing else
// changed.
func TestLogGeneration(t *testing.T) {
	c := guardrailsCluster()
	r := NewRenderer(logOpts())
	s := policy.NewSet(c)
	m1 := r.Render(s)
	f := NewFake()
	if err := f.FullSync(t.Context(), m1); err != nil {
		t.Fatal(err)
	}
	m2 := r.Render(policy.NewSet(c))
	if d := Diff(m1, m2); !d.Empty() || m2.LogGen != m1.LogGen {
		t.Fatalf("unchanged snapshot: gen %d -> %d, delta %s", m1.LogGen, m2.LogGen, d)
	}
	c3 := relabelWith(c, "team-b/client-0", "other")
	m3 := r.Render(policy.NewSet(c3))
	if m3.LogGen == m2.LogGen {
		t.Fatal("changed snapshot kept the generation")
	}
	d := Diff(m2, m3)
	if err := f.Apply(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Text(), m3.Text(); got != want {
		t.Fatal("fake after apply differs from the model")
	}
	if !strings.Contains(f.Text(), LogPrefix(m3.LogGen, policy.Egress)) {
		t.Fatal("new generation not in the ruleset")
	}
	onlyLog := &Delta{ReplaceChains: []*Chain{m3.Chain(ChainLogEgress)}}
	if !onlyLog.OnlyWidens() {
		t.Fatal("replacing a log chain counted as narrowing")
	}
	// Turning logging off removes its chains.
	off := render(c3, Options{Node: "node-1"})
	if err := f.Apply(t.Context(), Diff(m3, off)); err != nil {
		t.Fatal(err)
	}
	if f.Text() != off.Text() {
		t.Fatal("fake after turning logging off differs")
	}
}

// TestLogKernel: the kernel accepts the logging rules and lists them as
// the model says, whether loaded by nft or over netlink, full or as a
// delta.
func TestLogKernel(t *testing.T) {
	viaNft, viaNetlink := newNetNS(t), newNetNS(t)
	a := viaNetlink.applier(t)
	c := guardrailsCluster()
	r := NewRenderer(logOpts())
	m := r.Render(policy.NewSet(c))
	viaNft.nft(t, m.Text(), "-f", "-")
	if err := a.FullSync(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "full", expected(m), viaNetlink.list(t))
	compareListings(t, "nft", viaNft.list(t), viaNetlink.list(t))
	m2 := r.Render(policy.NewSet(relabelWith(c, "team-b/client-0", "other")))
	if err := a.Apply(t.Context(), Diff(m, m2)); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "update", expected(m2), viaNetlink.list(t))
	reject := NewRenderer(Options{Node: "node-1", Deny: DenyReject, Log: &LogOptions{}}).Render(policy.NewSet(c))
	if err := a.FullSync(t.Context(), reject); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "reject", expected(reject), viaNetlink.list(t))
}

// TestAudit: in audit mode (DenyAudit) the ruleset denies nothing: every
// flow the enforcing ruleset denies passes through the same chains, is
// logged (the trace meets a log chain) and goes on; the kernel accepts it.
func TestAudit(t *testing.T) {
	c := guardrailsCluster()
	s := policy.NewSet(c)
	enforce := Render(s, Options{AllLocal: true, Log: &LogOptions{}})
	audit := Render(s, Options{AllLocal: true, Deny: DenyAudit, Log: &LogOptions{}})
	for _, ch := range audit.Chains {
		for _, r := range ch.Rules {
			if r.Kind == RuleDeny || r.Kind == RuleDrop {
				if txt := r.text(audit.Deny); !strings.HasPrefix(txt, "return") {
					t.Errorf("chain %s: audit rule %q does not return", ch.Name, txt)
				}
			}
		}
	}
	ie, ia := newInterp(enforce), newInterp(audit)
	denied := 0
	var addrs []netip.Addr
	for _, p := range c.Pods {
		if ok, _ := p.Active(); ok && !p.HostNetwork {
			addrs = append(addrs, p.IPs...)
		}
	}
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			for _, pp := range interpPorts {
				p := packet{src: src, dst: dst, proto: pp.proto, port: pp.port}
				ok, _, err := ie.allowed(p, hookForward)
				if err != nil {
					t.Fatal(err)
				}
				aok, trace, err := ia.allowed(p, hookForward)
				if err != nil {
					t.Fatal(err)
				}
				if !aok {
					t.Errorf("%s -> %s %s: audit mode denies (trace %v)", src, dst, pp, trace)
				}
				if !ok {
					denied++
				}
			}
		}
	}
	if denied == 0 {
		t.Fatal("the enforcing ruleset denies nothing: the test cannot tell")
	}
	t.Run("kernel", func(t *testing.T) {
		ns := newNetNS(t)
		if err := ns.applier(t).FullSync(t.Context(), audit); err != nil {
			t.Fatalf("kernel refuses the audit ruleset: %v", err)
		}
		compareListings(t, "audit", expected(audit), ns.list(t))
	})
}
