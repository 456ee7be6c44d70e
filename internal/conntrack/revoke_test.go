package conntrack

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	pkgerrors "github.com/pkg/errors"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// These tests need no kernel: the revoker talks to a fake table.

// fakeTable is an in-memory conntrack table. Deleting an entry that is
// not there fails with ENOENT wrapped the way ti-mo/netfilter wraps
// netlink errors.
type fakeTable struct {
	mu      sync.Mutex
	entries []ct.Flow
	deleted []ct.Flow
	updated []ct.Flow
	// deleteErr, when set, is returned by every Delete.
	deleteErr error
	// onDelete runs before each deletion.
	onDelete func()
	// block makes Dump wait until Close.
	block  bool
	closed chan struct{}
}

func newFakeTable(entries ...ct.Flow) *fakeTable {
	return &fakeTable{entries: entries, closed: make(chan struct{})}
}

func (t *fakeTable) Dump(*ct.DumpOptions) ([]ct.Flow, error) {
	if t.block {
		<-t.closed
		return nil, errors.New("use of closed socket")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.entries), nil
}

func (t *fakeTable) Delete(f ct.Flow) error {
	if t.onDelete != nil {
		t.onDelete()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleteErr != nil {
		return t.deleteErr
	}
	for i, e := range t.entries {
		if e.TupleOrig == f.TupleOrig && e.Zone == f.Zone {
			t.entries = slices.Delete(t.entries, i, i+1)
			t.deleted = append(t.deleted, f)
			return nil
		}
	}
	return pkgerrors.Wrap(unix.ENOENT, "netfilter query")
}

func (t *fakeTable) Update(f ct.Flow) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, e := range t.entries {
		if e.TupleOrig == f.TupleOrig && e.Zone == f.Zone {
			t.entries[i].Mark = f.Mark
			t.updated = append(t.updated, f)
			return nil
		}
	}
	return pkgerrors.Wrap(unix.ENOENT, "netfilter query")
}

func (t *fakeTable) Close() error {
	select {
	case <-t.closed:
	default:
		close(t.closed)
	}
	return nil
}

func fakeRevoker(tbl *fakeTable) *Revoker {
	return &Revoker{nsFD: 1 << 20, dial: func() (table, error) { return tbl, nil }}
}

// entry is a conntrack entry without NAT.
func entry(proto uint8, src, dst string, sport, dport uint16) ct.Flow {
	return natEntry(proto, src, dst, sport, dport, netip.MustParseAddr(dst), dport)
}

// natEntry is a conntrack entry whose destination was translated to
// to:toPort (the reply comes from there).
func natEntry(proto uint8, src, dst string, sport, dport uint16, to netip.Addr, toPort uint16) ct.Flow {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return ct.Flow{
		TupleOrig: ct.Tuple{
			IP:    ct.IPTuple{SourceAddress: s, DestinationAddress: d},
			Proto: ct.ProtoTuple{Protocol: proto, SourcePort: sport, DestinationPort: dport},
		},
		TupleReply: ct.Tuple{
			IP:    ct.IPTuple{SourceAddress: to, DestinationAddress: s},
			Proto: ct.ProtoTuple{Protocol: proto, SourcePort: toPort, DestinationPort: sport},
		},
		Status: ct.StatusConfirmed,
		ID:     1234,
	}
}

func icmpEntry(src, dst string) ct.Flow {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return ct.Flow{
		TupleOrig:  ct.Tuple{IP: ct.IPTuple{SourceAddress: s, DestinationAddress: d}, Proto: ct.ProtoTuple{Protocol: unix.IPPROTO_ICMP, ICMPv4: true, ICMPID: 7, ICMPType: 8}},
		TupleReply: ct.Tuple{IP: ct.IPTuple{SourceAddress: d, DestinationAddress: s}, Proto: ct.ProtoTuple{Protocol: unix.IPPROTO_ICMP, ICMPv4: true, ICMPID: 7}},
	}
}

