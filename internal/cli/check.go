package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/disk"
)

// Exit codes of `certrollout check`, as monitoring plugins (Nagios, Icinga, Sensu) read them, so the
// command can run from cron or CI as it is.
const (
	checkExitOK       = 0
	checkExitWarning  = 1
	checkExitCritical = 2
	// checkExitUnknown: the check itself could not run (bad flags, no cluster, forbidden).
	checkExitUnknown = 3
)

// checkMemoryLimit is the Go runtime's soft memory limit while check reads a cluster (unless GOMEMLIMIT
// is set).
const checkMemoryLimit = 40 << 20

// Severities of an item and of the whole report.
const (
	SeverityOK       = "OK"
	SeverityWarning  = "Warning"
	SeverityCritical = "Critical"
)

// CheckOptions holds the flags of `certrollout check`.
type CheckOptions struct {
	KubeFlags
	OutputFlag
	// Selector is -l: a label selector on the Secrets and ConfigMaps (and cert-manager Certificates).
	Selector string
	// Files are --files globs (and arguments after them, for globs the shell expanded).
	Files []string
	// Kubeadm is --kubeadm's folder; empty when not asked for.
	Kubeadm string
	// ControlPlane is --control-plane: read every control-plane node's NodeCertificates.
	ControlPlane bool
	// Nodes are --node names: only these nodes' NodeCertificates.
	Nodes []string
	// Cluster reads the cluster's Secrets and ConfigMaps too when disk flags or --control-plane are given.
	Cluster bool
	// Warn and Critical are the thresholds as the user wrote them ("30d", "36h"); empty when unset.
	Warn, Critical string
	// Controller are the controller settings check reads the cluster with (cert-manager's cluster
	// resource namespace): those the controller publishes, under --cluster-resource-namespace if given.
	Controller ControllerFlags
	// ProbeFlags are --probe and --probe-timeout: what consumer pods serve, through port-forward.
	ProbeFlags
	// Now is the clock; tests fix it.
	Now func() time.Time

	warn, critical time.Duration
	selector       labels.Selector
	readCluster    bool
	IOStreams
}

func newCheckCommand(streams IOStreams) *cobra.Command {
	return newCheckCommandFor(&CheckOptions{IOStreams: streams, Now: time.Now})
}

