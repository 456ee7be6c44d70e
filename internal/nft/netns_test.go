package nft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netfence/netfence/internal/policy"
)

// Kernel tests run only as root, each in a network namespace of its own
// named nft-test-*, removed when the test ends. Nothing is created in the
// root network namespace: the applier opens its netlink sockets inside the
// test namespace, and nft runs there through `ip netns exec`.

type testNS struct {
	name string
	fd   int
}

func newNetNS(tb testing.TB) *testNS {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("kernel tests need root")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("kernel tests need %s: %v", bin, err)
		}
	}
	name := fmt.Sprintf("nft-test-%d-%08x", os.Getpid(), rand.Uint32())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("open netns %s: %v", name, err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return &testNS{name: name, fd: fd}
}

// nft runs nft inside the namespace.
func (ns *testNS) nft(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tb.Fatalf("nft %v in %s: %v: %s", args, ns.name, err, errb.String())
	}
	return out.String()
}

func (ns *testNS) applier(tb testing.TB) *Applier {
	tb.Helper()
	a, err := NewApplier(ns.fd)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// listing is a ruleset as nft reads it back, in a canonical form: chains
// with their rule lines (from `nft list ruleset`), and sets and maps with
// their elements rendered like Element.text (from `nft -j list ruleset`).
type listing struct {
	Chains map[string][]string
	Sets   map[string][]string
	Types  map[string]string
}

func (ns *testNS) list(tb testing.TB) *listing {
	tb.Helper()
	l := &listing{Chains: map[string][]string{}, Sets: map[string][]string{}, Types: map[string]string{}}
	var chain string
	for _, line := range strings.Split(ns.nft(tb, "", "list", "ruleset"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "\tchain "):
			chain = strings.TrimSuffix(strings.TrimPrefix(line, "\tchain "), " {")
			l.Chains[chain] = []string{}
		case line == "\t}":
			chain = ""
		case chain != "" && trimmed != "":
			l.Chains[chain] = append(l.Chains[chain], trimmed)
		}
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(ns.nft(tb, "", "-j", "list", "ruleset")), &doc); err != nil {
		tb.Fatalf("parse nft -j output: %v", err)
	}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			if kind != "set" && kind != "map" {
				continue
			}
			var s struct {
				Name  string            `json:"name"`
				Table string            `json:"table"`
				Type  any               `json:"type"`
				Map   string            `json:"map"`
				Flags []string          `json:"flags"`
				Elem  []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				tb.Fatalf("parse %s: %v", raw, err)
			}
			if s.Table != TableName {
				tb.Fatalf("unexpected table %q in the namespace", s.Table)
			}
			l.Types[s.Name] = fmt.Sprintf("%v %v %s", s.Type, s.Flags, s.Map)
			elems := []string{}
			for _, e := range s.Elem {
				elems = append(elems, canonElem(tb, e, kind == "map"))
			}
			slices.Sort(elems)
			l.Sets[s.Name] = elems
		}
	}
	return l
}

// canonElem renders a JSON set element as Element.text or the Text form of
// a map element.
func canonElem(tb testing.TB, raw json.RawMessage, isMap bool) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatal(err)
	}
	if isMap {
		pair := v.([]any)
		return canonKey(tb, pair[0]) + " : " + canonVerdict(tb, pair[1])
	}
	return canonKey(tb, v)
}

// canonKey renders a JSON set element's key and comment as Element.text.
func canonKey(tb testing.TB, v any) string {
	val, cmt := unwrapElem(v)
	if m, ok := val.(map[string]any); ok {
		if parts, ok := m["concat"].([]any); ok {
			return fmt.Sprintf("%s . %s . %s%s", canonAddr(tb, parts[0]), parts[1], canonPort(parts[2]), comment(cmt))
		}
	}
	return canonAddr(tb, val).String() + comment(cmt)
}

// canonVerdict renders a JSON verdict as Verdict.String, or "jump CHAIN".
func canonVerdict(tb testing.TB, v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		tb.Fatalf("unexpected verdict %v", v)
	}
	for kind, arg := range m {
		switch kind {
		case "jump", "goto":
			return kind + " " + arg.(map[string]any)["target"].(string)
		case "accept", "drop", "return":
			return kind
		}
	}
	tb.Fatalf("unexpected verdict %v", v)
	return ""
}

