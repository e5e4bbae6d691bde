package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/logs"
	"github.com/certrollout/certrollout/internal/nodeagent"
	"github.com/certrollout/certrollout/internal/version"
)

// NodeAgentOptions holds the flags of `certrollout node-agent`.
type NodeAgentOptions struct {
	KubeFlags
	NodeName       string
	HostRoot       string
	KubeadmDir     string
	KubeletPKIDir  string
	EtcdCertDir    string
	KubeletAddress string
	Interval       time.Duration
	Heartbeat      time.Duration
	ProbeTimeout   time.Duration
	Once           bool
	// HealthProbeBindAddress serves /healthz and /readyz; "0" disables them.
	HealthProbeBindAddress string
	Verbosity              int
	LogFormat              string
	// ControlPlaneRollouts lets the agent do its node's part of ControlPlaneRollouts.
	ControlPlaneRollouts bool
	StateDir             string
	LeaseNamespace       string
	// KubeconfigCopyDirs are the only host folders the agent writes kubeconfig copies into.
	KubeconfigCopyDirs []string

	IOStreams
}

// newNodeAgentCommand is `certrollout node-agent`: its help and its flags.
// Long: the help text and one line per flag; splitting them would only scatter the command's contract.
func newNodeAgentCommand(streams IOStreams) *cobra.Command {
	o := &NodeAgentOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "node-agent",
		Short: "Publish a control-plane node's kubeadm certificates and whether its components serve them",
		Long: `Run on a control-plane node (a DaemonSet with the host mounted read-only at /host) and publish what
is there as the cluster-scoped NodeCertificates named after the node, so that check --control-plane
shows every node's certificates without ssh.

What it reads, under --host-root:
  --kubeadm-dir       kubeadm's PKI (pki/*.crt, pki/etcd/*.crt) and kubeconfigs (admin, super-admin,
                      controller-manager, scheduler, kubelet .conf), and the static pod manifests in
                      manifests/ (which component serves or uses which file, from its flags)
  --kubelet-pki-dir   kubelet-client-current.pem (renewed by the kubelet) and kubelet.crt (self-signed;
                      nobody renews it) or kubelet-server-current.pem (serving certificate rotation)
  --etcd-cert-dir     an external etcd's certificates (kubespray's /etc/ssl/etcd), if given
Private keys are never read beyond recognising them, and never kept or sent.

What it checks: it connects with TLS to every endpoint a manifest names (kube-apiserver, etcd client and
peer, controller-manager 10257 and scheduler 10259 for liveness, the kubelet) and compares the
certificate presented with the file; a component that started (its mirror pod's startedAt) before a
client certificate it does not reload was renewed is ServesOld too.

What it writes: NodeCertificates/<node> (status), owned by the Node, every --interval when something
changed and at least every --heartbeat, so an old status.observedAt means the agent is gone.

With --control-plane-rollouts it also does its node's part of a ControlPlaneRollout when the controller
gives the node its turn (never two nodes at once: it holds the Lease certrollout-control-plane in
--lease-namespace): it checks every API server's /readyz and every etcd member (a degraded control plane
is left untouched), takes the etcd snapshot on the first node, renews the files kubeadm certs renew
renews that are due (old files backed up under --state-dir), restarts by moving their manifests the
components that serve or use old certificates and waits until each serves what is on disk, refreshes
the policy's kubeconfig copies (only inside --kubeconfig-copy-dirs), and reports every step in its
NodeCertificates' status.operation. Its journal in --state-dir puts back any manifest a crash left out
before anything else; etcd snapshots are written only inside --state-dir. This needs the kubeadm folder
and --state-dir writable.

RBAC it needs: create, get and update on nodecertificates and nodecertificates/status (certrollout.io),
get on nodes, list on pods in kube-system; with --control-plane-rollouts also get, list and watch on
controlplanerollouts, get, create and update on the Lease, get on the kubeadm-config ConfigMap.`,
		Example: `  # On a node, as root, once: scan, publish and print a summary
  certrollout node-agent --host-root / --node-name "$(hostname)" --once

  # In a DaemonSet (NODE_NAME from the downward API, the host at /host)
  certrollout node-agent --interval 1m --heartbeat 5m

  # A kubespray node with its etcd certificates apart
  certrollout node-agent --etcd-cert-dir /etc/ssl/etcd

  # Also do the node's part of ControlPlaneRollouts (POD_NAMESPACE from the downward API)
  certrollout node-agent --control-plane-rollouts --state-dir /var/lib/certrollout`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addKubeFlags(cmd, false)
	_ = cmd.Flags().MarkHidden("namespace") // NodeCertificates are cluster-scoped; mirror pods are in kube-system
	f := cmd.Flags()
	f.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "The node this runs on: the NodeCertificates' name and the Node that owns it (default $NODE_NAME; required).")
	f.StringVar(&o.HostRoot, "host-root", nodeagent.DefaultHostRoot, `Where the host's filesystem is mounted; "/" when run on the node itself.`)
	f.StringVar(&o.KubeadmDir, "kubeadm-dir", nodeagent.DefaultKubeadmDir, "kubeadm's folder on the host.")
	f.StringVar(&o.KubeletPKIDir, "kubelet-pki-dir", nodeagent.DefaultKubeletPKIDir, "The kubelet's certificate folder on the host.")
	f.StringVar(&o.EtcdCertDir, "etcd-cert-dir", "", "An external etcd's certificate folder on the host (files named etcd/<file>, renewed by whoever installed etcd).")
	f.StringVar(&o.KubeletAddress, "kubelet-address", "", "host:port of the kubelet's HTTPS endpoint (default: the Node's InternalIP and the port in its status.daemonEndpoints, else 10250).")
	f.DurationVar(&o.Interval, "interval", nodeagent.DefaultInterval, "How often to scan the node.")
	f.DurationVar(&o.Heartbeat, "heartbeat", nodeagent.DefaultHeartbeat, "Write the status at least this often even when nothing changed, so status.observedAt shows the agent is alive.")
	f.DurationVar(&o.ProbeTimeout, "probe-timeout", nodeagent.DefaultProbeTimeout, "How long to wait for one endpoint's TLS handshake.")
	f.BoolVar(&o.Once, "once", false, "Scan, publish once, print a summary and exit.")
	f.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":10358", "Address of /healthz and /readyz (ready once the first status was published); 0 disables them.")
	f.IntVarP(&o.Verbosity, "v", "v", 0, "Log verbosity (0: writes and errors; 1: every scan).")
	f.StringVar(&o.LogFormat, "log-format", logs.FormatText, "Log format: text or json.")
	f.BoolVar(&o.ControlPlaneRollouts, "control-plane-rollouts", false, "Do this node's part of ControlPlaneRollouts when the controller gives it the turn: health checks, the etcd snapshot, renewal, static pod restarts (needs the kubeadm folder and --state-dir writable).")
	f.StringVar(&o.StateDir, "state-dir", nodeagent.DefaultStateDir, "The agent's folder on the host, for --control-plane-rollouts: the journal of manifest moves, staged manifests, certificate backups, etcd snapshots.")
	f.StringSliceVar(&o.KubeconfigCopyDirs, "kubeconfig-copy-dirs", nil, "Host folders the policy's kubeconfig copies may be written into, for --control-plane-rollouts (the folders mounted into the agent; never kubeadm's folder or --state-dir). A copy elsewhere fails the node.")
	f.StringVar(&o.LeaseNamespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the Lease certrollout-control-plane, for --control-plane-rollouts (default $POD_NAMESPACE).")
	return cmd
}