// newCheckCommandFor builds the command around o, so tests can fix o.Now.
//
// Long: the help text, its examples and the flags of one command read best in one piece.
func newCheckCommandFor(o *CheckOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [--files GLOB]... [--kubeadm [DIR]] [--control-plane [--node NAME]...] [--include-cluster]",
		Short: "List certificates soonest-expiring first, in the cluster and on disk",
		Long: `List certificates, soonest-expiring first, with what uses them.

In the cluster (the default): one row per key of each Secret and ConfigMap that holds certificates
(tls.crt, ca.crt, CA bundles), showing the key's earliest-expiring certificate, the cert-manager
Certificate that issues it (revision, Ready, renewal time), how many workloads use it and how many of
their pods are stale (started before that certificate was issued, so they still run on an older one).
cert-manager Certificates whose Secret holds no certificate yet are listed too. Secrets and ConfigMaps
are read through the controller's caches, reduced to certificates as they arrive: private keys are never
kept and Helm release Secrets are filtered out by the API server.

On disk: --files reads PEM and DER files, folders and kubeconfigs (embedded and referenced
certificates); --kubeadm reads a kubeadm control plane (pki/, pki/etcd/, *.conf) and prints the columns
of 'kubeadm certs check-expiration'. With disk flags alone no cluster is contacted (-n, -A and -l then
need --include-cluster); add --include-cluster to check both.

Every control-plane node, without ssh: --control-plane reads the NodeCertificates that the node agent
(chart nodeAgent.enabled) writes on each control-plane node, or only those of --node NAME (repeatable,
or comma-separated). It prints kubeadm's two tables with a NODE column first; SERVING says, per file,
what the components that serve or use it do: "current", "old certificate since 3d (kube-apiserver)" (the
file was renewed and the component still runs on the previous one: restart it), "not running (etcd)",
"unreachable (kube-scheduler)", or "-" when no component uses the file. A third table lists the
components. A node whose agent last reported more than ` + duration.ShortHumanDuration(nodeAgentStaleAfter) + ` ago, and a control-plane Node
without any report, are named on stderr. --control-plane reads only NodeCertificates (and Nodes); add
--include-cluster for Secrets and ConfigMaps as well.

-o kubeadm prints exactly what 'kubeadm certs check-expiration' prints (v1.34), byte for byte, for
--kubeadm DIR or for one node of --control-plane (--node NAME): names sorted as kubeadm sorts them,
kubelet.conf left out, "!MISSING! name" for an absent file, "<invalid>" for an expired one. The default
table differs on purpose: soonest first, with kubelet.conf, "expired 3d ago".

Malformed certificate data and unreadable files are listed under PROBLEM, never skipped.

When a cert-manager CA Issuer or ClusterIssuer signs a listed Certificate, CA CHAIN says whether the leaf
was issued by its issuer's current CA certificate (Current, IssuedUnderPreviousCA, NotSignedByCurrentCA,
NotIssued, Unknown); the leaves that were not are listed below the table with the command that re-issues
them. -o wide adds the CA issuers with their CA and leaf counts.

Exit codes, for cron jobs and CI:
  0  nothing expires within --warn or --critical
  1  a certificate expires within --warn, a CA issuer's leaf was not issued by its current CA, a
     control-plane component still serves or uses the certificate a file held before its renewal, or a
     control-plane node's agent report is stale or missing
  2  a certificate expires within --critical or has expired, or some certificate data could not be
     read or parsed
  3  the check could not run (bad flags, cluster unreachable, access forbidden, no kubeadm folder,
     NodeCertificates not served)
With a non-zero code, one line on stderr names the soonest offender and why. Durations take a d
(days) suffix as well as Go units: 30d, 36h, 1d12h.

--probe checks what pods serve rather than when they started: for each workload using certificates
that has TLS ports (annotation certrollout.io/probe: "8443,https" on the workload or its pod
template, or container ports named https or *tls*), each of its pods is reached through the API
server's port-forward (RBAC: create pods/portforward), a TLS handshake is made with the certificate's
first DNS name as SNI, and a table shows per pod and port the served fingerprint (12 hex digits; all 64
in -o json/yaml) against the expected ones, with a verdict: current, OLD, or "not probed: why". A few
pods are probed at a time, each port within --probe-timeout; a failed probe is reported on its row and
never fails the check.

-o json and -o yaml print a CheckReport (apiVersion certrollout.io/v1alpha1), documented in
docs/check.md; -o html one self-contained page: an expiry timeline coloured by time left and the tables.`,
		Example: `  # Certificates of the current namespace, soonest first
  certrollout check

  # Every namespace, only Secrets labelled app=web, with serials, fingerprints and consumers
  certrollout check -A -l app=web -o wide

  # A kubeadm control plane, as kubeadm prints it (run as root: the kubeconfigs are private)
  sudo certrollout check --kubeadm

  # Every control-plane node's kubeadm certificates, and which components still run on old ones
  certrollout check --control-plane

  # Two nodes, as JSON
  certrollout check --control-plane --node cp-1,cp-2 -o json

  # What 'kubeadm certs check-expiration' would print on cp-2, without logging in to it
  certrollout check --control-plane --node cp-2 -o kubeadm

  # Which certificate each pod really serves on its TLS ports (through port-forward)
  certrollout check --probe

  # The same as JSON, with full fingerprints and a longer timeout for slow pods
  certrollout check --probe --probe-timeout 10s -o json

  # From cron: exit 1 within 30 days, 2 within 7 days
  certrollout check -A --warn 30d --critical 7d -o json > /var/lib/certs/report.json

  # Files on this machine and the cluster, in one report
  certrollout check --files '/etc/ssl/private/*.pem' --files ~/.kube/config --include-cluster

  # A report to open in a browser: timeline, consumers, stale pods, CA chains
  certrollout check -A -o html > certificates.html`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return &exitError{code: checkExitUnknown, err: err}
			}
			if err := o.Validate(); err != nil {
				return &exitError{code: checkExitUnknown, err: err}
			}
			return o.Run(cmd.Context())
		},
	}
	// A mistyped flag means the check did not run: that is "unknown", not "warning".
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: checkExitUnknown, err: err} })
	o.addKubeFlags(cmd, true)
	o.kubeadm = true
	o.addReportOutputFlag(cmd)
	cmd.Flags().Lookup("output").Usage = "Output format: table, wide (more columns), json, yaml, html (one self-contained page; redirect it to a file) or kubeadm (exactly what 'kubeadm certs check-expiration' prints; with --kubeadm, or --control-plane and one --node)."
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Label selector on the Secrets, ConfigMaps and cert-manager Certificates (e.g. app=web,tier!=dev).")
	f.StringArrayVar(&o.Files, "files", nil, "PEM or DER certificate files, folders or kubeconfigs; a shell glob (quote it). Repeatable.")
	f.StringVar(&o.Kubeadm, "kubeadm", "", "Check a kubeadm control plane's certificates and kubeconfigs in this folder (--kubeadm alone: "+disk.DefaultKubeadmDir+"; another folder: --kubeadm DIR or --kubeadm=DIR).")
	f.Lookup("kubeadm").NoOptDefVal = disk.DefaultKubeadmDir
	f.BoolVar(&o.ControlPlane, "control-plane", false, "Check every control-plane node's kubeadm certificates, as the node agent reports them (NodeCertificates), with what each component serves.")
	f.StringSliceVar(&o.Nodes, "node", nil, "With --control-plane, only this node (repeatable, or comma-separated).")
	f.BoolVar(&o.Cluster, "include-cluster", false, "With --files, --kubeadm or --control-plane, check the cluster's Secrets and ConfigMaps too (disk flags alone contact no cluster).")
	f.StringVar(&o.Warn, "warn", "", "Exit 1 when a certificate expires within this duration (e.g. 30d, 36h).")
	f.StringVar(&o.Critical, "critical", "", "Exit 2 when a certificate expires within this duration (e.g. 7d). Expired certificates always count as critical.")
	o.Controller.addControllerFlags(cmd, "cluster-resource-namespace")
	o.addProbeFlags(cmd)
	return cmd
}

