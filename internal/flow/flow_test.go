package flow

import (
	"context"
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		total += d.GetCounter().GetValue()
	}
	return total
}

// TestHubSlowSubscriber: a subscriber that does not read loses records
// (counted) once its buffer is full; the others get every record and
// Publish never blocks.
func TestHubSlowSubscriber(t *testing.T) {
	m := NewMetrics(nil)
	h := NewHub(m)
	slow := h.Subscribe(2)
	fast1, fast2 := h.Subscribe(1), h.Subscribe(1)
	const n = 500
	var wg sync.WaitGroup
	got := make([]int, 2)
	for i, s := range []*Sub{fast1, fast2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range s.C {
				got[i]++
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			h.Publish(Record{Verdict: Denied, SrcPort: i})
			// Give the fast readers time: they are not what is tested.
			for len(fast1.ch) > 0 || len(fast2.ch) > 0 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	h.Unsubscribe(fast1)
	h.Unsubscribe(fast2)
	h.Unsubscribe(fast2) // twice is fine
	wg.Wait()
	if got[0] != n || got[1] != n {
		t.Fatalf("fast subscribers got %v records, want %d each", got, n)
	}
	if slow.Dropped() != n-2 || len(slow.C) != 2 {
		t.Fatalf("slow subscriber: dropped %d, buffered %d", slow.Dropped(), len(slow.C))
	}
	if v := counterValue(t, m.Dropped); v != n-2 {
		t.Fatalf("dropped metric %v, want %d", v, n-2)
	}
	if v := counterValue(t, m.Verdicts); v != n {
		t.Fatalf("verdicts metric %v, want %d", v, n)
	}
	if r := <-slow.C; r.SrcPort != 0 {
		t.Fatalf("slow subscriber kept record %d, want the first", r.SrcPort)
	}
	if h.Subscribers() != 1 {
		t.Fatal("unsubscribed subscribers remain")
	}
}

func ipv4TCP(src, dst string, sport, dport uint16, proto uint8) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

func TestDecode(t *testing.T) {
	p, err := Decode(ipv4TCP("10.0.0.1", "10.0.0.2", 40000, 80, 6))
	if err != nil || p != (Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: 6, SrcPort: 40000, DstPort: 80}) {
		t.Fatalf("IPv4 TCP: %+v %v", p, err)
	}
	// IPv6, a hop-by-hop header, then UDP.
	b := make([]byte, 40+8+8)
	b[0] = 0x60
	b[6] = 0
	s, d := netip.MustParseAddr("fd00::1").As16(), netip.MustParseAddr("fd00::2").As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	b[40] = 17
	binary.BigEndian.PutUint16(b[48:], 5353)
	binary.BigEndian.PutUint16(b[50:], 53)
	p, err = Decode(b)
	if err != nil || p.Proto != 17 || p.SrcPort != 5353 || p.DstPort != 53 || p.Dst != netip.MustParseAddr("fd00::2") {
		t.Fatalf("IPv6 UDP: %+v %v", p, err)
	}
	for _, bad := range [][]byte{nil, {0x45, 0}, {0x10}, ipv4TCP("10.0.0.1", "10.0.0.2", 1, 2, 6)[:22]} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%x) succeeded", bad)
		}
	}
	// ICMP: no ports.
	if p, err := Decode(ipv4TCP("10.0.0.1", "10.0.0.2", 8, 0, 1)); err != nil || p.SrcPort != 0 || p.DstPort != 0 {
		t.Fatalf("ICMP: %+v %v", p, err)
	}
}

func TestFilter(t *testing.T) {
	r := &Record{Verdict: Denied, From: "a/x", To: "b/y", Port: 80}
	r.Ingress.Policies = []string{"b/deny"}
	for _, c := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true}, {Filter{Verdict: Allowed}, false}, {Filter{Verdict: Denied}, true},
		{Filter{Pod: "b/y"}, true}, {Filter{Pod: "b/z"}, false}, {Filter{Namespace: "a"}, true}, {Filter{Namespace: "c"}, false},
		{Filter{Policy: "b/deny"}, true}, {Filter{Policy: "b/other"}, false}, {Filter{Port: 81}, false},
	} {
		if got := c.f.Match(r); got != c.want {
			t.Errorf("%+v: %v", c.f, got)
		}
	}
}

// TestServe: two monitors on the socket get the same records as NDJSON.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	path := filepath.Join(t.TempDir(), "sub", "monitor.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(nil)
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, h) }()
	var wg sync.WaitGroup
	got := make([][]Record, 2)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			_ = Stream(sctx, path, func(r *Record) error {
				got[i] = append(got[i], *r)
				if len(got[i]) == 3 {
					scancel()
				}
				return nil
			})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Subscribers() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h.Subscribers() != 2 {
		t.Fatal("monitors did not subscribe")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 0; i < 3; i++ {
		h.Publish(Record{Time: at, Verdict: Denied, From: "a/x", To: "b/y", Port: 80 + i, Count: 1})
	}
	wg.Wait()
	for i, rs := range got {
		if len(rs) != 3 || rs[2].Port != 82 || !rs[0].Time.Equal(at) {
			t.Fatalf("monitor %d got %+v", i, rs)
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
