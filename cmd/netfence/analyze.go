package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/netfence/netfence/internal/analysis"
)

func newCheckCommand(s *streams) *cobra.Command {
	var src sourceFlags
	var req analysis.CheckRequest
	var output string
	cmd := &cobra.Command{
		Use:   "check -f MANIFESTS --from NS/POD|IP --to NS/POD|IP|DOMAIN[=IP] --port PROTO/PORT|PROTO/NAME",
		Short: "Can one endpoint reach another, and why? Exit 0 allowed, 1 denied, 2 error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.From == "" || req.To == "" || req.Port == "" {
				return &exitError{code: 2, err: fmt.Errorf("--from, --to and --port are required")}
			}
			if output != "text" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("-o %q: must be text or json", output)}
			}
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			res, err := analysis.Check(set, req)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if output == "json" {
				res.Warnings = src.warnings
				if err := res.WriteJSON(s.out); err != nil {
					return err
				}
			} else {
				res.WriteText(s.out)
			}
			if !res.Allowed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	src.register(cmd)
	src.registerStaged(cmd, true)
	cmd.Flags().StringVar(&req.From, "from", "", "source: NAMESPACE/POD or an IP address")
	cmd.Flags().StringVar(&req.To, "to", "", "destination: NAMESPACE/POD, an IP address, or a domain name NAME or NAME=IP (what cluster policies' domainNames match)")
	cmd.Flags().StringVar(&req.Port, "port", "", "PROTOCOL/PORT or PROTOCOL/NAME (a named port of the destination pod)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newMatrixCommand(s *streams) *cobra.Command {
	var src sourceFlags
	var ports []string
	var namespaces []string
	var output string
	cmd := &cobra.Command{
		Use:   "matrix -f MANIFESTS [--ports TCP/80,UDP/53] [-n NS]... [-o table|json|csv|summary]",
		Short: "The truth table over pod pairs and ports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "table", "json", "csv", "summary":
			default:
				return &exitError{code: 2, err: fmt.Errorf("-o %q: must be table, json, csv or summary", output)}
			}
			var opts analysis.Options
			var err error
			if opts.Ports, err = parsePorts(ports); err != nil {
				return &exitError{code: 2, err: err}
			}
			opts.Namespaces = namespaces
			opts.CountsOnly = output == "summary"
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			m, err := analysis.ComputeMatrix(cmd.Context(), set, opts)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				m.Warnings = src.warnings
				return m.WriteJSON(s.out)
			case "csv":
				return m.WriteCSV(s.out)
			case "summary":
				return m.WriteSummary(s.out)
			}
			return m.WriteTable(s.out)
		},
	}
	src.register(cmd)
	src.registerStaged(cmd, true)
	cmd.Flags().StringSliceVar(&ports, "ports", nil, "ports to evaluate, e.g. TCP/80,UDP/53 (default: every port a policy or container port names)")
	cmd.Flags().StringArrayVarP(&namespaces, "namespace", "n", nil, "only pods of this namespace (repeatable); all pods still count as peers")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json, csv or summary")
	return cmd
}

func newDescribeCommand(s *streams) *cobra.Command {
	var src sourceFlags
	cmd := &cobra.Command{
		Use:   "describe -f MANIFESTS (policy|pod) NAMESPACE/NAME | clusterpolicy [cnp/|anp/|banp/]NAME",
		Short: "A policy in words, or a pod's isolation and the policies that apply to it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := strings.ToLower(args[0]), args[1]
			switch kind {
			case "clusterpolicy", "clusterpolicies", "clusternetworkpolicy", "cnp", "adminnetworkpolicy", "anp", "baselineadminnetworkpolicy", "banp":
				set, err := src.load(cmd.Context(), s)
				if err != nil {
					return err
				}
				if prefix := clusterPolicyKind(kind); prefix != "" && !strings.Contains(name, "/") {
					name = prefix + "/" + name
				}
				p, err := analysis.FindClusterPolicy(set, name)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				analysis.DescribeClusterPolicy(s.out, set, p, src.conflicts)
				return nil
			}
			ns, n, ok := strings.Cut(name, "/")
			if !ok {
				ns, n = "default", name
			}
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			switch kind {
			case "policy", "policies", "networkpolicy", "netpol":
				p := analysis.FindPolicy(set, ns, n)
				if p == nil {
					return &exitError{code: 2, err: fmt.Errorf("no NetworkPolicy %s/%s", ns, n)}
				}
				analysis.DescribePolicy(s.out, set, p)
			case "pod", "pods", "po":
				pod := set.Cluster.Pod(ns + "/" + n)
				if pod == nil {
					return &exitError{code: 2, err: fmt.Errorf("no pod %s/%s", ns, n)}
				}
				analysis.DescribePod(s.out, set, pod)
			default:
				return &exitError{code: 2, err: fmt.Errorf("describe %q: must be policy or pod, or clusterpolicy (cnp, anp, banp)", args[0])}
			}
			return nil
		},
	}
	src.register(cmd)
	src.registerStaged(cmd, false)
	return cmd
}

// clusterPolicyKind returns the short kind a describe kind names ("cnp"
// for clusternetworkpolicy), or "" for clusterpolicy, which takes any.
func clusterPolicyKind(kind string) string {
	switch kind {
	case "clusternetworkpolicy", "cnp":
		return "cnp"
	case "adminnetworkpolicy", "anp":
		return "anp"
	case "baselineadminnetworkpolicy", "banp":
		return "banp"
	}
	return ""
}
