// Package controller runs certrollout's controllers on controller-runtime: one reconciler per workload
// kind that restarts the workload when the certificates it uses change, following package policy. It only
// wires; discovery is in consumers and inventory, decisions in policy, writes in restart.
package controller

import (
	"context"
	"errors"
	"strings"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/policy"
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
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// AllowRepeatedSetup permits several managers in one process (tests that restart the controller);
	// controller-runtime otherwise refuses a second controller of the same name.
	AllowRepeatedSetup bool
}

// DefaultOptions are the controller's defaults.
func DefaultOptions() Options {
	return Options{
		SettlePeriod:            5 * time.Second,
		MinRestartInterval:      10 * time.Minute,
		RestartRate:             1,
		RestartBurst:            10,
		MaxConcurrentReconciles: 4,
	}
}

// ManagerOptions add the process-level settings.
type ManagerOptions struct {
	Options
	MetricsBindAddress      string
	HealthProbeBindAddress  string
	PprofBindAddress        string
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// SyncPeriod is how often every cached object is reconciled again; nil keeps controller-runtime's
	// default (10h). Tests shorten it to prove a resync restarts nothing.
	SyncPeriod *time.Duration
}

// NewManager builds a manager whose caches keep only what certrollout needs: Secrets and ConfigMaps
// reduced to their certificates, pods reduced to identity and start times.
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cacheOpts := cache.Options{
		SyncPeriod:       o.SyncPeriod,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Transform: inventory.Transform},
			&corev1.ConfigMap{}: {Transform: inventory.Transform},
			&corev1.Pod{}:       {Transform: reducePod},
		},
	}
	if len(o.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	id := o.LeaderElectionID
	if id == "" {
		id = "certrollout-controller"
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              id,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
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
	certificates.use(mgr.GetCache())
	return mgr, nil
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
	if err := setupIndexes(ctx, mgr); err != nil {
		return err
	}
	if err := setupSourceControllers(mgr, o); err != nil {
		return err
	}
	limiter := rate.NewLimiter(rate.Limit(o.RestartRate), o.RestartBurst)
	for _, k := range kinds {
		if k.name == policy.KindCronJob {
			continue // reported by check and plan; nothing to restart
		}
		r := &workloadReconciler{
			client:   mgr.GetClient(),
			kind:     k,
			opts:     o,
			limiter:  limiter,
			recorder: mgr.GetEventRecorder("certrollout"),
		}
		preds := []predicate.Predicate{predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})}
		if k.name == policy.KindPod {
			preds = append(preds, predicate.NewPredicateFuncs(func(o client.Object) bool {
				p, ok := o.(*corev1.Pod)
				return ok && barePod(p)
			}))
		}
		err := ctrl.NewControllerManagedBy(mgr).
			Named(strings.ToLower(k.name)).
			For(k.newObj(), builder.WithPredicates(preds...)).
			Watches(&corev1.Secret{}, sourceHandler(mgr.GetClient(), k, o.SettlePeriod)).
			Watches(&corev1.ConfigMap{}, sourceHandler(mgr.GetClient(), k, o.SettlePeriod)).
			WithOptions(controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles, SkipNameValidation: &o.AllowRepeatedSetup}).
			Complete(r)
		if err != nil {
			return err
		}
	}
	return nil
}

// reducePod keeps of a pod what certrollout reads: identity, labels, annotations and owners; the spec only
// of bare pods (their own uses); of the status only the start times.
func reducePod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	if !barePod(p) {
		p.Spec = corev1.PodSpec{}
	}
	status := corev1.PodStatus{Phase: p.Status.Phase, StartTime: p.Status.StartTime}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil {
			status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
				Name: cs.Name, State: corev1.ContainerState{Running: cs.State.Running},
			})
		}
	}
	p.Status = status
	return p, nil
}