func inPrefix(prefixes ...string) func(netip.Addr) bool {
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	return func(a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

func TestFlowOf(t *testing.T) {
	svc := netip.MustParseAddr("10.96.0.10")
	pod := netip.MustParseAddr("10.244.1.20")
	for _, tc := range []struct {
		name string
		e    ct.Flow
		want Flow
		ok   bool
	}{
		{"tcp", entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40000, 8080),
			Flow{netip.MustParseAddr("10.244.1.10"), pod, corev1.ProtocolTCP, 40000, 8080}, true},
		{"udp v6", entry(unix.IPPROTO_UDP, "fd00:10:244::1", "fd00:10:244::2", 5000, 53),
			Flow{netip.MustParseAddr("fd00:10:244::1"), netip.MustParseAddr("fd00:10:244::2"), corev1.ProtocolUDP, 5000, 53}, true},
		{"sctp", entry(unix.IPPROTO_SCTP, "10.244.1.10", "10.244.1.20", 3868, 3868),
			Flow{netip.MustParseAddr("10.244.1.10"), pod, corev1.ProtocolSCTP, 3868, 3868}, true},
		{"mapped", entry(unix.IPPROTO_TCP, "::ffff:10.244.1.10", "::ffff:10.244.1.20", 1, 2),
			Flow{netip.MustParseAddr("10.244.1.10"), pod, corev1.ProtocolTCP, 1, 2}, true},
		{"dnat: the destination is the translated one",
			natEntry(unix.IPPROTO_TCP, "10.244.1.10", svc.String(), 40000, 80, pod, 8080),
			Flow{netip.MustParseAddr("10.244.1.10"), pod, corev1.ProtocolTCP, 40000, 8080}, true},
		{"icmp", icmpEntry("10.244.1.10", "10.244.1.20"), Flow{}, false},
		{"gre", entry(47, "10.244.1.10", "10.244.1.20", 0, 0), Flow{}, false},
		{"empty", ct.Flow{}, Flow{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := flowOf(&tc.e)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("flowOf = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRevokeSelects(t *testing.T) {
	local := inPrefix("10.244.1.0/24", "fd00:10:244:1::/64")
	tbl := newFakeTable(
		entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40000, 8080), // local both ends, denied
		entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40001, 9090), // local, allowed
		entry(unix.IPPROTO_UDP, "10.244.2.5", "10.244.1.20", 5000, 53),     // remote to local, denied
		entry(unix.IPPROTO_UDP, "10.244.1.20", "10.244.2.5", 5001, 53),     // local to remote, denied
		entry(unix.IPPROTO_UDP, "10.244.2.5", "10.244.3.5", 5002, 53),      // neither local: left
		icmpEntry("10.244.1.10", "10.244.1.20"),                            // ICMP: left
		entry(unix.IPPROTO_TCP, "fd00:10:244:1::10", "fd00:10:244:1::20", 40000, 8080),
		entry(unix.IPPROTO_SCTP, "10.244.1.10", "10.244.1.20", 3868, 3868),
		natEntry(unix.IPPROTO_TCP, "10.244.2.5", "10.96.0.1", 1000, 80, netip.MustParseAddr("10.244.1.20"), 8080),
	)
	var asked []Flow
	allowed := func(f Flow) bool {
		asked = append(asked, f)
		return f.DstPort == 9090
	}
	got, err := fakeRevoker(tbl).Revoke(context.Background(), local, allowed)
	if err != nil {
		t.Fatal(err)
	}
	var gotS []string
	for _, f := range got {
		gotS = append(gotS, f.String())
	}
	want := []string{
		"TCP 10.244.1.10:40000 -> 10.244.1.20:8080",
		"UDP 10.244.2.5:5000 -> 10.244.1.20:53",
		"UDP 10.244.1.20:5001 -> 10.244.2.5:53",
		"TCP [fd00:10:244:1::10]:40000 -> [fd00:10:244:1::20]:8080",
		"SCTP 10.244.1.10:3868 -> 10.244.1.20:3868",
		"TCP 10.244.2.5:1000 -> 10.244.1.20:8080",
	}
	if !slices.Equal(gotS, want) {
		t.Fatalf("deleted\n%q\nwant\n%q", gotS, want)
	}
	if len(asked) != len(want)+1 {
		t.Errorf("allowed called %d times, want %d (only for local TCP/UDP/SCTP flows)", len(asked), len(want)+1)
	}
	if len(tbl.entries) != 3 {
		t.Errorf("%d entries left, want 3 (allowed, remote, ICMP)", len(tbl.entries))
	}
	// Deletions name the entry by its tuples only.
	for _, d := range tbl.deleted {
		if d.ID != 0 || d.Status != 0 || !d.TupleOrig.IP.SourceAddress.IsValid() || !d.TupleReply.IP.SourceAddress.IsValid() {
			t.Errorf("delete request is not the tuples alone: %+v", d)
		}
	}
}

func TestRevokeVanishedEntry(t *testing.T) {
	e1 := entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40000, 8080)
	e2 := entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40001, 8080)
	tbl := newFakeTable(e1, e2)
	// The first entry expires between the dump and its deletion.
	once := true
	tbl.onDelete = func() {
		if once {
			once = false
			tbl.mu.Lock()
			tbl.entries = tbl.entries[1:]
			tbl.mu.Unlock()
		}
	}
	got, err := fakeRevoker(tbl).Revoke(context.Background(), inPrefix("10.244.0.0/16"), func(Flow) bool { return false })
	if err != nil {
		t.Fatalf("a vanished entry is not an error: %v", err)
	}
	if len(got) != 1 || got[0].SrcPort != 40001 {
		t.Fatalf("deleted %v, want only the entry that was still there", got)
	}
}

func TestRevokeDeleteError(t *testing.T) {
	tbl := newFakeTable(entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40000, 8080))
	tbl.deleteErr = pkgerrors.Wrap(unix.EPERM, "netfilter query")
	_, err := fakeRevoker(tbl).Revoke(context.Background(), inPrefix("10.244.0.0/16"), func(Flow) bool { return false })
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("err = %v, want EPERM wrapped", err)
	}
}

