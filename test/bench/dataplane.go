package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"

	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/testbed"
)

// ConntrackTable is the table of the conntrack-only baseline: inet
// netfence-bench-ct with one chain on the forward hook holding only
// "ct state established,related accept".
const ConntrackTable = "netfence-bench-ct"

// Dataplane is a testbed holding the client and the server pods (see
// BedCluster), with the server listening on ServerPort, and the means to
// install each measured configuration in the bed's node namespace.
type Dataplane struct {
	bed      *testbed.Bed
	server   *Server
	applier  *nft.Applier
	node     netns.NsHandle
	clientNS string
	serverNS string
}

// Up builds the bed (prefix as for testbed.Options; empty means random)
// and starts the server. The caller must Close it.
func Up(ctx context.Context, prefix string) (_ *Dataplane, err error) {
	bed, err := testbed.Up(ctx, BedCluster(), testbed.Options{Prefix: prefix})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	d := &Dataplane{bed: bed, node: netns.None()}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
		}
	}()
	var ok bool
	if d.clientNS, ok = bed.PodNamespace(ClientPod().Key()); !ok {
		return nil, errors.New("bench: client pod missing from the bed")
	}
	if d.serverNS, ok = bed.PodNamespace(ServerPod().Key()); !ok {
		return nil, errors.New("bench: server pod missing from the bed")
	}
	if d.node, err = netns.GetFromName(bed.NodeNamespace()); err != nil {
		return nil, fmt.Errorf("bench: open node namespace: %w", err)
	}
	if d.applier, err = nft.NewApplier(int(d.node)); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := d.applier.CheckKernel(ctx); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if d.server, err = StartServer(d.serverNS, d.Target(), 2); err != nil {
		return nil, err
	}
	return d, nil
}

// Bed returns the testbed.
func (d *Dataplane) Bed() *testbed.Bed { return d.bed }

// Target is the server's address and port.
func (d *Dataplane) Target() netip.AddrPort {
	return netip.AddrPortFrom(ServerAddr, uint16(ServerPort))
}

// Server returns the server.
func (d *Dataplane) Server() *Server { return d.server }

// Applier returns the applier bound to the node namespace.
func (d *Dataplane) Applier() *nft.Applier { return d.applier }

// Load runs the load generator from the client pod against the server.
func (d *Dataplane) Load(ctx context.Context, opts LoadOptions) (*LoadResult, error) {
	return Load(ctx, d.clientNS, d.Target(), opts)
}

// InstallNone removes both netfence's table and the conntrack-only table.
func (d *Dataplane) InstallNone() error {
	return errors.Join(d.applier.Cleanup(context.Background()), d.conntrackTable(false))
}

// InstallConntrackOnly leaves only the conntrack-only table.
func (d *Dataplane) InstallConntrackOnly() error {
	if err := d.applier.Cleanup(context.Background()); err != nil {
		return err
	}
	return d.conntrackTable(true)
}

// InstallModel leaves only netfence's table, holding m (one full sync).
func (d *Dataplane) InstallModel(m *nft.Model) error {
	if err := d.conntrackTable(false); err != nil {
		return err
	}
	return d.applier.FullSync(context.Background(), m)
}

// conntrackTable creates (or with add false, deletes) the conntrack-only
// table, in one transaction.
func (d *Dataplane) conntrackTable(add bool) error {
	return d.forwardTable(ConntrackTable, nftables.ChainPriorityFilter, add,
		append(ctStateIs(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), &expr.Verdict{Kind: expr.VerdictAccept})...)
}

// forwardTable creates (or with add false, deletes) the table name in the
// node namespace, in one transaction: a forward chain at priority prio,
// policy accept, with one rule of exprs.
func (d *Dataplane) forwardTable(name string, prio *nftables.ChainPriority, add bool, exprs ...expr.Any) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(d.node)))
	if err != nil {
		return fmt.Errorf("bench: netlink: %w", err)
	}
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	// Adding first makes the deletion succeed when there is no table.
	c.AddTable(t)
	c.DelTable(t)
	if add {
		c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: prio, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("bench: table inet %s: %w", name, err)
	}
	return nil
}

// ctStateIs matches packets whose conntrack state has one of bits.
func ctStateIs(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// Tables lists the names of the tables in the node namespace.
func (d *Dataplane) Tables() ([]string, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(d.node)))
	if err != nil {
		return nil, fmt.Errorf("bench: netlink: %w", err)
	}
	ts, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("bench: list tables: %w", err)
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out, nil
}

// ConntrackCount returns the number of conntrack entries of the node
// namespace (0 when conntrack is not loaded).
func (d *Dataplane) ConntrackCount() (int, error) {
	var n int
	err := testbed.InNamespace(d.bed.NodeNamespace(), func() error {
		b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return n, err
}

// Close stops the server, removes the tables and tears the bed down. It is
// safe to call on a partly built Dataplane.
func (d *Dataplane) Close() error {
	var errs []error
	if d.server != nil {
		errs = append(errs, d.server.Close())
		d.server = nil
	}
	if d.applier != nil {
		// The tables go with the namespace anyway; remove them first so a
		// failure to delete the namespace leaves no rules behind.
		errs = append(errs, d.applier.Cleanup(context.Background()))
		if d.node.IsOpen() {
			errs = append(errs, d.conntrackTable(false))
		}
		errs = append(errs, d.applier.Close())
		d.applier = nil
	}
	if d.node.IsOpen() {
		errs = append(errs, d.node.Close())
		d.node = netns.None()
	}
	if d.bed != nil {
		errs = append(errs, d.bed.Down())
		d.bed = nil
	}
	return errors.Join(errs...)
}
