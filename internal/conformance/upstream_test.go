package conformance_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	upstream "sigs.k8s.io/network-policy-api/conformance"

	"github.com/netfence/netfence/internal/conformance"
)

// This test reads the upstream test sources (embedded in
// conformance.Manifests) as syntax trees and checks the hand translation
// against them: every ConformanceTest is a scenario with its file,
// manifests and features; every t.Run a sub-test of that name, in order;
// every PokeServer call a probe with the same line, client, protocol,
// server (the pod whose kubernetes.GetPod result it pokes), port and
// expectation, in order; every call that changes the cluster (a Patch,
// SetPodLabel, RemovePodLabel, Delete) a mutation of that line, in order
// with the probes, those of a t.Cleanup in a cleanup step. What each
// mutation changes is checked by reading its comment against the source.

// upTest is what the upstream source says of one ConformanceTest.
type upTest struct {
	name, file          string
	features, manifests []string
	subtests            []upSubtest
}

type upSubtest struct {
	name   string
	events []upEvent
}

// upEvent is a probe or (probe nil) the line of a mutating call.
type upEvent struct {
	line    int
	probe   *conformance.Probe
	cleanup bool
}

func TestTranslationMatchesUpstream(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(upstream.Manifests, "tests/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("upstream tests: %v, %v", files, err)
	}
	var ups []upTest
	for _, f := range files {
		src, err := upstream.Manifests.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, parseUpstream(t, f, src)...)
	}
	mine := map[string]conformance.Scenario{}
	for _, sc := range conformance.Scenarios() {
		if _, dup := mine[sc.Name]; dup {
			t.Errorf("scenario %s twice", sc.Name)
		}
		mine[sc.Name] = sc
	}
	if len(ups) != len(mine) {
		t.Errorf("%d upstream tests, %d scenarios", len(ups), len(mine))
	}
	probes := 0
	for _, up := range ups {
		sc, ok := mine[up.name]
		if !ok {
			t.Errorf("upstream test %s (%s) has no scenario", up.name, up.file)
			continue
		}
		compare(t, up, sc)
		for _, sub := range up.subtests {
			for _, e := range sub.events {
				if e.probe != nil {
					probes++
				}
			}
		}
	}
	_, _, mineProbes := conformance.Counts(conformance.Scenarios())
	if probes != mineProbes {
		t.Errorf("upstream has %d PokeServer calls, the scenarios %d probes", probes, mineProbes)
	}
	t.Logf("%d upstream tests, %d probes", len(ups), probes)
}

func compare(t *testing.T, up upTest, sc conformance.Scenario) {
	t.Helper()
	if sc.File != up.file {
		t.Errorf("%s: file %s, upstream %s", sc.Name, sc.File, up.file)
	}
	if !reflect.DeepEqual(sc.Manifests, up.manifests) {
		t.Errorf("%s: manifests %v, upstream %v", sc.Name, sc.Manifests, up.manifests)
	}
	if !reflect.DeepEqual(sc.Features, up.features) {
		t.Errorf("%s: features %v, upstream %v", sc.Name, sc.Features, up.features)
	}
	if len(sc.Subtests) != len(up.subtests) {
		t.Errorf("%s: %d sub-tests, upstream %d", sc.Name, len(sc.Subtests), len(up.subtests))
		return
	}
	for i, sub := range sc.Subtests {
		usub := up.subtests[i]
		where := sc.Name + "/" + sub.Name
		if sub.Name != usub.name {
			t.Errorf("%s: sub-test %d is %q upstream", where, i, usub.name)
			continue
		}
		var got []upEvent
		sawCleanup := false
		for _, st := range sub.Steps {
			if st.Cleanup && len(st.Probes) > 0 {
				t.Errorf("%s: a cleanup step with probes", where)
			}
			if sawCleanup && !st.Cleanup {
				t.Errorf("%s: a step after the cleanup", where)
			}
			sawCleanup = sawCleanup || st.Cleanup
			for _, m := range st.Mutations {
				// One patch may make several changes: one event.
				if n := len(got); n > 0 && got[n-1].probe == nil && got[n-1].line == m.UpstreamLine() {
					continue
				}
				got = append(got, upEvent{line: m.UpstreamLine(), cleanup: st.Cleanup})
			}
			for _, p := range st.Probes {
				got = append(got, upEvent{line: p.Line, probe: &p})
			}
		}
		// Upstream's cleanup calls come first in the source and run
		// last: compare them apart.
		want := slices.Clone(usub.events)
		var wantCleanup, gotCleanup []int
		want = slices.DeleteFunc(want, func(e upEvent) bool {
			if e.cleanup {
				wantCleanup = append(wantCleanup, e.line)
			}
			return e.cleanup
		})
		got = slices.DeleteFunc(got, func(e upEvent) bool {
			if e.cleanup {
				gotCleanup = append(gotCleanup, e.line)
			}
			return e.cleanup
		})
		if !slices.Equal(gotCleanup, wantCleanup) {
			t.Errorf("%s: cleanup lines %v, upstream %v", where, gotCleanup, wantCleanup)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d probes and changes, upstream %d:\n  %s\nupstream\n  %s", where, len(got), len(want), events(got), events(want))
			continue
		}
		for j := range got {
			g, w := got[j], want[j]
			switch {
			case g.line != w.line || (g.probe == nil) != (w.probe == nil):
				t.Errorf("%s: event %d at line %d (probe %v), upstream at line %d (probe %v)", where, j, g.line, g.probe != nil, w.line, w.probe != nil)
			case g.probe != nil && *g.probe != *w.probe:
				t.Errorf("%s: line %d: probe %+v, upstream %+v", where, g.line, *g.probe, *w.probe)
			}
		}
	}
}

