package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/nft"
)

// monitorFlags are the agent's flags for the flow monitor.
type monitorFlags struct {
	enabled bool
	socket  string
	group   uint16
	rate    uint32
	// allowed adds records of allowed connections (conntrack NEW events).
	allowed bool
	// flowLog, when set, is the file of aggregated records.
	flowLog         string
	flowLogInterval time.Duration
	flowLogMaxMB    int64
	// audit runs the ruleset as a dry run (nft.DenyAudit); it turns the
	// monitor on.
	audit bool
}

func (m *monitorFlags) addFlags(fl *pflag.FlagSet) {
	fl.BoolVar(&m.enabled, "monitor", false, "log denied packets (rate limited, NFLOG) and serve them, explained, to netfence monitor on --monitor-socket")
	fl.StringVar(&m.socket, "monitor-socket", flow.DefaultSocket, "unix socket of the flow monitor (with --monitor)")
	fl.Uint16Var(&m.group, "nflog-group", nft.DefaultLogGroup, "NFLOG group of denied packets (with --monitor)")
	fl.Uint32Var(&m.rate, "log-rate", nft.DefaultLogRate, "denied packets logged per second per pod chain, burst twice that (with --monitor)")
	fl.BoolVar(&m.allowed, "monitor-allowed", false, "also report each new connection the dataplane allows from or to a local pod (conntrack NEW events; with --monitor)")
	fl.StringVar(&m.flowLog, "flow-log", "", "also write aggregated flow records (NDJSON, one per key and interval) to this `FILE`, rotated by size (with --monitor)")
	fl.DurationVar(&m.flowLogInterval, "flow-log-interval", 10*time.Second, "aggregation interval of --flow-log")
	fl.Int64Var(&m.flowLogMaxMB, "flow-log-max-mb", 100, "size of --flow-log before it rotates (3 old files kept)")
	fl.BoolVar(&m.audit, "audit", false, "node-wide dry run: deny nothing; log what policy would deny as allowed records with pending.verdict denied (turns --monitor on)")
}

// logOptions are the ruleset's logging options: nil without --monitor.
func (m *monitorFlags) logOptions() *nft.LogOptions {
	if m.audit {
		m.enabled = true
	}
	if !m.enabled {
		return nil
	}
	if m.group == 0 {
		m.group = nft.DefaultLogGroup
	}
	return &nft.LogOptions{Group: m.group, Rate: m.rate}
}

// start reads the NFLOG group in the agent's network namespace and serves
// the records on the socket until ctx ends, and hooks the agent's syncs
// so that records are explained by the policies of the ruleset that
// logged them.
func (m *monitorFlags) start(ctx context.Context, netns string, opts nft.Options, cfg *agent.Config, log *slog.Logger) error {
	gens := flow.NewGenerations(8)
	cfg.Applied = gens.Applied
	var metrics *flow.Metrics
	if cfg.Metrics != nil {
		metrics = flow.NewMetrics(cfg.Metrics.Registry)
	} else {
		metrics = flow.NewMetrics(nil)
	}
	hub := flow.NewHub(metrics)
	nsfd := 0
	if netns != "" {
		fd, err := os.Open(filepath.Join("/var/run/netns", netns))
		if err != nil {
			return fmt.Errorf("--netns: %w", err)
		}
		defer fd.Close() // the netlink socket is open once Run returns
		nsfd = int(fd.Fd())
	}
	audit := opts.Deny == nft.DenyAudit
	src := flow.Source{NetNS: nsfd, Node: opts.Node, AllLocal: opts.AllLocal, Audit: audit, Gens: gens, Hub: hub, Metrics: metrics, Log: log}
	rd := &flow.Reader{Group: opts.Log.Group, Source: src}
	if err := rd.Run(ctx); err != nil {
		return fmt.Errorf("flow monitor: %w", err)
	}
	if m.allowed {
		ar := &flow.AllowedReader{Source: src}
		if err := ar.Run(ctx); err != nil {
			return fmt.Errorf("flow monitor (--monitor-allowed): %w", err)
		}
	}
	if m.flowLog != "" {
		fl := &flow.FileLog{Path: m.flowLog, Interval: m.flowLogInterval, MaxBytes: m.flowLogMaxMB << 20, Backups: 3}
		go func() {
			if err := fl.Run(ctx, hub); err != nil {
				log.Error("flow log stopped", "error", err)
			}
		}()
	}
	l, err := flow.Listen(m.socket)
	if err != nil {
		return fmt.Errorf("--monitor-socket: %w", err)
	}
	go func() {
		if err := flow.Serve(ctx, l, hub); err != nil {
			log.Error("flow monitor socket stopped", "error", err)
		}
	}()
	if audit {
		log.Warn("audit mode: policy is not enforced; what it would deny is logged (netfence monitor shows pending.verdict denied)")
	}
	log.Info("flow monitor on", "socket", m.socket, "nflogGroup", opts.Log.Group, "audit", audit)
	return nil
}

func newMonitorCommand(s *streams) *cobra.Command {
	var (
		socket, output string
		filter         flow.Filter
	)
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Stream the flows the agent denies (and allows), each explained as `netfence check` explains it",
		Long: `monitor connects to the agent's flow monitor socket (agent --monitor) and
prints each denied packet the kernel logged (rate limited per pod) and, with
agent --monitor-allowed, each new connection it allowed, with the policy that
decided it, exactly as "netfence check" explains that flow: the
direction where it was denied and the cluster policy rule, or "default deny"
and the policies isolating the pod. -o json prints one JSON record a line.
Several monitors may run at once; one that cannot keep up loses records
(netfence_flow_records_dropped_total), it never slows the agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "json":
			default:
				return &exitError{code: 2, err: fmt.Errorf("-o %q: must be text or json", output)}
			}
			switch filter.Verdict {
			case "", flow.Denied, flow.Allowed:
			default:
				return &exitError{code: 2, err: fmt.Errorf("--verdict %q: must be denied or allowed", filter.Verdict)}
			}
			enc := json.NewEncoder(s.out)
			return flow.Stream(cmd.Context(), socket, func(r *flow.Record) error {
				if !filter.Match(r) {
					return nil
				}
				if output == "json" {
					return enc.Encode(r)
				}
				return r.WriteText(s.out)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&socket, "socket", flow.DefaultSocket, "the agent's monitor socket")
	fl.StringVarP(&output, "output", "o", "text", "text or json (NDJSON)")
	fl.StringVar(&filter.Verdict, "verdict", "", "only denied or allowed")
	fl.StringVar(&filter.Pod, "pod", "", "only flows from or to this pod (NS/NAME)")
	fl.StringVar(&filter.Namespace, "namespace", "", "only flows from or to pods of this namespace")
	fl.StringVar(&filter.Policy, "policy", "", "only flows this policy (NS/NAME, or cnp/NAME) decided or isolates")
	fl.IntVar(&filter.Port, "port", 0, "only flows to this port")
	return cmd
}
