package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the command is built (issue 5); replaced, not extended.
func newCheckCommand(_ IOStreams) *cobra.Command {
	return &cobra.Command{Use: "check", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("not built yet") }}
}
