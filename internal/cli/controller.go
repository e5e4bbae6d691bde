package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/logs"
	"github.com/certrollout/certrollout/internal/probe"
)

// ControllerOptions holds the flags of `certrollout controller`.
type ControllerOptions struct {
	Kubeconfig string
	Context    string
	Namespaces []string
	Verbosity  int
	LogFormat  string
	QPS        float32
	Burst      int

	controller.ManagerOptions
	IOStreams
}

func newControllerCommand(streams IOStreams) *cobra.Command {
	o := &ControllerOptions{IOStreams: streams}
	o.Options = controller.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the controller that restarts workloads when their certificates change",
		Long: `Run the certrollout controller.

It watches Secrets and ConfigMaps that hold certificates and the Deployments, StatefulSets, DaemonSets and
bare Pods that use them. When the certificates a workload uses change, it rolls the workload once: the
value it writes into the pod template is derived from the certificates, so a controller restart, a resync
or a Secret rewritten with the same certificates never causes a restart.

A workload takes part when annotated certrollout.io/enabled=true, or under --auto unless annotated
certrollout.io/enabled=false. Secrets a workload uses by other means can be named in
certrollout.io/secrets="a,b".

Workloads a RolloutPolicy selects restart only through CertRollouts that follow it: inside its
maintenance windows (unless the certificate they run on expires within its expiryDeadline), after scaling
its quiesce list to zero and before restoring it, in order, each healthy before the next.
--max-concurrent-rollouts bounds how many CertRollouts run at once across the cluster, and
--max-concurrent-rollouts-per-namespace how many of those one namespace may hold, so no tenant starves
the others; a rollout whose certificate expires within its policy's expiryDeadline never waits for other
namespaces' rollouts.

When a cert-manager CA issuer (Issuer or ClusterIssuer with spec.ca) annotated certrollout.io/cascade=true,
or any CA issuer under --ca-cascade, has leaf Certificates issued under another CA certificate than its
current one, the controller creates a CertRollout (trigger CARotated) that rolls the workloads trusting the
CA first, then re-issues each such leaf once; the workloads using a leaf wait for it and roll once.`,
		Example: `  # Out of cluster, against the current kubeconfig context, without leader election
  certrollout controller --leader-elect=false --leader-election-namespace default

  # Every workload in two namespaces, restarts at most every 30 minutes per workload
  certrollout controller --auto --namespaces team-a,team-b --min-restart-interval 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config).")
	f.StringVar(&o.Context, "context", "", "The kubeconfig context to use.")
	f.StringSliceVar(&o.Namespaces, "namespaces", nil, "Only watch and restart in these namespaces (comma-separated; default all).")
	f.BoolVar(&o.Auto, "auto", false, "Make every workload eligible; opt out with the annotation certrollout.io/enabled=false.")
	f.DurationVar(&o.SettlePeriod, "settle-period", o.SettlePeriod, "Wait this long after a certificate changes, so related changes roll a workload once.")
	f.DurationVar(&o.MinRestartInterval, "min-restart-interval", o.MinRestartInterval, "Never restart one workload more often than this.")
	f.Float64Var(&o.RestartRate, "restart-rate", o.RestartRate, "Restarts per second across the cluster (token bucket rate).")
	f.IntVar(&o.RestartBurst, "restart-burst", o.RestartBurst, "Restarts that may start at once across the cluster (token bucket size).")
	f.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "Workers per workload kind.")
	f.IntVar(&o.MaxConcurrentRollouts, "max-concurrent-rollouts", o.MaxConcurrentRollouts, "CertRollouts quiescing, restarting or restoring at once across the cluster (0: no limit).")
	f.IntVar(&o.MaxRestartsPerDay, "max-restarts-per-day", o.MaxRestartsPerDay, "Circuit breaker: restarts of one workload within 24 hours for changed certificates, after which it is blocked (Event RestartBudgetExhausted) until the oldest is a day old (0: no limit).")
	f.IntVar(&o.MaxConcurrentRolloutsPerNamespace, "max-concurrent-rollouts-per-namespace", o.MaxConcurrentRolloutsPerNamespace, "Of those, how many one namespace may hold at once (0: no limit).")
	f.BoolVar(&o.CACascade, "ca-cascade", false, "Re-issue the leaves of every cert-manager CA issuer when its CA certificate changes, not only of issuers annotated certrollout.io/cascade=true.")
	f.BoolVar(&o.Probes, "probe", true, "Connect to the TLS ports workloads declare (annotation certrollout.io/probe, or container ports named https or *tls*) and judge their pods by the certificate they serve: a pod that reloaded its certificate by itself is not restarted, a restart is verified. Needs network access to pod IPs; without it pods are judged by their start time.")
	f.DurationVar(&o.ProbeTimeout, "probe-timeout", probe.DefaultTimeout, "How long one probe (connect and TLS handshake) may take.")
	f.DurationVar(&o.ProbeGrace, "probe-grace", o.ProbeGrace, "After a certificate changes, how long a pod probed serving the old one is given to pick the new one up (the kubelet refreshes mounted files on its next sync) before it counts as stale or its reload hook is called.")
	f.BoolVar(&o.TrustSync, "trust-sync", false, "Write the targets of TrustBundleSyncs (a key of a Secret or ConfigMap kept equal to CA certificates). Grant the controller update on each target by name (Helm: trustSync.targets); without this flag, syncs report SyncDisabled.")
	addClusterResourceNamespaceFlag(cmd, &o.ClusterResourceNamespace)
	f.BoolVar(&o.LeaderElection, "leader-elect", true, "Elect a leader through a Lease so only one replica acts.")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the controller's own, in cluster).")
	f.StringVar(&o.SettingsNamespace, "settings-namespace", "", "Namespace of the ConfigMap "+controller.SettingsConfigMap+" in which the leader publishes the settings that change its decisions, read by certrollout plan and check (default: the leader election namespace, else the controller's own; - disables it).")
	f.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a replica waits after the leader's last renewal before it takes over.")
	f.DurationVar(&o.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps retrying a renewal before it gives up leading (less than the lease duration).")
	f.DurationVar(&o.RetryPeriod, "leader-election-retry-period", 2*time.Second, "How often replicas try to acquire or renew the lease.")
	f.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	f.BoolVar(&o.MetricsSecure, "metrics-secure", false, "Serve /metrics over HTTPS, only to callers whose bearer token the API server authenticates and allows GET on /metrics (ClusterRole certrollout-metrics-reader).")
	f.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "With --metrics-secure: a directory holding the serving certificate as tls.crt and tls.key (default: a self-signed one generated at start).")
	f.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; 0 disables them.")
	f.Float32Var(&o.QPS, "kube-api-qps", 50, "Requests per second to the API server (client-side limit).")
	f.IntVar(&o.Burst, "kube-api-burst", 100, "Burst of requests to the API server (client-side limit).")
	f.StringVar(&o.PprofBindAddress, "pprof-bind-address", "", "Address of Go's /debug/pprof endpoints, for profiling (default off).")
	f.IntVarP(&o.Verbosity, "v", "v", 0, "Log verbosity (0: actions and errors; 1: decisions; 4: debug).")
	f.StringVar(&o.LogFormat, "log-format", logs.FormatText, "Log format: text (klog's key=value lines) or json (one object per line with the keys of docs/logging.md, for log pipelines).")
	return cmd
}

// Validate checks the flags.
func (o *ControllerOptions) Validate() error {
	var errs []error
	if o.SettlePeriod < 0 {
		errs = append(errs, errors.New("--settle-period must not be negative"))
	}
	if o.MinRestartInterval < 0 {
		errs = append(errs, errors.New("--min-restart-interval must not be negative"))
	}
	if o.RestartRate <= 0 {
		errs = append(errs, errors.New("--restart-rate must be positive"))
	}
	if o.QPS <= 0 || o.Burst < 1 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	if o.MaxConcurrentRollouts < 0 {
		errs = append(errs, errors.New("--max-concurrent-rollouts must not be negative (0 means no limit)"))
	}
	if o.MaxRestartsPerDay < 0 {
		errs = append(errs, errors.New("--max-restarts-per-day must not be negative (0 means no limit)"))
	}
	if o.MaxConcurrentRolloutsPerNamespace < 0 {
		errs = append(errs, errors.New("--max-concurrent-rollouts-per-namespace must not be negative (0 means no limit)"))
	}
	if o.LeaderElection && (o.LeaseDuration <= o.RenewDeadline || o.RenewDeadline <= o.RetryPeriod || o.RetryPeriod <= 0) {
		errs = append(errs, fmt.Errorf("leader election needs --leader-election-lease-duration (%s) > --leader-election-renew-deadline (%s) > --leader-election-retry-period (%s) > 0",
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod))
	}
	if !slices.Contains(logs.Formats, o.LogFormat) {
		errs = append(errs, fmt.Errorf("--log-format must be one of %s, not %q", strings.Join(logs.Formats, ", "), o.LogFormat))
	}
	if o.MetricsCertDir != "" && !o.MetricsSecure {
		errs = append(errs, errors.New("--metrics-cert-dir needs --metrics-secure (plain HTTP serves no certificate)"))
	}
	if o.MetricsCertDir != "" {
		// controller-runtime silently falls back to a self-signed certificate when these are missing.
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(o.MetricsCertDir, f)); err != nil {
				errs = append(errs, fmt.Errorf("--metrics-cert-dir: %w", err))
			}
		}
	}
	if o.RestartBurst < 1 {
		errs = append(errs, errors.New("--restart-burst must be at least 1"))
	}
	for _, ns := range o.Namespaces {
		if strings.TrimSpace(ns) == "" {
			errs = append(errs, errors.New("--namespaces has an empty name"))
		}
	}
	return errors.Join(errs...)
}

// defaultGCPercent is the controller's GOGC unless the environment sets one. certrollout idles between
// renewals and does its heavy lifting once, while its caches fill at start-up; Go's default (100) lets the
// heap grow to twice the live data then, which for the cache of a large cluster is tens of megabytes kept
// for nothing. At 50 the start-up peak is about a fifth lower (measured in make bench), for a little more
// garbage collection during the initial sync only.
const defaultGCPercent = 50

// collectGarbageEarly applies defaultGCPercent when GOGC is not set, and returns the percent in effect.
func collectGarbageEarly() int {
	if v := os.Getenv("GOGC"); v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// logger writes to ErrOut in --log-format at --v, and makes klog (client-go's leader election,
// reflectors) write through it at the same verbosity, so no line of another format reaches the output.
func (o *ControllerOptions) logger() (logr.Logger, error) {
	logger, err := logs.New(o.ErrOut, o.LogFormat, o.Verbosity)
	if err != nil {
		return logger, err
	}
	return logger, logs.RouteKlog(logger, o.Verbosity)
}

// Run starts the controller and blocks until it is stopped (SIGTERM, SIGINT).
func (o *ControllerOptions) Run(cmd *cobra.Command) error {
	logger, err := o.logger()
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)
	gcPercent := collectGarbageEarly()
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "certrollout-controller"
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	controller.CountRequests(cfg)
	o.ManagerOptions.Namespaces = o.Namespaces
	o.Logger = logger // its own, whatever the process set globally before
	mgr, err := controller.NewManager(cfg, o.ManagerOptions)
	if err != nil {
		return err
	}
	logger.Info("Starting certrollout controller", "auto", o.Auto, "settlePeriod", o.SettlePeriod.String(),
		"minRestartInterval", o.MinRestartInterval.String(), "restartRate", o.RestartRate, "restartBurst", o.RestartBurst,
		"namespaces", o.Namespaces, "leaderElection", o.LeaderElection, "metricsSecure", o.MetricsSecure, "gcPercent", gcPercent)
	ctx := cmd.Context()
	if ctx == nil {
		ctx = ctrl.SetupSignalHandler()
	}
	return mgr.Start(ctx)
}
