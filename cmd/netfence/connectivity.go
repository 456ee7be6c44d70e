package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/connectivity"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/testbed"
)

func parsePorts(list []string) ([]analysis.Port, error) {
	var out []analysis.Port
	for _, p := range list {
		for _, one := range strings.Split(p, ",") {
			if strings.TrimSpace(one) == "" {
				continue
			}
			pp, err := analysis.ParsePort(one)
			if err != nil {
				return nil, fmt.Errorf("--ports: %w", err)
			}
			out = append(out, pp)
		}
	}
	return out, nil
}

func newConnectivityCommand(s *streams) *cobra.Command {
	var src sourceFlags
	var ports []string
	var output, deny, flows string
	var opts connectivity.Options
	var live liveFlags
	cmd := &cobra.Command{
		Use:   "connectivity -f MANIFESTS [--ports TCP/80,...] [-o table|json]",
		Short: "Probe every pod pair with real traffic through the enforced dataplane and compare with the analyzer (root)",
		Long: `connectivity builds the cluster in network namespaces it creates (a node
namespace plus one per pod, with the pods' addresses), enforces the policies
there with netfence's nftables dataplane, probes every pod pair and port with
real TCP/UDP traffic (SCTP with raw INIT packets), tears everything down and
prints the observed matrix beside the analyzer's expected one.
With --flows FILE, the node's flow monitor (the agent's: denied packets
through NFLOG, allowed connections through conntrack) runs while probing, and
what it saw is written to FILE as NDJSON flow records (netfence monitor -o
json), one per connection. With --audit the ruleset denies nothing and logs
what it would deny (agent --audit): every probe should get through, and the
records say allowed with pending.verdict "denied" where enforcing would deny.
With --live it tests a live cluster instead (the cilium connectivity test of
netfence): it creates the namespaces netfence-probe-x and netfence-probe-y
with probe pods a, b and c (netfence's image, --image, serving --ports),
applies the NetworkPolicies of -f (each in one of those namespaces; without
-f the cluster's own policies decide), waits for the nodes' agents
(--settle), probes every pair and port with real connections made inside the
source pod (exec), compares with the analyzer's reading of the live cluster
and deletes what it created (unless --keep). SCTP is not probed live.
Exit 0 when they agree, 1 on any mismatch, 2 on error. Needs root (not with --live).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("-o %q: must be table or json", output)}
			}
			switch deny {
			case "reject":
				opts.Deny = nft.DenyReject
			case "drop":
				opts.Deny = nft.DenyDrop
			default:
				return &exitError{code: 2, err: fmt.Errorf("--deny %q: must be drop or reject", deny)}
			}
			var err error
			if opts.Ports, err = parsePorts(ports); err != nil {
				return &exitError{code: 2, err: err}
			}
			if src.live {
				return runLiveConnectivity(cmd, s, &src, &live, opts, output)
			}
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			opts.Log = newLogger(s, false)
			opts.Flows = flows != ""
			rep, err := connectivity.Run(cmd.Context(), set, opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if flows != "" {
				if err := writeFileWith(flows, rep.WriteFlows); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--flows: %w", err)}
				}
			}
			return writeReport(s, rep, output)
		},
	}
	src.register(cmd)
	cmd.Flags().StringSliceVar(&ports, "ports", nil, "ports to probe, e.g. TCP/80,UDP/53 (default: every port a policy or container port names)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&deny, "deny", "reject", "how the dataplane ends denied traffic while probing: reject (fast) or drop")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 32, "concurrent probes")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", time.Second, "timeout of one probe")
	cmd.Flags().StringVar(&opts.Prefix, "prefix", "", "name prefix of the namespaces created (default: random)")
	cmd.Flags().StringVar(&flows, "flows", "", "write the flow records the node's monitor saw while probing to this `FILE` (NDJSON, one per connection)")
	cmd.Flags().BoolVar(&opts.Audit, "audit", false, "enforce in audit mode, as agent --audit: nothing is denied, what would be is logged")
	live.register(cmd)
	return cmd
}

// writeReport prints a connectivity report as table or JSON; any mismatch
// is exit 1.
func writeReport(s *streams, rep *connectivity.Report, output string) error {
	var err error
	if output == "json" {
		err = rep.WriteJSON(s.out)
	} else {
		err = rep.WriteTable(s.out)
	}
	if err != nil {
		return err
	}
	if rep.Mismatches > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// writeFileWith writes a file through fn, atomically: a temporary file
// in the same folder renamed over path once complete.
func writeFileWith(path string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := fn(w); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newTestbedCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testbed",
		Short: "A node in network namespaces, one namespace per pod of the manifests (root)",
	}
	var src sourceFlags
	var prefix string
	var ports []string
	var enforce bool
	up := &cobra.Command{
		Use:   "up -f MANIFESTS [--prefix P] [--enforce]",
		Short: "Build the testbed and serve the pods' ports until interrupted, then tear it down",
		Long: `up creates PREFIX-node and one namespace per running pod, linked only to
the node namespace, and serves every pod's container ports (plus --ports) from
this process. It runs until interrupted, then removes everything. With
--enforce the agent's ruleset is installed in the node namespace. Probe with
e.g. "ip netns exec PREFIX-pN nc -zv ADDR PORT". If the process is killed,
"testbed down --prefix P" removes what is left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			extra, err := parsePorts(ports)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var tp []testbed.Port
			for _, p := range extra {
				tp = append(tp, testbed.Port{Protocol: p.Protocol, Port: p.Port})
			}
			bed, err := testbed.Up(cmd.Context(), set.Cluster, testbed.Options{Prefix: prefix, ExtraPorts: tp, HostNetwork: true})
			if err != nil {
				return err
			}
			defer bed.Down()
			if enforce {
				applier, err := connectivity.Enforce(cmd.Context(), bed, set.Cluster, nft.DenyDrop, newLogger(s, false))
				if err != nil {
					return err
				}
				defer applier.Close()
			}
			fmt.Fprintf(s.out, "node namespace: %s\n", bed.NodeNamespace())
			for _, p := range bed.Pods() {
				ns, _ := bed.PodNamespace(p.Key())
				fmt.Fprintf(s.out, "pod %s: namespace %s, addresses %v\n", p.Key(), ns, p.IPs)
			}
			fmt.Fprintln(s.out, "serving; interrupt (Ctrl-C) to tear down")
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case <-sig:
			case <-cmd.Context().Done():
			}
			return nil
		},
	}
	src.register(up)
	up.Flags().StringVar(&prefix, "prefix", "nftb", "name prefix of the namespaces")
	up.Flags().StringSliceVar(&ports, "ports", nil, "extra ports every pod serves, e.g. TCP/80,UDP/53")
	up.Flags().BoolVar(&enforce, "enforce", false, "install the agent's ruleset in the node namespace")
	var downPrefix string
	down := &cobra.Command{
		Use:   "down --prefix P",
		Short: "Remove every testbed namespace named PREFIX-*",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := testbed.RemoveByPrefix(downPrefix)
			fmt.Fprintf(s.out, "removed %d namespaces\n", n)
			return err
		},
	}
	down.Flags().StringVar(&downPrefix, "prefix", "nftb", "name prefix of the namespaces to remove")
	cmd.AddCommand(up, down)
	return cmd
}