func TestRevokeCanceled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		tbl := newFakeTable(entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 1, 2))
		if _, err := fakeRevoker(tbl).Revoke(ctx, inPrefix("10.244.0.0/16"), func(Flow) bool { return false }); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(tbl.deleted) != 0 {
			t.Fatal("deleted entries after cancellation")
		}
	})
	t.Run("blocked dump", func(t *testing.T) {
		tbl := newFakeTable()
		tbl.block = true
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := fakeRevoker(tbl).Revoke(ctx, inPrefix("10.244.0.0/16"), func(Flow) bool { return false })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancellation took %v", d)
		}
	})
	t.Run("between deletions", func(t *testing.T) {
		tbl := newFakeTable(
			entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 1, 2),
			entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 3, 4),
		)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tbl.onDelete = cancel
		got, err := fakeRevoker(tbl).Revoke(ctx, inPrefix("10.244.0.0/16"), func(Flow) bool { return false })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(got) != 1 {
			t.Fatalf("returned %d flows, want the 1 deleted before cancellation", len(got))
		}
	})
}

func TestRevokeClosed(t *testing.T) {
	r, err := NewRevoker(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Revoke(context.Background(), inPrefix("10.244.0.0/16"), func(Flow) bool { return true }); err == nil {
		t.Fatal("Revoke on a closed revoker succeeded")
	}
}

// TestRevokeMarks: with a mark, a denied flow's entry gets the bit (its
// packets are dropped both ways by the ruleset) instead of being deleted,
// an entry already marked is left alone, and a marked entry whose flow is
// allowed again is deleted.
func TestRevokeMarks(t *testing.T) {
	const bit = 0x00200000
	local := inPrefix("10.244.1.0/24")
	deniedNew := entry(unix.IPPROTO_UDP, "10.244.1.10", "10.244.1.20", 40000, 53)
	deniedNew.Mark = 0x1 // a mark of someone else's, kept
	deniedMarked := entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40001, 80)
	deniedMarked.Mark = bit
	allowedMarked := entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40002, 8080)
	allowedMarked.Mark = bit
	allowedPlain := entry(unix.IPPROTO_TCP, "10.244.1.10", "10.244.1.20", 40003, 8080)
	tbl := newFakeTable(deniedNew, deniedMarked, allowedMarked, allowedPlain)
	r := fakeRevoker(tbl)
	r.Mark = bit
	got, err := r.Revoke(context.Background(), local, func(f Flow) bool { return f.DstPort == 8080 })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].String() != "UDP 10.244.1.10:40000 -> 10.244.1.20:53" {
		t.Fatalf("revoked %v", got)
	}
	if len(tbl.updated) != 1 || tbl.updated[0].Mark != bit|0x1 {
		t.Fatalf("updates %+v, want one setting the bit and keeping the other mark", tbl.updated)
	}
	if len(tbl.deleted) != 1 || tbl.deleted[0].TupleOrig != allowedMarked.TupleOrig {
		t.Fatalf("deleted %+v, want only the marked entry that is allowed again", tbl.deleted)
	}
	if len(tbl.entries) != 3 {
		t.Fatalf("%d entries left, want 3", len(tbl.entries))
	}
}
