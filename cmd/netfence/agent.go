package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/conntrack"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/nft"
)

// agentFlags are the agent's flags.
type agentFlags struct {
	manifests       []string
	node            string
	allLocal        bool
	once            bool
	dryRun          bool
	netns           string
	deny            string
	resync          time.Duration
	logJSON         bool
	kube            kube.ConfigOptions
	healthAddr      string
	metricsAddr     string
	keepEstablished bool
	recheck         time.Duration
	monitor         monitorFlags
}

func newAgentCommand(s *streams) *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent (--manifests DIR | --kubeconfig FILE | --in-cluster) --node NODE",
		Short: "Enforce NetworkPolicy on this node with nftables",
		Long: `The node agent compiles NetworkPolicy into one nftables table (inet netfence)
for the pods of its node and keeps it in step with the cluster.

File mode (no cluster needed): --manifests DIR reads namespaces, pods and
policies from manifests; pods whose spec.nodeName is --node are local. The
folder is watched and every change is applied as a small atomic transaction.
Invalid manifests are reported and skipped; an object whose manifest became
invalid keeps its last valid version in force.

Kubernetes mode: --kubeconfig FILE (or KUBECONFIG) or --in-cluster watches
Namespaces, Pods, NetworkPolicies and Nodes with client-go shared informers
and feeds the same compiler and renderer. Only pods on --node get chains;
every pod is a peer. Cluster-scoped policies of policy.networking.k8s.io
(ClusterNetworkPolicy v1beta1, or v1alpha2; AdminNetworkPolicy and
BaselineAdminNetworkPolicy v1alpha1) are watched while the API server serves
them: discovery is asked at start and every --discovery-interval, so CRDs
installed later are picked up and removed ones forgotten; without them the
agent enforces NetworkPolicy alone. When the API server is unreachable the
last state stays enforced; on restart the previous rules stay in the kernel
until the first full sync replaces them atomically. Policies that cannot be
enforced as written get a Warning Event.

/healthz, /readyz (ready once the first sync is in the kernel; not while the
kernel refuses the ruleset or the manifests cannot be read) and Prometheus
/metrics are served on --health-addr, 127.0.0.1:9808 by default (loopback
only: on a hostNetwork pod any other address is every address of the node).
--metrics-addr serves /metrics on another address, opt-in.

Faults fail closed: a manifests path that is missing or unreadable changes
nothing (the kernel keeps the last ruleset; not ready); a file that cannot be
parsed keeps its previous objects; the same object in two files keeps its
previous version (or denies the pods either version selects); a policy that
does not compile keeps its last compiled version, or denies the pods it
selects. With --once, any problem exits non-zero and touches nothing.

Shutdown leaves the rules in place (fail closed); "agent cleanup" removes them.

Environment: NODE_NAME sets --node when the flag is absent (a DaemonSet sets it
from spec.nodeName); KUBECONFIG as for kubectl.`,
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
	fl.StringVar(&f.kube.Kubeconfig, "kubeconfig", "", "kubeconfig file: Kubernetes mode (default $KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&f.kube.Context, "context", "", "kubeconfig context")
	fl.BoolVar(&f.kube.InCluster, "in-cluster", false, "Kubernetes mode with the pod's service account")
	fl.StringVar(&f.healthAddr, "health-addr", "127.0.0.1:9808", "address of /healthz and /readyz, and of /metrics unless --metrics-addr is set (empty: off); loopback by default")
	fl.BoolVar(&f.keepEstablished, "keep-established", false, "do not cut established flows that a policy change denies (by default their conntrack entries are deleted in the same sync)")
	fl.DurationVar(&f.recheck, "discovery-interval", 30*time.Second, "Kubernetes mode: how often to ask the API server which cluster-scoped policy CRDs it serves")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics on this address instead (opt-in; e.g. :9809 exposes the metrics, unauthenticated, on every address of a hostNetwork node: firewall it)")
	f.monitor.addFlags(fl)
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
	opts.Log = f.monitor.logOptions()
	if f.monitor.audit {
		opts.Deny = nft.DenyAudit
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

// openRevoker binds a conntrack revoker to the named network namespace, or
// to the current one.
func openRevoker(netns string) (*conntrack.Revoker, error) {
	if netns == "" {
		return conntrack.NewRevoker(0)
	}
	fd, err := os.Open(filepath.Join("/var/run/netns", netns))
	if err != nil {
		return nil, fmt.Errorf("--netns: %w", err)
	}
	defer fd.Close()
	return conntrack.NewRevoker(int(fd.Fd()))
}

func runAgent(cmd *cobra.Command, s *streams, f *agentFlags) error {
	opts, err := f.renderOptions()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log := newLogger(s, f.logJSON)
	if len(f.manifests) == 0 && f.kube.Kubeconfig == "" && !f.kube.InCluster && os.Getenv("KUBECONFIG") == "" {
		return &exitError{code: 2, err: fmt.Errorf("give --manifests DIR (file mode), or --kubeconfig FILE / --in-cluster (Kubernetes mode)")}
	}
	if len(f.manifests) > 0 && f.dryRun {
		src := &agent.FileSource{Paths: f.manifests} // problems are returned, not logged
		snap, err := src.Load()
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if len(snap.Problems) > 0 {
			return &exitError{code: 2, err: errors.Join(snap.Problems...)}
		}
		m, _ := agent.New(agent.Config{Render: opts, Log: log}).Render(snap.Cluster)
		_, err = fmt.Fprint(s.out, m.Text())
		return err
	}
	if len(f.manifests) > 0 && f.once {
		// Refuse before any kernel access when the manifests are not all
		// readable and valid.
		snap, err := (&agent.FileSource{Paths: f.manifests}).Load()
		if err == nil && len(snap.Problems) > 0 {
			err = errors.Join(snap.Problems...)
		}
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("nothing applied: %w", err)}
		}
	}
	applier, err := openApplier(f.netns)
	if err != nil {
		return err
	}
	defer applier.Close()
	cfg := agent.Config{Render: opts, Dataplane: applier, Log: log, Metrics: agent.NewMetrics(), Health: &agent.Health{}}
	if !f.keepEstablished {
		revoker, err := openRevoker(f.netns)
		if err != nil {
			return fmt.Errorf("conntrack (use --keep-established to run without revocation): %w", err)
		}
		defer revoker.Close()
		revoker.Mark = nft.RevokedMark
		cfg.Revoker = revoker
	}
	ctx := cmd.Context()
	if (f.monitor.allowed || f.monitor.flowLog != "") && !f.monitor.enabled {
		return &exitError{code: 2, err: fmt.Errorf("--monitor-allowed and --flow-log require --monitor")}
	}
	if f.monitor.enabled && !f.once {
		if err := f.monitor.start(ctx, f.netns, opts, &cfg, log); err != nil {
			return err
		}
	}
	if (f.healthAddr != "" || f.metricsAddr != "") && !f.once {
		go func() {
			if err := agent.Serve(ctx, f.healthAddr, f.metricsAddr, cfg.Health, cfg.Metrics); err != nil {
				log.Error("health/metrics server stopped", "error", err)
			}
		}()
	}
	if len(f.manifests) > 0 {
		src := &agent.FileSource{Paths: f.manifests, Log: log}
		if err := agent.RunFiles(ctx, agent.New(cfg), src, agent.FileOptions{Once: f.once, Resync: f.resync}); err != nil {
			if f.once {
				return &exitError{code: 2, err: err}
			}
			return err
		}
		return nil
	}
	restCfg, err := kube.RESTConfig(f.kube)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	restCfg.UserAgent = "netfence-agent"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	policyClient, err := versioned.NewForConfig(restCfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	infOpts := kube.Options{Policy: policyClient, Recheck: f.recheck, Log: log}
	if f.dryRun {
		inf := kube.NewInformers(client, infOpts)
		if !inf.Start(ctx) {
			return ctx.Err()
		}
		m, _ := agent.New(agent.Config{Render: opts, Log: log}).Render(inf.Snapshot())
		_, err := fmt.Fprint(s.out, m.Text())
		return err
	}
	events := agent.NewEventReporter(client, opts.Node)
	defer events.Stop()
	cfg.Rejected, cfg.Noticed = events.Rejected, events.Noticed
	return agent.RunKube(ctx, agent.New(cfg), kube.NewInformers(client, infOpts), agent.KubeOptions{Once: f.once})
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
			if err := applier.Cleanup(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "removed table inet %s\n", nft.TableName)
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "the named network namespace to clean (default: the current one)")
	return cmd
}
