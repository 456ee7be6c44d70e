package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/netfence/netfence/internal/probe"
)

// newProbeCommand is the workload of `connectivity --live`: the probe
// pods run `netfence probe serve`, and each is exec'd into to run
// `netfence probe dial`.
func newProbeCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "probe",
		Short:  "Probe workload of connectivity --live (serve and dial inside pods)",
		Hidden: true,
	}
	var token, ports string
	serve := &cobra.Command{
		Use:   "serve --token TOKEN --ports TCP/80,UDP/53",
		Short: "Answer on the ports with the token until terminated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []probe.Port
			for _, one := range strings.Split(ports, ",") {
				if strings.TrimSpace(one) == "" {
					continue
				}
				p, err := probe.ParsePort(strings.TrimSpace(one))
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				ps = append(ps, p)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if err := probe.Serve(ctx, token, ps); err != nil {
				return err
			}
			fmt.Fprintf(s.err, "serving %s\n", ports)
			<-ctx.Done()
			return nil
		},
	}
	serve.Flags().StringVar(&token, "token", "", "greeting naming this pod")
	serve.Flags().StringVar(&ports, "ports", "", "ports to serve, e.g. TCP/80,UDP/53")
	var targets string
	var timeout time.Duration
	var parallel int
	dial := &cobra.Command{
		Use:   "dial --targets JSON",
		Short: "Probe the targets (a JSON list of {to, protocol, port, expect}); print one JSON result a line, in order",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ts []probe.Target
			if err := json.Unmarshal([]byte(targets), &ts); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--targets: %w", err)}
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			enc := json.NewEncoder(s.out)
			for _, r := range probe.DialAll(ctx, ts, parallel, timeout) {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		},
	}
	dial.Flags().StringVar(&targets, "targets", "[]", "JSON list of targets")
	dial.Flags().DurationVar(&timeout, "timeout", time.Second, "timeout of one probe")
	dial.Flags().IntVar(&parallel, "parallel", 16, "concurrent probes")
	cmd.AddCommand(serve, dial)
	return cmd
}
