package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

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
	case "", "json", "yaml":
		return nil
	default:
		return fmt.Errorf("--output must be json or yaml, not %q", o.Output)
	}
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := version.Get()
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(o.Out, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(info)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	default:
		_, err := fmt.Fprintf(o.Out, "certrollout %s (commit %s, built %s, %s, %s)\n",
			info.Version, orUnknown(info.GitCommit), orUnknown(info.BuildDate), info.GoVersion, info.Platform)
		return err
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
