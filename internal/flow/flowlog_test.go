package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileLogAggregatesAndRotates: records of one key within an interval
// become one record with their count; the source port is not part of the
// key; past MaxBytes the file rotates and keeps Backups old files.
func TestFileLogAggregatesAndRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.ndjson")
	h := NewHub(nil)
	l := &FileLog{Path: path, Interval: time.Hour, MaxBytes: 300, Backups: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, h) }()
	for h.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		h.Publish(Record{Time: at.Add(time.Duration(i) * time.Second), Verdict: Denied, From: "a/x", To: "b/y", Protocol: "TCP", Port: 80, SrcPort: 40000 + i, DeniedAt: "ingress", Count: 1})
	}
	h.Publish(Record{Time: at.Add(10 * time.Second), Verdict: Denied, From: "a/x", To: "b/y", Protocol: "UDP", Port: 53, DeniedAt: "egress", Count: 1})
	for i := 0; i < 3; i++ {
		h.Publish(Record{Time: at.Add(20 * time.Second), Verdict: Denied, From: "c/z", To: "b/y", Protocol: "TCP", Port: 443, DeniedAt: "ingress", Count: 2})
	}
	time.Sleep(50 * time.Millisecond) // let Run take them
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []Record
	for _, p := range []string{path + ".2", path + ".1", path} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			got = append(got, r)
		}
		f.Close()
	}
	if len(got) != 3 {
		t.Fatalf("got %d records, want 3 aggregated: %+v", len(got), got)
	}
	want := []struct {
		proto string
		count int
	}{{"TCP", 5}, {"UDP", 1}, {"TCP", 6}}
	for i, w := range want {
		if got[i].Protocol != w.proto || got[i].Count != w.count || got[i].SrcPort != 0 {
			t.Errorf("record %d: %s count %d srcPort %d, want %s count %d srcPort 0", i, got[i].Protocol, got[i].Count, got[i].SrcPort, w.proto, w.count)
		}
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Errorf("no rotation past MaxBytes: %v", err)
	}
}
