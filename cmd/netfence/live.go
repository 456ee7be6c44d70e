package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/netfence/netfence/internal/connectivity"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// liveFlags are connectivity's flags for --live.
type liveFlags struct {
	image  string
	keep   bool
	reuse  bool
	settle time.Duration
}

func (l *liveFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.image, "image", "ghcr.io/netfence/netfence:"+version, "with --live: image of the probe pods (netfence's)")
	cmd.Flags().BoolVar(&l.keep, "keep", false, "with --live: keep the probe namespaces afterwards")
	cmd.Flags().BoolVar(&l.reuse, "reuse", false, "with --live: probe what a run with --keep left, creating only what is missing (after editing labels, deleting pods, restarting agents)")
	cmd.Flags().DurationVar(&l.settle, "settle", 3*time.Second, "with --live: wait this long for the agents to enforce before probing")
}

// runLiveConnectivity is `connectivity --live`.
func runLiveConnectivity(cmd *cobra.Command, s *streams, src *sourceFlags, l *liveFlags, o connectivity.Options, output string) error {
	var opts connectivity.LiveOptions
	if len(src.files) > 0 {
		objs, err := (&manifest.Loader{Stdin: s.in}).Load(src.files)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("invalid input, nothing applied:\n%w", err)}
		}
		if len(objs.Pods)+len(objs.ClusterPolicies) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("with --live, -f gives NetworkPolicies for the probe namespaces only (found pods or cluster policies)")}
		}
		opts.Policies = objs.Policies
	}
	cfg, err := kube.RESTConfig(src.kube)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg.UserAgent = "netfence"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// The analyzer reads the live cluster only: the policies of -f are in
	// it by then.
	reader := *src
	reader.files = nil
	opts.Client, opts.Config, opts.Image, opts.Keep, opts.Reuse, opts.Settle = client, cfg, l.image, l.keep, l.reuse, l.settle
	opts.Load = func(ctx context.Context) (*policy.Set, error) { return reader.load(ctx, s) }
	opts.Timeout, opts.Parallel, opts.Log = o.Timeout, o.Parallel, newLogger(s, false)
	opts.Ports = o.Ports
	rep, err := connectivity.RunLive(cmd.Context(), opts)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return writeReport(s, rep, output)
}
