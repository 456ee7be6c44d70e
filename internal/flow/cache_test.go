package flow

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// TestExplainCache: a cached explanation equals a fresh one but for the
// time and source port, which are the packet's own.
func TestExplainCache(t *testing.T) {
	objs, err := (&manifest.Loader{}).Load([]string{filepath.Join("..", "..", "examples", "three-tier")})
	if err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(objs.Cluster())
	var c ExplainCache
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i, dport := range []uint16{8080, 8080, 5432, 8080} {
		p := Packet{Src: netip.MustParseAddr("10.244.1.10"), Dst: netip.MustParseAddr("10.244.1.20"), Proto: 6, SrcPort: uint16(40000 + i), DstPort: dport}
		when := at.Add(time.Duration(i) * time.Second)
		got := c.Explain(set, "n1", when, p, false, 0)
		want := Explain(set, "n1", when, p, false, 0)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("packet %d: cached %+v\nfresh %+v", i, got, want)
		}
	}
	if len(c.m) != 2 {
		t.Fatalf("cache holds %d explanations, want 2 (two ports)", len(c.m))
	}
}
