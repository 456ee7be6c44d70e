package nft

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenModels are small models whose rendering is checked by hand.
func goldenModels() map[string]*Model {
	c := shopCluster()
	return map[string]*Model{
		"shop-node-a":        render(c, Options{Node: "node-a"}),
		"shop-node-b-reject": render(c, Options{Node: "node-b", Deny: DenyReject}),
		"shop-all":           render(c, Options{AllLocal: true}),
		"empty":              render(c, Options{Node: "node-z"}),
		"guardrails":         render(guardrailsCluster(), Options{Node: "node-1"}),
		"guardrails-reject":  render(guardrailsCluster(), Options{Node: "node-1", Deny: DenyReject}),
	}
}

func TestGolden(t *testing.T) {
	for name, m := range goldenModels() {
		t.Run(name, func(t *testing.T) {
			got := m.Text()
			path := filepath.Join("testdata", name+".nft")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("rendering differs from %s (run with -update after checking):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant: %s\ngot:  %s", i+1, a, b)
		}
	}
	return ""
}

func TestRenderSelection(t *testing.T) {
	c := shopCluster()
	m := render(c, Options{Node: "node-a"})
	var pods []string
	for _, ch := range m.Chains {
		pods = append(pods, ch.Pod+" "+ch.Direction.String())
	}
	// node-a: web-1, db-1, client; the hostNetwork and the pending pod are
	// not rendered; web-2 and monitor are on node-b.
	want := []string{"shop/web-1 Ingress", "shop/web-1 Egress", "shop/db-1 Ingress", "shop/db-1 Egress", "shop/client Ingress", "shop/client Egress"}
	for _, w := range want {
		found := false
		for _, p := range pods {
			found = found || p == w
		}
		if !found {
			t.Errorf("missing chain for %s; have %v", w, pods)
		}
	}
	if len(pods) != len(want) {
		t.Errorf("chains for %v, want %v", pods, want)
	}
	if got := m.Chain(ChainName("shop/web-1", policy.Ingress)); got == nil || got.Pod != "shop/web-1" {
		t.Errorf("ChainName does not name web-1's ingress chain")
	}
	// Every address of a local isolated pod is in the maps, and only those.
	if n := len(m.Map(MapIngress4).Elements); n != 3 {
		t.Errorf("ingress4 has %d elements, want 3", n)
	}
	if n := len(m.Map(MapIngress6).Elements); n != 2 {
		t.Errorf("ingress6 has %d elements, want 2", n)
	}
	for _, s := range m.Sets {
		for _, e := range s.Elements {
			if len(e.Comment) > maxComment {
				t.Errorf("comment too long in %s: %q", s.Name, e.Comment)
			}
		}
	}
	if m.Text() != render(c, Options{Node: "node-a"}).Text() {
		t.Error("rendering is not deterministic")
	}
}

func TestSourcesComment(t *testing.T) {
	var srcs []policy.RuleMatch
	for i := 0; i < 20; i++ {
		srcs = append(srcs, policy.RuleMatch{Policy: &policy.Policy{Name: "allow-something-long-" + string(rune('a'+i))}, Rule: i})
	}
	got := sourcesComment(srcs)
	if len(got) > maxComment || !strings.HasSuffix(got, "more") {
		t.Errorf("got %q (%d bytes)", got, len(got))
	}
	if got := sourcesComment(srcs[:1]); got != "allow-something-long-a ingress[0]" {
		t.Errorf("got %q", got)
	}
	if got := truncate(strings.Repeat("x", 200) + `"`); len(got) != maxComment || strings.Contains(got, `"`) {
		t.Errorf("truncate: %q", got)
	}
}

func TestDiff(t *testing.T) {
	c := shopCluster()
	a := render(c, Options{AllLocal: true})
	if d := Diff(a, a); !d.Empty() {
		t.Fatalf("Diff(a, a) = %s", d)
	}
	// client is relabelled: client-egress no longer selects it (its
	// egress chain keeps only the default-deny drop and loses its sets),
	// web-1 and web-2 lose it as an http source (their exact ports sets,
	// holding only client, become empty and go), and db-1 loses it on
	// 5000-5431 (a range: its interval ports set). The maps do not change:
	// client is still isolated by default-deny.
	b := render(relabel(c, "shop/client", "monitor"), Options{AllLocal: true})
	d := Diff(a, b)
	out := ChainName("shop/client", policy.Egress)
	web1, web2 := ChainName("shop/web-1", policy.Ingress), ChainName("shop/web-2", policy.Ingress)
	db := ChainName("shop/db-1", policy.Ingress)
	set := func(chain string, fam Family, exact bool) string { return a.ChainSet(chain, fam, true, exact).Name }
	want := []string{
		"-set " + set(out, IPv4, false), "-set " + set(out, IPv6, false), "-set " + set(out, IPv4, true), "-set " + set(out, IPv6, true),
		"-set " + set(web1, IPv4, true), "-set " + set(web1, IPv6, true),
		"-set " + set(web2, IPv4, true), "-set " + set(web2, IPv6, true),
		"~chain " + out, "~chain " + web1, "~chain " + web2,
		"~set " + set(db, IPv4, false) + " +0 -1",
	}
	slices.Sort(want)
	if got := d.Names(); !slices.Equal(got, want) {
		t.Errorf("delta:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Changing the final verdict rewrites every chain and nothing else.
	r := render(c, Options{AllLocal: true, Deny: DenyReject})
	d = Diff(a, r)
	if len(d.ReplaceChains) != len(a.Chains) || len(d.SetChanges)+len(d.MapChanges)+len(d.AddSets)+len(d.DelSets) != 0 {
		t.Errorf("deny change: %s", d)
	}
}

func TestDiffReplacesPortSets(t *testing.T) {
	// A port range keeps the elements in a concatenated interval set,
	// which is recreated beyond replaceThreshold deletions; single ports
	// go to a hash set, whose elements are always deleted one by one.
	mk := func(n int, ports ...int32) *Model {
		var pods []*cluster.Pod
		for i := 0; i < n; i++ {
			// Every other address, so that no two peers merge.
			pods = append(pods, pod("x", fmt.Sprintf("peer-%d", i), "n", map[string]string{"role": "peer"}, fmt.Sprintf("10.0.0.%d", 2*i+1)))
		}
		pods = append(pods, pod("x", "target", "n", map[string]string{"role": "target"}, "10.0.1.1"))
		np := netpol("x", "allow", sel("role", "target"))
		ingress(np, peers(podPeer(sel("role", "peer"), nil)), npPort(tcp, 80, ports...))
		return render(cluster.New(nil, pods, []*networkingv1.NetworkPolicy{np}), Options{AllLocal: true})
	}
	in := ChainName("x/target", policy.Ingress)
	set := mk(1, 81).ChainSet(in, IPv4, true, false).Name
	exact := mk(1).ChainSet(in, IPv4, true, true).Name
	for _, tc := range []struct {
		from, to int
		ports    []int32
		want     []string
	}{
		{5, 6, []int32{81}, []string{"~set " + set + " +1 -0"}},
		{6, 5, []int32{81}, []string{"~set " + set + " +0 -1"}},
		{6, 3, []int32{81}, []string{"~set " + set + " +0 -3"}},
		{12, 3, []int32{81}, []string{"=set " + set, "~chain " + in}},
		{12, 3, nil, []string{"~set " + exact + " +0 -9"}},
	} {
		if got := Diff(mk(tc.from, tc.ports...), mk(tc.to, tc.ports...)).Names(); !slices.Equal(got, tc.want) {
			t.Errorf("%d -> %d peers (ports 80 %v): got %v, want %v", tc.from, tc.to, tc.ports, got, tc.want)
		}
	}
}

func TestChunks(t *testing.T) {
	m := render(genCluster(5, genParams{Namespaces: 5, Pods: 2000, Nodes: 20, Policies: 60}), Options{Node: "node-0"})
	biggest := 0
	for _, s := range m.Sets {
		elems := setElements(s, s.Elements)
		n := 0
		for _, c := range chunks(elems) {
			n += len(c)
			size := 0
			for _, e := range c {
				size += elemSize(e)
			}
			if size > elemChunkSize+elemSize(c[len(c)-1]) || len(c) == 0 {
				t.Fatalf("%s: chunk of %d bytes", s.Name, size)
			}
		}
		if n != len(elems) {
			t.Fatalf("%s: chunks hold %d of %d elements", s.Name, n, len(elems))
		}
		biggest = max(biggest, len(chunks(elems)))
	}
	if biggest < 2 {
		t.Fatalf("no set needs more than one chunk; the test needs a bigger cluster")
	}
}