// Complete decides what to read and parses the flags that need parsing. It loads the kubeconfig only
// when the cluster is read, so disk checks work on machines without one.
func (o *CheckOptions) Complete(cmd *cobra.Command, args []string) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	args = o.takeKubeadmDir(cmd, args)
	if len(args) > 0 {
		switch {
		case len(o.Files) > 0:
			// `--files /etc/ssl/*.pem` unquoted: the shell expanded the glob into arguments.
			o.Files = append(o.Files, args...)
		case o.Kubeadm != "":
			return fmt.Errorf("unexpected argument %q: --kubeadm takes a folder (--kubeadm DIR or --kubeadm=DIR), and %s is not one", args[0], args[0])
		default:
			return fmt.Errorf("unexpected argument %q: check takes no arguments; files are read with --files", args[0])
		}
	}
	onDisk := len(o.Files) > 0 || o.Kubeadm != ""
	if (onDisk || o.ControlPlane) && !o.Cluster {
		// Silently ignoring a namespace would read as "nothing there"; say what to add instead.
		for _, name := range []string{"namespace", "all-namespaces", "selector"} {
			if cmd != nil && cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s selects what to read from the cluster, and with --files, --kubeadm or --control-plane the cluster's Secrets and ConfigMaps are read only with --include-cluster: add --include-cluster", name)
			}
		}
	}
	o.readCluster = (!onDisk && !o.ControlPlane) || o.Cluster
	var nodes []string
	for _, n := range o.Nodes {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	o.Nodes = nodes
	// Messages quote the thresholds as given: "within --warn 30d".
	o.Warn, o.Critical = strings.TrimSpace(o.Warn), strings.TrimSpace(o.Critical)
	var err error
	if o.warn, err = parseThreshold("warn", o.Warn); err != nil {
		return err
	}
	if o.critical, err = parseThreshold("critical", o.Critical); err != nil {
		return err
	}
	if o.selector, err = labels.Parse(o.Selector); err != nil {
		return fmt.Errorf("invalid --selector %q: %w", o.Selector, err)
	}
	if o.readCluster || o.ControlPlane {
		return o.KubeFlags.Complete()
	}
	return nil
}