func events(es []upEvent) string {
	var out []string
	for _, e := range es {
		if e.probe != nil {
			out = append(out, strconv.Itoa(e.line)+" "+e.probe.String())
		} else {
			out = append(out, strconv.Itoa(e.line)+" change")
		}
	}
	return strings.Join(out, "\n  ")
}

// parseUpstream returns the ConformanceTests of one upstream test file.
func parseUpstream(t *testing.T, file string, src []byte) []upTest {
	t.Helper()
	fset := token.NewFileSet()
	af, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	fail := func(n ast.Node, format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: "+format, append([]any{fset.Position(n.Pos())}, args...)...)
	}
	var out []upTest
	ast.Inspect(af, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok || selectorName(lit.Type) != "suite.ConformanceTest" {
			return true
		}
		up := upTest{file: file}
		var body *ast.FuncLit
		for _, elt := range lit.Elts {
			kv := elt.(*ast.KeyValueExpr)
			switch kv.Key.(*ast.Ident).Name {
			case "ShortName":
				up.name = stringLit(t, kv.Value)
			case "Features":
				for _, f := range kv.Value.(*ast.CompositeLit).Elts {
					up.features = append(up.features, strings.TrimPrefix(selectorName(f), "suite.Support"))
				}
			case "Manifests":
				for _, m := range kv.Value.(*ast.CompositeLit).Elts {
					up.manifests = append(up.manifests, stringLit(t, m))
				}
			case "Test":
				body = kv.Value.(*ast.FuncLit)
			}
		}
		if body == nil {
			fail(lit, "no Test")
		}
		up.subtests = parseTestBody(t, fset, body, fail)
		out = append(out, up)
		return false
	})
	return out
}