func unwrapElem(v any) (any, string) {
	if m, ok := v.(map[string]any); ok {
		if e, ok := m["elem"].(map[string]any); ok {
			c, _ := e["comment"].(string)
			return e["val"], c
		}
	}
	return v, ""
}

func canonAddr(tb testing.TB, v any) policy.AddrRange {
	switch x := v.(type) {
	case string:
		a := netip.MustParseAddr(x)
		return policy.AddrRange{From: a, To: a}
	case map[string]any:
		if p, ok := x["prefix"].(map[string]any); ok {
			return policy.PrefixRange(netip.PrefixFrom(netip.MustParseAddr(p["addr"].(string)), int(p["len"].(float64))))
		}
		if r, ok := x["range"].([]any); ok {
			return policy.AddrRange{From: netip.MustParseAddr(r[0].(string)), To: netip.MustParseAddr(r[1].(string))}
		}
	}
	tb.Fatalf("unexpected address element %v", v)
	return policy.AddrRange{}
}

func canonPort(v any) string {
	switch x := v.(type) {
	case float64:
		return fmt.Sprint(int(x))
	case map[string]any:
		if r, ok := x["range"].([]any); ok {
			return fmt.Sprintf("%d-%d", int(r[0].(float64)), int(r[1].(float64)))
		}
	}
	return fmt.Sprint(v)
}

// expected returns the listing a model should produce.
func expected(m *Model) *listing {
	l := &listing{Chains: map[string][]string{}, Sets: map[string][]string{}}
	for _, name := range []string{ChainForward, ChainInput} {
		lines := []string{fmt.Sprintf("type filter hook %s priority filter; policy accept;", name)}
		for _, r := range baseRules(name) {
			lines = append(lines, r.text())
		}
		l.Chains[name] = lines
	}
	for _, c := range m.Chains {
		lines := []string{}
		for _, r := range c.Rules {
			lines = append(lines, r.text(m.Deny))
		}
		l.Chains[c.Name] = lines
	}
	for _, s := range m.Sets {
		elems := []string{}
		for _, e := range s.Elements {
			elems = append(elems, e.text(s.Ports))
		}
		slices.Sort(elems)
		l.Sets[s.Name] = elems
	}
	for _, vm := range m.Maps {
		elems := []string{}
		for _, e := range vm.Elements {
			elems = append(elems, e.Addr.String()+comment(e.Comment)+" : jump "+e.Chain)
		}
		slices.Sort(elems)
		l.Sets[vm.Name] = elems
	}
	return l
}

// compareListings reports the differences between two listings (Types is
// compared only when both have it).
func compareListings(tb testing.TB, what string, want, got *listing) {
	tb.Helper()
	var diffs []string
	for _, k := range unionKeys(want.Chains, got.Chains) {
		w, g := want.Chains[k], got.Chains[k]
		if w == nil || g == nil || !slices.Equal(w, g) {
			diffs = append(diffs, fmt.Sprintf("chain %s:\n  want %q\n  got  %q", k, w, g))
		}
	}
	for _, k := range unionKeys(want.Sets, got.Sets) {
		w, g := want.Sets[k], got.Sets[k]
		if w == nil || g == nil || !slices.Equal(w, g) {
			diffs = append(diffs, fmt.Sprintf("set %s:\n  want %q\n  got  %q", k, w, g))
		}
	}
	if len(want.Types) > 0 && len(got.Types) > 0 {
		for _, k := range unionKeys(want.Types, got.Types) {
			if want.Types[k] != got.Types[k] {
				diffs = append(diffs, fmt.Sprintf("set %s type: want %q, got %q", k, want.Types[k], got.Types[k]))
			}
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... and %d more", len(diffs)-10))
		}
		tb.Fatalf("%s: listings differ:\n%s", what, strings.Join(diffs, "\n"))
	}
}

func unionKeys[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