// takeKubeadmDir lets `--kubeadm DIR` work as `--kubeadm=DIR` does. --kubeadm alone means the default
// folder, so the flag parser leaves DIR among the arguments; when --kubeadm was given without a value, the
// first argument that is a folder is taken as its value (files given to --files are never folders).
func (o *CheckOptions) takeKubeadmDir(cmd *cobra.Command, args []string) []string {
	if cmd == nil || !cmd.Flags().Changed("kubeadm") || o.Kubeadm != disk.DefaultKubeadmDir {
		return args
	}
	for i, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			o.Kubeadm = a
			return append(append([]string{}, args[:i]...), args[i+1:]...)
		}
	}
	return args
}

// Validate checks flags against each other.
func (o *CheckOptions) Validate() error {
	if err := o.validateOutput(); err != nil {
		return err
	}
	if len(o.Nodes) > 0 && !o.ControlPlane {
		return errors.New("--node selects control-plane nodes: add --control-plane")
	}
	if o.Output == OutputKubeadm {
		switch {
		case len(o.Files) > 0 || o.Cluster || (o.Kubeadm != "") == o.ControlPlane:
			return errors.New("-o kubeadm prints what 'kubeadm certs check-expiration' prints for one control plane: use it with --kubeadm [DIR] or with --control-plane --node NAME, and without --files or --include-cluster")
		case len(o.Nodes) > 1:
			return fmt.Errorf("-o kubeadm prints one node, as kubeadm does, and --node names %d (%s): run it once per node, or drop -o kubeadm for every node in one table", len(o.Nodes), strings.Join(o.Nodes, ", "))
		}
	}
	if o.Probe && !o.readCluster {
		return errors.New("--probe asks the cluster's pods what they serve: it needs the cluster, so add --include-cluster (or drop --files, --kubeadm and --control-plane)")
	}
	if o.ProbeTimeout <= 0 && o.Probe {
		return errors.New("--probe-timeout must be positive, e.g. 3s")
	}
	if o.warn > 0 && o.critical > 0 && o.critical > o.warn {
		return fmt.Errorf("--critical %s is longer than --warn %s: a certificate would be critical before it is a warning; swap them", o.Critical, o.Warn)
	}
	return nil
}