// parseTestBody walks a Test function in source order.
func parseTestBody(t *testing.T, fset *token.FileSet, body *ast.FuncLit, fail func(ast.Node, string, ...any)) []upSubtest {
	t.Helper()
	type span struct{ pos, end token.Pos }
	type getPod struct {
		pos token.Pos
		v   string
		ref conformance.PodRef
	}
	var (
		subs     []upSubtest
		subSpans []span
		cleanups []span
		gets     []getPod
	)
	inside := func(spans []span, p token.Pos) int {
		for i := len(spans) - 1; i >= 0; i-- {
			if spans[i].pos <= p && p < spans[i].end {
				return i
			}
		}
		return -1
	}
	addEvent := func(n ast.Node, e upEvent) {
		i := inside(subSpans, n.Pos())
		if i < 0 {
			fail(n, "probe or change outside a t.Run")
		}
		e.line = fset.Position(n.Pos()).Line
		e.cleanup = inside(cleanups, n.Pos()) >= 0
		subs[i].events = append(subs[i].events, e)
	}
	ast.Inspect(body.Body, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Rhs) == 1 {
			if c, ok := as.Rhs[0].(*ast.CallExpr); ok && selectorName(c.Fun) == "kubernetes.GetPod" {
				gets = append(gets, getPod{as.Pos(), as.Lhs[0].(*ast.Ident).Name,
					conformance.Pod(stringLit(t, c.Args[2]), stringLit(t, c.Args[3]))})
			}
			return true
		}
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch name := selectorName(c.Fun); name {
		case "t.Run":
			subs = append(subs, upSubtest{name: stringLit(t, c.Args[0])})
			subSpans = append(subSpans, span{c.Pos(), c.End()})
		case "t.Cleanup":
			cleanups = append(cleanups, span{c.Pos(), c.End()})
		case "kubernetes.PokeServer":
			// PokeServer(t, client, kubeConfig, clientNamespace, clientPod,
			// protocol, targetHost, targetPort, timeoutConfig, shouldConnect)
			target, ok := c.Args[6].(*ast.SelectorExpr)
			status, ok2 := target.X.(*ast.SelectorExpr)
			if !ok || !ok2 || target.Sel.Name != "PodIP" || status.Sel.Name != "Status" {
				fail(c, "target is not X.Status.PodIP")
			}
			v := status.X.(*ast.Ident).Name
			var to conformance.PodRef
			for _, g := range gets {
				if g.v == v && g.pos < c.Pos() {
					to = g.ref
				}
			}
			if to == "" {
				fail(c, "no kubernetes.GetPod assigns %s before", v)
			}
			p := conformance.Probe{
				From:          conformance.Pod(stringLit(t, c.Args[3]), stringLit(t, c.Args[4])),
				To:            to,
				Protocol:      corev1.Protocol(strings.ToUpper(stringLit(t, c.Args[5]))),
				Port:          portArg(t, c.Args[7], fail),
				ShouldConnect: boolArg(c.Args[9], fail),
			}
			p.Line = fset.Position(c.Pos()).Line
			addEvent(c, upEvent{probe: &p})
		case "kubernetes.PatchClusterNetworkPolicy", "kubernetes.PatchNamespace", "kubernetes.PatchPod",
			"kubernetes.SetPodLabel", "kubernetes.RemovePodLabel", "s.Client.Delete", "s.Client.Update",
			"s.Client.Patch", "s.Client.Create":
			addEvent(c, upEvent{})
		}
		return true
	})
	return subs
}

func portArg(t *testing.T, e ast.Expr, fail func(ast.Node, string, ...any)) int32 {
	t.Helper()
	conv, ok := e.(*ast.CallExpr)
	if !ok || len(conv.Args) != 1 {
		fail(e, "port is not int32(...)")
	}
	switch a := conv.Args[0].(type) {
	case *ast.BasicLit:
		n, err := strconv.ParseInt(a.Value, 10, 32)
		if err != nil {
			fail(a, "port %s", a.Value)
		}
		return int32(n)
	case *ast.IndexExpr:
		if selectorName(a.X) != "s.HostNetworkPorts" {
			fail(a, "port is not s.HostNetworkPorts[N]")
		}
		i, err := strconv.Atoi(a.Index.(*ast.BasicLit).Value)
		if err != nil {
			fail(a, "index")
		}
		return conformance.HostNetworkPort(i)
	}
	fail(e, "port expression")
	return 0
}

func boolArg(e ast.Expr, fail func(ast.Node, string, ...any)) bool {
	if id, ok := e.(*ast.Ident); ok && (id.Name == "true" || id.Name == "false") {
		return id.Name == "true"
	}
	fail(e, "shouldConnect is not a literal")
	return false
}

// selectorName returns "a.b" or "a.b.c" for a selector expression.
func selectorName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		if inner := selectorName(x.X); inner != "" {
			return inner + "." + x.Sel.Name
		}
	}
	return ""
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		t.Fatalf("not a string literal: %#v", e)
	}
	s, err := strconv.Unquote(b.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
