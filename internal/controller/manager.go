// Package controller runs certrollout's controllers on controller-runtime: one reconciler per workload
// kind that restarts the workload when the certificates it uses change, following package decide. It only
// wires; discovery is in consumers and inventory, decisions in decide, governor, orchestrate and cascade,
// writes in restart.
package controller

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-logr/logr"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/probe"
)

// Options tune the restart behaviour.
type Options struct {
	// Namespaces limits what the controller watches and touches; empty means all.
	Namespaces []string
	// Auto makes every workload eligible unless annotated certrollout.io/enabled=false.
	Auto bool
	// SettlePeriod coalesces changes to several certificates of one workload into one rollout.
	SettlePeriod time.Duration
	// MinRestartInterval is the per-workload cooldown.
	MinRestartInterval time.Duration
	// RestartRate (per second) and RestartBurst bound restarts across the cluster.
	RestartRate  float64
	RestartBurst int
	// MaxConcurrentReconciles per workload kind.
	MaxConcurrentReconciles int
	// MaxConcurrentRollouts bounds the CertRollouts quiescing, restarting or restoring at once across the
	// cluster; 0 means no bound.
	MaxConcurrentRollouts int
	// MaxConcurrentRolloutsPerNamespace is one namespace's share of MaxConcurrentRollouts: its rollouts
	// past Pending at once. It keeps one tenant from holding every slot; a rollout whose certificate
	// expires within its policy's expiryDeadline is held by this share only, never by other namespaces'
	// rollouts. 0 means no per-namespace bound.
	MaxConcurrentRolloutsPerNamespace int
	// MaxRestartsPerDay is the circuit breaker: the most restarts certrollout makes of one workload within
	// 24 hours for changed certificates; past it the workload is blocked (Event RestartBudgetExhausted)
	// until the oldest of them is a day old. 0 means no budget. Manual CertRollouts are counted, not held.
	MaxRestartsPerDay int
	// CACascade makes every CA issuer cascade, as if annotated certrollout.io/cascade=true: when its CA
	// certificate changes, the leaves it signed are re-issued under the new one.
	CACascade bool
	// ClusterResourceNamespace is cert-manager's --cluster-resource-namespace: where the CA Secrets of
	// ClusterIssuers live. Empty means cert-manager's default (DefaultClusterResourceNamespace).
	ClusterResourceNamespace string
	// TrustSync lets the TrustBundleSync controller write its targets (each granted to the controller by
	// name); without it, syncs only report that they are off.
	TrustSync bool
	// ControlPlaneLeaseNamespace is where the node agents take the Lease certrollout-control-plane (their
	// namespace, the controller's); empty: the controller's own, else (out of a cluster) the leader
	// election namespace.
	// Control-plane rollouts run only in the cluster-wide controller.
	ControlPlaneLeaseNamespace string
	// Probes lets the controller connect to the TLS ports workloads declare (certrollout.io/probe, or
	// container ports named https or *tls*) and judge their pods by the certificate they serve, where the
	// start-time rule would restart them: a pod that reloaded its certificate by itself is not restarted.
	Probes bool
	// ProbeTimeout bounds one probe (dial and handshake); 0 means probe.DefaultTimeout.
	ProbeTimeout time.Duration
	// ProbeGrace is how long after a change of certificates a pod probed serving an old one is given to
	// pick the new one up before it counts as stale (DefaultProbeGrace); 0 judges at once.
	ProbeGrace time.Duration
	// ProbeDialer dials pods for probes; nil dials their IPs directly. A seam for tests, which cannot route
	// to a kwok pod's IP and map it to a listener of their own.
	ProbeDialer probe.Dialer
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// AllowRepeatedSetup permits several managers in one process (tests that restart the controller);
	// controller-runtime otherwise refuses a second controller of the same name.
	AllowRepeatedSetup bool

	// ModelledNamespaces, in a CLI snapshot only, are the namespaces the controller whose decisions it
	// models watches (its published --namespaces; empty: all), while Namespaces is the snapshot's view.
	// The controller ignores it.
	ModelledNamespaces []string
	// bundlesInNamespace makes a snapshot read the ClusterTrustBundles its pods project, whatever its
	// view, when the modelled controller is cluster-wide and the user may list them (a namespaced
	// controller never does, see clustertrustbundles.go).
	bundlesInNamespace bool
}

// DefaultOptions are the controller's defaults.
func DefaultOptions() Options {
	return Options{
		SettlePeriod:                      5 * time.Second,
		MinRestartInterval:                10 * time.Minute,
		RestartRate:                       1,
		RestartBurst:                      10,
		MaxConcurrentReconciles:           4,
		MaxConcurrentRollouts:             5,
		MaxConcurrentRolloutsPerNamespace: 2,
		MaxRestartsPerDay:                 6,
		ClusterResourceNamespace:          DefaultClusterResourceNamespace,
		ProbeGrace:                        DefaultProbeGrace,
	}
}

