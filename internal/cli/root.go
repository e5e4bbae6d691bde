// Package cli builds the certrollout command tree. Each subcommand keeps its flags in an Options struct
// with Complete, Validate and Run, so flag parsing stays apart from the work and the work can be tested
// without cobra.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
)

// IOStreams are where a command reads and writes; tests swap them for buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// exitError carries a specific exit code out of a command (for example `check --warn`).
type exitError struct {
	code int
	err  error
	// verdict marks a result rather than a failure (`check`'s "CRITICAL: ..."): printed as it is, without
	// the "Error: " prefix.
	verdict bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Execute runs the command line args (args[0] is the program name) and returns the process exit code.
func Execute(args []string) int {
	streams := IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	root := NewRootCommand(streams, commandName(args[0]))
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctrl.SetupSignalHandler())
	if err == nil {
		return 0
	}
	return reportError(streams.ErrOut, err)
}

// reportError prints a command's error to w and returns the exit code (exitCode): a verdict as it is,
// anything else after "Error: ".
func reportError(w io.Writer, err error) int {
	var ee *exitError
	if errors.As(err, &ee) && ee.verdict {
		fmt.Fprintln(w, err)
		return ee.code
	}
	fmt.Fprintf(w, "Error: %v\n", err)
	return exitCode(err)
}

// commandName is how the user invoked us: kubectl runs plugins as kubectl-<name>, and help text should
// then show `kubectl certrollout`.
func commandName(argv0 string) string {
	if strings.HasPrefix(filepath.Base(argv0), "kubectl-") {
		return "kubectl certrollout"
	}
	return "certrollout"
}

// NewRootCommand returns the certrollout command tree.
func NewRootCommand(streams IOStreams, name string) *cobra.Command {
	root := &cobra.Command{
		Use:         "certrollout",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: name},
		Short:       "Restart the workloads that use a renewed certificate, safely",
		Long: `certrollout makes certificate renewal safe for the programs that use the certificates.

Certificates renew themselves (cert-manager, kubeadm, platform CAs); the processes that loaded them do
not, and keep serving the old certificate until it expires. certrollout finds every workload that uses a
certificate, knows which pods still run on an old one, and restarts them: once per renewal, rate-limited,
in maintenance windows, in order, and only as far as health checks allow.

Exit codes, the same for every command (check adds its own 1 and 2, for monitoring: see check --help):
  0  done; with --wait or --watch, everything followed succeeded
  1  the operation failed (a rollout or an issuance failed, access forbidden, an object not found)
     or the input was wrong (flags, arguments)
  2  --wait or --watch: --timeout passed first (the work goes on in the cluster)
  3  the cluster could not be reached or refused the credentials: connection refused, DNS, TLS,
     401 Unauthorized, no usable kubeconfig (check: the check could not run at all)`,
		Example: `  # What uses certificates here, and which pods run on old ones
  certrollout plan -A --stale

  # Restart a Deployment through its policy and wait; branch on the exit code
  certrollout restart deploy/web --wait --timeout 10m; echo "exit $?"

  # What would be created, as the API server's admission sees it, without storing anything
  certrollout restart --secret api-tls --dry-run=server -o yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	root.AddCommand(
		newCheckCommand(streams), newPlanCommand(streams), newRestartCommand(streams), newStatusCommand(streams),
		newRenewCommand(streams), newHoldCommand(streams), newReleaseCommand(streams), newControllerCommand(streams), newVersionCommand(streams),
		newNodeAgentCommand(streams),
	)
	return root
}
