package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certrollout/certrollout/internal/version"
)

// VersionOptions holds the flags of `certrollout version`.
type VersionOptions struct {
	Output string

	IOStreams
}

func newVersionCommand(streams IOStreams) *cobra.Command {
	o := &VersionOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the certrollout version",
		Example: `  certrollout version
  certrollout version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: empty for one line, json or yaml.")
	return cmd
}

// Validate checks the flags.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", OutputJSON, OutputYAML:
		return nil
	default:
		return fmt.Errorf("--output must be json or yaml, not %q", o.Output)
	}
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := version.Get()
	if o.Output != "" {
		return (&OutputFlag{Output: o.Output}).printDocument(o.Out, info)
	}
	_, err := fmt.Fprintf(o.Out, "certrollout %s (commit %s, built %s, %s, %s)\n",
		info.Version, orElse(info.GitCommit, "unknown"), orElse(info.BuildDate, "unknown"), info.GoVersion, info.Platform)
	return err
}