// Run reads the sources, prints the report and returns an exitError when something is due.
func (o *CheckOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// kubeadm computes residual times from the clock itself, to the nanosecond, then truncates to seconds:
	// -o kubeadm does the same (a truncated clock would print 365d where kubeadm prints 364d).
	clock := o.Now().UTC()
	now := clock.Truncate(time.Second)
	r := &checkResult{now: now}
	if o.Kubeadm != "" {
		found := disk.Kubeadm(o.Kubeadm)
		if len(found.Certificates) == 0 && len(found.Problems) == 1 && found.Problems[0].Path == o.Kubeadm {
			// Not a kubeadm folder at all (missing, or none of kubeadm's files): the check did not run,
			// which is not the same as a control plane with a broken certificate.
			return &exitError{code: checkExitUnknown, err: fmt.Errorf("--kubeadm %s: %s (pass --kubeadm DIR for a control plane kept elsewhere)", o.Kubeadm, found.Problems[0].Message)}
		}
		r.kubeadm = kubeadmItems(o.Kubeadm, found)
	}
	if len(o.Files) > 0 {
		r.files = checkFileItems(disk.Files(o.Files))
	}
	if o.ControlPlane {
		s, err := o.controlPlaneItems(ctx, now)
		if err != nil {
			return &exitError{code: checkExitUnknown, err: err}
		}
		r.controlPlane = s
		for _, w := range nodeWarnings(s.nodes) {
			fmt.Fprintln(o.ErrOut, "Warning: "+w+".")
		}
		if s.caIncomplete != "" {
			fmt.Fprintf(o.ErrOut, "Note: %s.\n", s.caIncomplete)
		}
	}
	if o.readCluster {
		if os.Getenv("GOMEMLIMIT") == "" {
			// Filling the caches decodes every Secret the API server sends (large Opaque ones included)
			// and keeps only certificate blocks: the live heap stays near 20 MB at 20,000 Secrets, but
			// with the default GOGC the garbage doubles it before each collection. A soft limit makes the
			// GC collect sooner: in `make bench-check`, 85 → 65 MB peak RSS for about 0.1 s more. It is
			// soft: past it the runtime caps GC at half the CPU, so a bigger cluster is slower, not killed.
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(checkMemoryLimit))
		}
		c, err := o.clusterItems(ctx, now)
		if err != nil {
			return &exitError{code: checkExitUnknown, err: err}
		}
		r.cluster = c
	}
	report := r.report(o)
	var err error
	switch {
	case o.structured():
		err = o.printDocument(o.Out, report)
	case o.page():
		err = o.printHTML(report)
	case o.Output == OutputKubeadm && r.controlPlane != nil:
		if err := o.printControlPlaneKubeadm(r.controlPlane, clock); err != nil {
			return &exitError{code: checkExitUnknown, err: err}
		}
	case o.Output == OutputKubeadm:
		err = printKubeadmExpiration(o.Out, kubeadmExpirationFromItems(r.kubeadm.items), clock)
	default:
		err = o.printTables(r)
	}
	if err != nil {
		return err
	}
	code := map[string]int{SeverityOK: checkExitOK, SeverityWarning: checkExitWarning, SeverityCritical: checkExitCritical}[report.Status]
	if code == checkExitOK {
		return nil
	}
	return &exitError{code: code, err: errors.New(report.Reason), verdict: true}
}

// addClusterResourceNamespaceFlag registers --cluster-resource-namespace, which must match cert-manager's
// own flag for ClusterIssuers' CA Secrets to be found.
func addClusterResourceNamespaceFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "cluster-resource-namespace", controller.DefaultClusterResourceNamespace,
		"cert-manager's --cluster-resource-namespace: where the CA Secrets of CA ClusterIssuers are.")
}

// parseThreshold reads a duration with an optional leading number of days ("30d", "1d12h", "36h",
// "1.5d"): certificates live for days, and Go's durations stop at hours.
func parseThreshold(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	bad := func() error {
		return fmt.Errorf("invalid --%s %q: want a duration such as 30d, 36h or 1d12h", flag, s)
	}
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		if !isDecimal(s[:i]) {
			return 0, bad()
		}
		days, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, bad()
		}
		if days > 100*365 {
			return 0, fmt.Errorf("invalid --%s %q: more than a century", flag, s)
		}
		d = time.Duration(days * float64(24*time.Hour))
		rest = s[i+1:]
	}
	if rest != "" {
		if strings.ContainsAny(rest[:1], "+-") {
			return 0, bad() // "1d-2h" is a typo more often than an intention
		}
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, bad()
		}
		d += more
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid --%s %q: must not be negative", flag, s)
	}
	return d, nil
}

// isDecimal reports whether s is a plain decimal number (digits with at most one dot).
func isDecimal(s string) bool {
	if s == "" || s == "." {
		return false
	}
	dot := false
	for _, r := range s {
		switch {
		case r == '.' && !dot:
			dot = true
		case r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}
