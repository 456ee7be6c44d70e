package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

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
	root.AddCommand(newCheckCommand(s), newMatrixCommand(s), newDescribeCommand(s))
	for _, c := range extraCommands(s) {
		root.AddCommand(c)
	}
	return root
}

// extraCommands lets other files add commands without touching this list.
var extraCommands = func(*streams) []*cobra.Command { return nil }

// sourceFlags are the flags that say where the cluster comes from.
type sourceFlags struct {
	files   []string
	verbose bool
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "manifest file, directory (recursive) or - for stdin; repeatable")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "list objects of kinds netfence does not use")
}

// load reads the cluster. Any invalid document is an error (exit 2) and no
// result is produced.
func (f *sourceFlags) load(s *streams) (*policy.Set, error) {
	if len(f.files) == 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("no input: give manifests with -f FILE|DIR|-")}
	}
	objs, err := (&manifest.Loader{Stdin: s.in}).Load(f.files)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("invalid input, nothing analyzed:\n%w", err)}
	}
	if f.verbose {
		for _, sk := range objs.Skipped {
			fmt.Fprintf(s.err, "skipped %s: kind %s (%s) is not used\n", sk.Location, sk.Kind, sk.APIVersion)
		}
	}
	set := policy.NewSet(objs.Cluster())
	if len(set.Rejected) > 0 {
		// Validation already ran on load; this is a bug guard, not a path.
		return nil, &exitError{code: 2, err: fmt.Errorf("policies rejected: %v", set.Rejected)}
	}
	return set, nil
}