// Validate checks the flags.
func (o *NodeAgentOptions) Validate() error {
	var errs []error
	if strings.TrimSpace(o.NodeName) == "" {
		errs = append(errs, errors.New("--node-name is required (or set NODE_NAME; in a DaemonSet, from the downward API's spec.nodeName)"))
	}
	if err := nodeagent.CheckRoot(o.HostRoot); err != nil {
		errs = append(errs, fmt.Errorf("--host-root %s: %w (mount the host there, or pass --host-root / on the node itself)", o.HostRoot, err))
	}
	for flag, dir := range map[string]string{"--kubeadm-dir": o.KubeadmDir, "--kubelet-pki-dir": o.KubeletPKIDir} {
		if !strings.HasPrefix(dir, "/") {
			errs = append(errs, fmt.Errorf("%s must be an absolute path on the host, not %q", flag, dir))
		}
	}
	if o.EtcdCertDir != "" && !strings.HasPrefix(o.EtcdCertDir, "/") {
		errs = append(errs, fmt.Errorf("--etcd-cert-dir must be an absolute path on the host, not %q", o.EtcdCertDir))
	}
	if o.KubeletAddress != "" {
		if _, _, err := net.SplitHostPort(o.KubeletAddress); err != nil {
			errs = append(errs, fmt.Errorf("--kubelet-address must be host:port: %w", err))
		}
	}
	if o.Interval <= 0 || o.Heartbeat <= 0 || o.ProbeTimeout <= 0 {
		errs = append(errs, errors.New("--interval, --heartbeat and --probe-timeout must be positive"))
	}
	if o.ControlPlaneRollouts {
		if !strings.HasPrefix(o.StateDir, "/") || o.StateDir == "/" {
			errs = append(errs, fmt.Errorf("--state-dir must be an absolute path on the host other than /, not %q", o.StateDir))
		}
		for _, d := range o.KubeconfigCopyDirs {
			clean := filepath.Clean(d)
			if !strings.HasPrefix(d, "/") || clean == "/" || overlaps(clean, filepath.Clean(o.KubeadmDir)) || overlaps(clean, filepath.Clean(o.StateDir)) {
				errs = append(errs, fmt.Errorf("--kubeconfig-copy-dirs: %q must be an absolute host path other than /, neither holding nor inside --kubeadm-dir or --state-dir", d))
			}
		}
		if strings.TrimSpace(o.LeaseNamespace) == "" {
			errs = append(errs, errors.New("--control-plane-rollouts needs --lease-namespace (or POD_NAMESPACE, from the downward API's metadata.namespace)"))
		}
	}
	if !slices.Contains(logs.Formats, o.LogFormat) {
		errs = append(errs, fmt.Errorf("--log-format must be one of %s, not %q", strings.Join(logs.Formats, ", "), o.LogFormat))
	}
	return errors.Join(errs...)
}

