package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// streams are the command's standard streams.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

func newRootCommand(name string, in io.Reader, out, errOut io.Writer) *cobra.Command {
	s := &streams{in: in, out: out, err: errOut}
	root := &cobra.Command{
		Use:           name,
		Version:       version,
		Short:         "Analyze and enforce Kubernetes NetworkPolicy",
		Long:          "netfence answers \"who can reach whom, and why?\" from manifests, and enforces NetworkPolicy in nftables.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	var stopProfile func()
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if stopProfile != nil {
			stopProfile()
		}
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newCheckCommand(s), newMatrixCommand(s), newDescribeCommand(s),
		newAgentCommand(s), newConnectivityCommand(s), newTestbedCommand(s), newAdviseCommand(s), newMonitorCommand(s), newProbeCommand(s))
	return root
}

// sourceFlags are the flags that say where the cluster comes from.
type sourceFlags struct {
	files   []string
	verbose bool
	kube    kube.ConfigOptions
	live    bool
	// warnings are the input's warnings, set by load: the manifests',
	// then the cluster's (cluster.Cluster.Warnings), then the cluster
	// policies of equal priority that disagree (analysis.TierConflicts).
	warnings []string
	// conflicts are the disagreements of cluster policies of equal
	// priority, set by load.
	conflicts []analysis.TierConflict
	// withStaged enforces staged policies (--with-staged, see
	// registerStaged); warnStaged warns about those not enforced.
	withStaged, warnStaged bool
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "manifest file, directory (recursive) or - for stdin; repeatable")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "list objects of kinds netfence does not use")
	cmd.Flags().StringVar(&f.kube.Kubeconfig, "kubeconfig", "", "read the live cluster through this kubeconfig (default $KUBECONFIG, ~/.kube/config)")
	cmd.Flags().StringVar(&f.kube.Context, "context", "", "kubeconfig context of the live cluster")
	cmd.Flags().BoolVar(&f.live, "live", false, "read the live cluster (implied by --kubeconfig/--context, or by having no -f)")
}

// useLive reports whether the live cluster is read: when asked for, or when
// no manifests are given.
func (f *sourceFlags) useLive() bool {
	return f.live || f.kube.Kubeconfig != "" || f.kube.Context != "" || len(f.files) == 0
}

// load reads the cluster (ctx bounds the live read: Ctrl-C cancels it):
// manifests, the live cluster, or both (objects
// from files replace live objects of the same kind, namespace and name, so a
// policy edit can be judged before it is applied). Any invalid document is
// an error (exit 2) and no result is produced. Warnings go to stderr as
// "warning: ..." and are kept in f.warnings.
func (f *sourceFlags) load(ctx context.Context, s *streams) (*policy.Set, error) {
	f.warnings = nil
	live := &kube.Objects{}
	if f.useLive() {
		cfg, err := kube.RESTConfig(f.kube)
		if err != nil {
			if len(f.files) == 0 && !f.live && f.kube.Kubeconfig == "" && f.kube.Context == "" {
				return nil, &exitError{code: 2, err: fmt.Errorf("no input: give manifests with -f FILE|DIR|- or a live cluster with --kubeconfig/--context")}
			}
			return nil, &exitError{code: 2, err: err}
		}
		cfg.UserAgent = "netfence"
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		policyClient, err := versioned.NewForConfig(cfg)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		if live, err = kube.List(ctx, client, kube.WithClusterPolicies(policyClient)); err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("read the live cluster: %w", err)}
		}
	}
	if len(f.files) > 0 {
		objs, err := (&manifest.Loader{Stdin: s.in}).Load(f.files)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("invalid input, nothing analyzed:\n%w", err)}
		}
		if f.verbose {
			for _, sk := range objs.Skipped {
				fmt.Fprintf(s.err, "skipped %s: kind %s (%s) is not used\n", sk.Location, sk.Kind, sk.APIVersion)
			}
		}
		for _, w := range objs.Warnings {
			f.warnings = append(f.warnings, w.String())
		}
		live.Overlay(objs.Namespaces, objs.Pods, objs.Policies)
		live.OverlayCluster(objs.ClusterPolicies, objs.Nodes)
	}
	set := policy.NewSet(live.Cluster())
	if len(set.Rejected)+len(set.StagedRejected) > 0 {
		// Files were validated and compiled on load; a live cluster's
		// objects passed the API server, which lets through what
		// netfence cannot read as written (a selector operator it does
		// not know, domainNames in a Deny rule): refuse the whole answer.
		msgs := make([]string, 0, len(set.Rejected)+len(set.StagedRejected))
		for _, r := range slices.Concat(set.Rejected, set.StagedRejected) {
			msgs = append(msgs, r.Error())
		}
		return nil, &exitError{code: 2, err: fmt.Errorf("policies netfence cannot read, nothing analyzed:\n%s", strings.Join(msgs, "\n"))}
	}
	f.warnings = append(f.warnings, set.Cluster.Warnings()...)
	set = f.staged(set)
	conflicts, err := analysis.TierConflicts(ctx, set)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	f.conflicts = conflicts
	for _, c := range conflicts {
		f.warnings = append(f.warnings, c.String())
	}
	for _, w := range f.warnings {
		fmt.Fprintf(s.err, "warning: %s\n", w)
	}
	return set, nil
}
