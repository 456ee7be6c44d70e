package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/netfence/netfence/internal/advise"
)

func newAdviseCommand(s *streams) *cobra.Command {
	var src sourceFlags
	var flowsPath, out string
	var namespaces []string
	cmd := &cobra.Command{
		Use:   "advise --flows FILE [-f MANIFESTS | --live] [-n NS]... [-o FILE]",
		Short: "Write the NetworkPolicies that allow exactly the observed flows, and prove them",
		Long: `advise reads flow records (NDJSON: netfence monitor -o json, agent --flow-log,
connectivity --flows) and writes the NetworkPolicies (YAML) that allow them at
the granularity of workloads, with a default deny for each namespace covered;
only what the existing policies do not already allow is generated. It then
runs the analyzer with the existing and generated policies and reports, on
stderr, how many observed flows they allow (all of them, or exit 1) and what
else they allow.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flowsPath == "" {
				return &exitError{code: 2, err: fmt.Errorf("--flows is required")}
			}
			f, err := os.Open(flowsPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			flows, err := advise.ReadFlows(f)
			f.Close()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			set, err := src.load(cmd.Context(), s)
			if err != nil {
				return err
			}
			adv, err := advise.Advise(set.Cluster, flows, advise.Options{Namespaces: namespaces})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			w := s.out
			if out != "" && out != "-" {
				file, err := os.Create(out)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				defer file.Close()
				w = file
			}
			for i, np := range adv.Policies {
				b, err := yaml.Marshal(np)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(w, "---")
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
			}
			fmt.Fprintf(s.err, "advise: %d policies; %d of %d observed flows allowed with them\n", len(adv.Policies), adv.Covered, adv.Flows)
			for _, u := range adv.Unresolved {
				fmt.Fprintf(s.err, "advise: skipped a flow whose endpoints are not in the cluster: %s\n", u)
			}
			switch {
			case adv.AlsoAllowed < 0:
				fmt.Fprintf(s.err, "advise: the cluster is too big to count what else the policies allow\n")
			case adv.AlsoAllowed > 0:
				fmt.Fprintf(s.err, "advise: they also allow %d pod pairs and ports that were not observed (workload granularity), e.g.\n", adv.AlsoAllowed)
				for _, e := range adv.Examples {
					fmt.Fprintf(s.err, "  %s\n", e)
				}
			default:
				fmt.Fprintf(s.err, "advise: they allow nothing else between pods on the observed ports\n")
			}
			if len(adv.Uncovered) > 0 {
				for _, u := range adv.Uncovered {
					fmt.Fprintf(s.err, "advise: NOT allowed (a bug: please report): %s\n", u)
				}
				return &exitError{code: 1}
			}
			return nil
		},
	}
	src.register(cmd)
	cmd.Flags().StringVar(&flowsPath, "flows", "", "flow records, NDJSON")
	cmd.Flags().StringArrayVarP(&namespaces, "namespace", "n", nil, "advise for these namespaces only (repeatable; default: every namespace of a pod in the flows)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the YAML to FILE (default standard output)")
	return cmd
}
