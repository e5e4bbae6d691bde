package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Flags shared by the commands, spelled the same everywhere (docs/cli.md): --wait blocks until what a
// command started is done, -w/--watch follows what exists, --dry-run=none|client|server as kubectl.

// Values of --dry-run.
const (
	DryRunNone   = "none"
	DryRunClient = "client"
	DryRunServer = "server"
)

// DryRunFlag is --dry-run on the commands that write.
type DryRunFlag struct {
	// DryRun is none, client or server; bare --dry-run means client, as in kubectl.
	DryRun string
}

// addDryRunFlag registers --dry-run; writes says what the command would write, for --help.
func (d *DryRunFlag) addDryRunFlag(cmd *cobra.Command, writes string) {
	f := cmd.Flags()
	f.StringVar(&d.DryRun, "dry-run", DryRunNone, fmt.Sprintf(
		"none: write %s. client: read the cluster to plan and print what would be written, writing nothing. server: send every write with dryRun=All, so the API server validates it and runs admission, and store nothing. --dry-run alone means client.", writes))
	f.Lookup("dry-run").NoOptDefVal = DryRunClient
	_ = cmd.RegisterFlagCompletionFunc("dry-run", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{DryRunNone, DryRunClient, DryRunServer}, cobra.ShellCompDirectiveNoFileComp
	})
}

// validateDryRun checks --dry-run.
func (d *DryRunFlag) validateDryRun() error {
	switch d.DryRun {
	case DryRunNone, DryRunClient, DryRunServer:
		return nil
	case "":
		d.DryRun = DryRunNone
		return nil
	}
	return fmt.Errorf(`--dry-run must be "none", "client" or "server", not %q`, d.DryRun)
}

// dryRun reports whether nothing is stored (client or server).
func (d *DryRunFlag) dryRun() bool { return d.DryRun == DryRunClient || d.DryRun == DryRunServer }

// clientDryRun reports whether writes are not even sent.
func (d *DryRunFlag) clientDryRun() bool { return d.DryRun == DryRunClient }

// writer is the client writes go through: under --dry-run=server every write carries dryRun=All (the
// controller-runtime wrapper adds it to creates, patches and status writes alike).
func (d *DryRunFlag) writer(c client.Client) client.Client {
	if d.DryRun == DryRunServer {
		return client.NewDryRunClient(c)
	}
	return c
}

// dryRunSuffix is what kubectl appends to the line of an object not stored: " (dry run)" or
// " (server dry run)".
func (d *DryRunFlag) dryRunSuffix() string {
	switch d.DryRun {
	case DryRunClient:
		return " (dry run)"
	case DryRunServer:
		return " (server dry run)"
	}
	return ""
}

// addWaitFlag registers --wait. -w meant --wait on restart and renew once, and was documented: it keeps
// working with a deprecation notice, since -w means --watch everywhere else.
func addWaitFlag(cmd *cobra.Command, v *bool, usage string) {
	f := cmd.Flags()
	f.BoolVarP(v, "wait", "w", false, usage)
	_ = f.MarkShorthandDeprecated("wait", "use --wait (spelled out); -w will mean --watch, as in kubectl")
}