// ManagerOptions add the process-level settings.
type ManagerOptions struct {
	Options
	MetricsBindAddress string
	// MetricsSecure serves /metrics over HTTPS to callers the API server authenticates and authorises
	// (see metricsServerOptions); MetricsCertDir holds its tls.crt and tls.key (empty: self-signed).
	MetricsSecure           bool
	MetricsCertDir          string
	HealthProbeBindAddress  string
	PprofBindAddress        string
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election (client-go's meanings); zero keeps
	// controller-runtime's defaults (15 s, 10 s, 2 s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// SettingsNamespace is where the leader publishes its Settings (ConfigMap certrollout-settings) for
	// the CLI; empty: the leader election namespace, else the controller's own; "-": not published.
	SettingsNamespace string
	// SyncPeriod is how often every cached object is reconciled again; nil keeps controller-runtime's
	// default (10h). Tests shorten it to prove a resync restarts nothing.
	SyncPeriod *time.Duration
	// Logger is the manager's and its controllers' logger; the zero value keeps controller-runtime's
	// global one (ctrl.SetLogger). Tests give each manager its own.
	Logger logr.Logger
}

// HelmReleaseSecretType is the type of the Secrets in which Helm stores releases: often 100 KB each, the
// bulk of many clusters' Secrets, and never a certificate source. The API server filters them out of
// certrollout's watch, so they never reach the process.
const HelmReleaseSecretType = "helm.sh/release.v1" //nolint:gosec // a Secret type name, not a credential

// NewManager builds a manager whose caches keep only what certrollout needs: Secrets and ConfigMaps
// reduced to their certificates, pods reduced to identity, labels and start times (cachedPod).
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	if len(o.Namespaces) == 0 && o.ControlPlaneLeaseNamespace == "" {
		// The node agents run, and take their Lease, in the controller's namespace (config/ and the
		// chart put both there); the leader election namespace is the fallback out of a cluster.
		o.ControlPlaneLeaseNamespace = ownNamespace()
		if o.ControlPlaneLeaseNamespace == "" {
			o.ControlPlaneLeaseNamespace = o.LeaderElectionNamespace
		}
	}
	bundles, err := bundlesInDiscovery(cfg, o.Namespaces)
	if err != nil {
		return nil, err
	}
	cacheOpts := cacheOptions(o.Namespaces, o.ControlPlaneLeaseNamespace, bundles)
	cacheOpts.SyncPeriod = o.SyncPeriod
	id := o.LeaderElectionID
	if id == "" {
		id = "certrollout-controller"
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        o.Logger,
		Cache:                         cacheOpts,
		Metrics:                       metricsServerOptions(o),
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              id,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.LeaseDuration),
		RenewDeadline:                 nonZero(o.RenewDeadline),
		RetryPeriod:                   nonZero(o.RetryPeriod),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := checkControllerAccess(ctx, mgr.GetAPIReader(), mgr.GetRESTMapper(), mgr.GetScheme(), o.Namespaces, o.ControlPlaneLeaseNamespace); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := Setup(context.Background(), mgr, o.Options); err != nil {
		return nil, err
	}
	if err := addSettingsPublisher(mgr, o); err != nil {
		return nil, err
	}
	certificates.use(mgr.GetCache())
	if len(o.Namespaces) == 0 {
		// Control-plane metrics: NodeCertificates are cluster-scoped, so only the cluster-wide controller
		// watches them (checkControllerAccess has verified it may).
		served, err := isServed(mgr.GetRESTMapper(), mgr.GetScheme(), &api.NodeCertificates{})
		if err != nil {
			return nil, err
		}
		if served {
			if err := watchNodeCertificates(ctx, mgr.GetCache()); err != nil {
				return nil, err
			}
		}
	}
	if err := mgr.Add(leaderGauge{}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// leaderGauge sets certrollout_controller_leader while this replica leads: the manager starts it on
// winning the election and cancels it on losing the lease (after which the process exits).
type leaderGauge struct{}

func (leaderGauge) NeedLeaderElection() bool { return true }

func (leaderGauge) Start(ctx context.Context) error {
	leader.Set(1)
	<-ctx.Done()
	leader.Set(0)
	return nil
}

// addSettingsPublisher publishes the leader's Settings where ManagerOptions.SettingsNamespace says.
func addSettingsPublisher(mgr manager.Manager, o ManagerOptions) error {
	ns := o.SettingsNamespace
	if ns == "" {
		ns = o.LeaderElectionNamespace
	}
	if ns == "" {
		ns = ownNamespace()
	}
	if ns == "" || ns == "-" {
		ctrl.Log.Info("The controller's settings are not published (no namespace known: set --settings-namespace); certrollout plan will assume defaults unless told the flags")
		return nil
	}
	return mgr.Add(&settingsPublisher{client: mgr.GetClient(), reader: mgr.GetAPIReader(), namespace: ns, settings: SettingsOf(o.Options)})
}

// nonZero is d, or nil for zero (controller-runtime's default).
func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// newScheme knows the built-in types, cert-manager's Certificates (the fields certrollout reads) and
// certrollout.io.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := certmanager.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := api.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// cacheOptions keep only what certrollout needs: Secrets and ConfigMaps reduced to their certificates
// (Helm release Secrets filtered out by the API server), no managedFields, only the given namespaces
// (all when empty), and of Leases only the node agents' in leaseNamespace (the controller's rights on
// Leases are a Role there).
func cacheOptions(namespaces []string, leaseNamespace string, bundles bool) cache.Options {
	lease := cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", api.ControlPlaneLeaseName)}
	if leaseNamespace != "" {
		lease.Namespaces = map[string]cache.Config{leaseNamespace: {}}
	}
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Transform: inventory.Transform, Field: fields.OneTermNotEqualSelector("type", HelmReleaseSecretType)},
			&corev1.ConfigMap{}: {Transform: inventory.Transform},
			// Only the node agents' Lease, and only control-plane Nodes, are ever read (cluster-wide
			// controller only): node heartbeats and worker Nodes stay out of the cache.
			&coordinationv1.Lease{}: lease,
			&corev1.Node{}:          {Label: controlPlaneSelector},
		},
	}
	if bundles {
		// Cached only by the cluster-wide controller, and only where served (clustertrustbundles.go): the
		// cache resolves every ByObject type when it is built, and a type the cluster does not serve would
		// keep the controller from starting.
		opts.ByObject[&certificatesv1beta1.ClusterTrustBundle{}] = cache.ByObject{Transform: inventory.TransformBundle}
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// Setup registers the indexes and the workload controllers with mgr.
func Setup(ctx context.Context, mgr manager.Manager, o Options) error {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RestartRate <= 0 || o.RestartBurst <= 0 {
		return errors.New("restart rate and burst must be positive")
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 1
	}
	if err := setupSourceControllers(mgr, o); err != nil {
		return err
	}
	issuers, err := servedIssuers(mgr)
	if err != nil {
		return err
	}
	disc, err := newGatherer(ctx, mgr, mgr.GetAPIReader(), o, issuers)
	if err != nil {
		return err
	}
	disc.acting = true
	pods := disc.pods
	if err := pods.onChange(func(ns string) { workloads.settle(ns, o.Clock()) }); err != nil {
		return err
	}
	for _, k := range kinds {
		r := &workloadReconciler{
			gatherer: disc,
			kind:     k,
			recorder: mgr.GetEventRecorder("certrollout"),
		}
		b := ctrl.NewControllerManagedBy(mgr).Named(strings.ToLower(k.name))
		changed := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})
		if k.name == api.KindPod {
			bare := predicate.NewPredicateFuncs(func(o client.Object) bool {
				p, ok := o.(*cachedPod)
				return ok && p.Bare
			})
			b = b.WatchesRawSource(pods.source(&handler.EnqueueRequestForObject{}, changed, bare))
		} else {
			b = b.For(k.newObj(), builder.WithPredicates(changed)).WatchesRawSource(pods.source(nil))
		}
		b = watchBundles(b, disc, k, o, r.recorder)
		err := b.
			Watches(&corev1.Secret{}, sourceHandler(mgr.GetClient(), pods, k, o.SettlePeriod)).
			Watches(&corev1.ConfigMap{}, sourceHandler(mgr.GetClient(), pods, k, o.SettlePeriod)).
			WithOptions(controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles, SkipNameValidation: &o.AllowRepeatedSetup}).
			Complete(r)
		if err != nil {
			return err
		}
	}
	if err := setupTrustSync(ctx, mgr, o, disc.linker.reader != nil); err != nil {
		return err
	}
	if disc.policies {
		objects.use(mgr.GetCache())
		if err := setupOrchestration(ctx, mgr, disc); err != nil {
			return err
		}
		if disc.holds {
			if err := setupHolds(mgr, disc); err != nil {
				return err
			}
		}
	}
	if disc.controlPlane {
		if o.ControlPlaneLeaseNamespace == "" {
			ctrl.Log.Info("Control-plane rollouts are off: the namespace of the Lease " + api.ControlPlaneLeaseName + " is not known (set the controller's namespace)")
			return nil
		}
		return setupControlPlaneRollouts(mgr, disc, o.ControlPlaneLeaseNamespace)
	}
	return nil
}