// overlaps reports whether one of two clean paths holds the other.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// agent builds the agent from the flags; the client comes from the kube flags.
func (o *NodeAgentOptions) agent() (*nodeagent.Agent, error) {
	logger, err := logs.New(o.ErrOut, o.LogFormat, o.Verbosity)
	if err != nil {
		return nil, err
	}
	if err := logs.RouteKlog(logger, o.Verbosity); err != nil {
		return nil, err
	}
	if err := o.Complete(); err != nil {
		return nil, err
	}
	o.Config().UserAgent = "certrollout-node-agent"
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	a := &nodeagent.Agent{
		Node:           o.NodeName,
		Scan:           nodeagent.ScanOptions{HostRoot: o.HostRoot, KubeadmDir: o.KubeadmDir, KubeletPKIDir: o.KubeletPKIDir, EtcdCertDir: o.EtcdCertDir},
		KubeletAddress: o.KubeletAddress,
		Client:         c,
		ProbeTimeout:   o.ProbeTimeout,
		Interval:       o.Interval,
		Heartbeat:      o.Heartbeat,
		AgentVersion:   version.Get().Version,
		Log:            logger,
	}
	if o.ControlPlaneRollouts {
		a.Rollouts = &nodeagent.RolloutOptions{Namespace: o.LeaseNamespace, StateDir: o.StateDir, KubeconfigCopyDirs: o.KubeconfigCopyDirs}
		a.Rollouts.Ops = a.HostOps()
	}
	return a, nil
}

// Run scans and publishes every --interval until ctx ends, or once with --once.
func (o *NodeAgentOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := o.agent()
	if err != nil {
		return err
	}
	if o.Once {
		st, wrote, err := a.Once(ctx)
		if err != nil {
			return explain(err, o.Config())
		}
		printNodeCertificates(o.Out, o.NodeName, st, wrote)
		return nil
	}
	if o.HealthProbeBindAddress != "0" && o.HealthProbeBindAddress != "" {
		if _, err := serveHealth(ctx, o.HealthProbeBindAddress, a); err != nil {
			return err
		}
	}
	a.Log.Info("Starting certrollout node agent", "node", klog.KRef("", o.NodeName), "hostRoot", o.HostRoot,
		"kubeadmDir", o.KubeadmDir, "interval", o.Interval.String(), "heartbeat", o.Heartbeat.String())
	return a.Run(ctx)
}

// serveHealth serves /healthz (the process answers) and /readyz (it has published) until ctx ends, and
// returns the address it listens on.
func serveHealth(ctx context.Context, addr string, a *nodeagent.Agent) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--health-probe-bind-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not published yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr(), nil
}

// printNodeCertificates is --once's summary: the totals, then one line per component.
func printNodeCertificates(w io.Writer, node string, st api.NodeCertificatesStatus, wrote bool) {
	written := "unchanged, not written"
	if wrote {
		written = "written"
	}
	soonest := "-"
	if st.SoonestExpiry != nil {
		soonest = st.SoonestExpiry.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "NodeCertificates %s (%s): %d files, soonest expiry %s, %d components serving or using old certificates, %d problems\n",
		node, written, st.FileCount, soonest, st.ComponentsServingOld, len(st.Problems))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE\tMESSAGE")
	for _, c := range st.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.State, c.Message)
	}
	_ = tw.Flush()
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem: %s: %s\n", p.Path, p.Message)
	}
}
