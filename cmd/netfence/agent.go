package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/nft"
)

func init() {
	prev := extraCommands
	extraCommands = func(s *streams) []*cobra.Command {
		return append(prev(s), newAgentCommand(s))
	}
}

// agentFlags are the agent's flags.
type agentFlags struct {
	manifests []string
	node      string
	allLocal  bool
	once      bool
	dryRun    bool
	netns     string
	deny      string
	resync    time.Duration
	logJSON   bool
}

func newAgentCommand(s *streams) *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent --manifests DIR --node NODE [--once] [--dry-run]",
		Short: "Enforce NetworkPolicy on this node with nftables",
		Long: `The node agent compiles NetworkPolicy into one nftables table (inet netfence)
for the pods of its node and keeps it in step with the cluster.

File mode (no cluster needed): --manifests DIR reads namespaces, pods and
policies from manifests; pods whose spec.nodeName is --node are local. The
folder is watched and every change is applied as a small atomic transaction.
Invalid manifests are reported and skipped; an object whose manifest became
invalid keeps its last valid version in force.

Shutdown leaves the rules in place (fail closed); "agent cleanup" removes them.

Environment: NODE_NAME sets --node when the flag is absent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd, s, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.manifests, "manifests", nil, "folder or file of manifests (repeatable)")
	fl.StringVar(&f.node, "node", "", "this node's name (default $NODE_NAME)")
	fl.BoolVar(&f.allLocal, "all-local", false, "treat every pod as local, whatever its node (single-node setups)")
	fl.BoolVar(&f.once, "once", false, "sync once and exit")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the ruleset as an nft script and exit; touch nothing")
	fl.StringVar(&f.netns, "netns", "", "apply inside this named network namespace (/var/run/netns/NAME) instead of the current one")
	fl.StringVar(&f.deny, "deny", "drop", "how denied traffic ends: drop or reject")
	fl.DurationVar(&f.resync, "resync", 5*time.Minute, "re-read the manifests at this interval even without file events (0: never)")
	fl.BoolVar(&f.logJSON, "log-json", false, "log as JSON")
	cmd.AddCommand(newAgentCleanupCommand(s))
	return cmd
}

func (f *agentFlags) renderOptions() (nft.Options, error) {
	opts := nft.Options{Node: f.node, AllLocal: f.allLocal}
	if opts.Node == "" {
		opts.Node = os.Getenv("NODE_NAME")
	}
	if opts.Node == "" && !opts.AllLocal {
		return opts, fmt.Errorf("--node (or NODE_NAME) is required, or --all-local")
	}
	switch f.deny {
	case "drop":
		opts.Deny = nft.DenyDrop
	case "reject":
		opts.Deny = nft.DenyReject
	default:
		return opts, fmt.Errorf("--deny %q: must be drop or reject", f.deny)
	}
	return opts, nil
}

func newLogger(s *streams, asJSON bool) *slog.Logger {
	if asJSON {
		return slog.New(slog.NewJSONHandler(s.err, nil))
	}
	return slog.New(slog.NewTextHandler(s.err, nil))
}

// openApplier binds an applier to the named network namespace, or to the
// current one.
func openApplier(netns string) (*nft.Applier, error) {
	if netns == "" {
		return nft.NewApplier(0)
	}
	fd, err := os.Open(filepath.Join("/var/run/netns", netns))
	if err != nil {
		return nil, fmt.Errorf("--netns: %w", err)
	}
	defer fd.Close()
	return nft.NewApplier(int(fd.Fd()))
}

func runAgent(cmd *cobra.Command, s *streams, f *agentFlags) error {
	if len(f.manifests) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("--manifests DIR is required (file mode)")}
	}
	opts, err := f.renderOptions()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log := newLogger(s, f.logJSON)
	src := &agent.FileSource{Paths: f.manifests, Log: log}
	if f.dryRun {
		c, problems := src.Load()
		if c == nil {
			return &exitError{code: 2, err: fmt.Errorf("load manifests: %v", problems)}
		}
		a := agent.New(agent.Config{Render: opts, Log: log})
		m, _ := a.Render(c)
		_, err := fmt.Fprint(s.out, m.Text())
		return err
	}
	applier, err := openApplier(f.netns)
	if err != nil {
		return err
	}
	defer applier.Close()
	a := agent.New(agent.Config{Render: opts, Dataplane: applier, Log: log})
	return agent.RunFiles(cmd.Context(), a, src, agent.FileOptions{Once: f.once, Resync: f.resync})
}

func newAgentCleanupCommand(s *streams) *cobra.Command {
	var netns string
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove netfence's nftables table (this opens every pod netfence isolated)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			applier, err := openApplier(netns)
			if err != nil {
				return err
			}
			defer applier.Close()
			if err := applier.Cleanup(); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "removed table inet %s\n", nft.TableName)
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "the named network namespace to clean (default: the current one)")
	return cmd
}
