package main

import (
	"github.com/spf13/cobra"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/policy"
)

// registerStaged adds --with-staged to a command that loads through f;
// warn makes load warn about staged policies left unenforced.
func (f *sourceFlags) registerStaged(cmd *cobra.Command, warn bool) {
	f.warnStaged = warn
	cmd.Flags().BoolVar(&f.withStaged, "with-staged", false, "evaluate policies annotated netfence.io/mode: staged as enforced (by default they are not, as on the nodes)")
}

// staged returns the set to analyze: with its staged policies enforced
// when --with-staged is given; else set, and the warnings about staged
// policies (when the command warns) and unknown modes added to
// f.warnings.
func (f *sourceFlags) staged(set *policy.Set) *policy.Set {
	f.warnings = append(f.warnings, analysis.UnknownModeWarnings(set.Cluster)...)
	if f.withStaged {
		return set.WithStaged()
	}
	if w := analysis.StagedWarning(set); w != "" && f.warnStaged {
		f.warnings = append(f.warnings, w)
	}
	return set
}
