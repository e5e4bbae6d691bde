package controller

import (
	"context"

	"golang.org/x/time/rate"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
)

// capabilities are what the cluster serves and the caller may read, fixed when the gatherer is built:
// every decision that depends on one (a policy governs, a Secret links to its Certificate, a cascade holds
// a restart) is made the same way by the controller and by `certrollout plan`.
type capabilities struct {
	// policies: certrollout.io's RolloutPolicy and CertRollout are served.
	policies bool
	// issuers: which cert-manager issuer kinds are served and readable.
	issuers issuerAccess
	// holds: certrollout.io's MaintenanceHold is served (a cluster may run newer code with older CRDs).
	holds bool
	// cascades: certrollout.io, cert-manager's Certificates and at least one issuer kind are served, so
	// the index of cascade rollouts exists and a workload's restart may be held for a cascade.
	cascades bool
	// controlPlane: the controller is cluster-wide and certrollout.io's NodeCertificates,
	// ControlPlaneRollout and ControlPlanePolicy are served, so control-plane rollouts run.
	controlPlane bool
	// bundles: the controller is cluster-wide and may list the ClusterTrustBundles the cluster serves, so
	// projected bundles are sources (clustertrustbundles.go).
	bundles bool
}

// newGatherer registers, on mgr, every index and cache the decisions read (workload indexes, the pod
// cache, the Certificate link, the CertRollout indexes) and returns the gatherer built on them. The
// controller and the CLI's Snapshot both call it; only issuers differs, because only the caller knows what
// it may read (the controller is granted every issuer; a tenant may not list ClusterIssuers).
func newGatherer(ctx context.Context, mgr manager.Manager, direct client.Reader, o Options, issuers issuerAccess) (*gatherer, error) {
	if err := setupIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	pods, err := newPodCache(mgr.GetConfig(), o.Namespaces)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(pods); err != nil {
		return nil, err
	}
	linker, err := setupCertificates(ctx, mgr)
	if err != nil {
		return nil, err
	}
	policies, err := setupPolicies(mgr)
	if err != nil {
		return nil, err
	}
	caps := capabilities{policies: policies, issuers: issuers}
	if policies {
		if err := indexRollouts(ctx, mgr); err != nil {
			return nil, err
		}
		if caps.holds, err = holdsServed(mgr); err != nil {
			return nil, err
		}
		caps.cascades = linker.reader != nil && (issuers.issuers || issuers.clusterIssuers)
		if len(o.Namespaces) == 0 {
			if caps.controlPlane, err = controlPlaneServed(mgr); err != nil {
				return nil, err
			}
		}
	}
	bundleScope := o.Namespaces
	if o.bundlesInNamespace {
		bundleScope = o.ModelledNamespaces
	}
	if caps.bundles, err = bundlesServed(ctx, mgr.GetRESTMapper(), mgr.GetScheme(), direct, bundleScope); err != nil {
		return nil, err
	}
	if caps.bundles {
		if err := indexBundleSigners(ctx, mgr); err != nil {
			return nil, err
		}
	}
	if caps.cascades {
		if err := indexCascades(ctx, mgr); err != nil {
			return nil, err
		}
	}
	var limiter *rate.Limiter
	if o.RestartRate > 0 && o.RestartBurst > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.RestartRate), o.RestartBurst)
	}
	return &gatherer{client: mgr.GetClient(), direct: direct, pods: pods, linker: linker, opts: o, capabilities: caps, limiter: limiter, prober: newProber(o), served: newServedDecisions()}, nil
}

// servedIssuers is the controller's issuerAccess: each issuer kind the cluster serves (its RBAC grants
// them; checkControllerAccess has verified it).
func servedIssuers(mgr manager.Manager) (issuerAccess, error) {
	var a issuerAccess
	for kind, ok := range map[string]*bool{certmanager.KindIssuer: &a.issuers, certmanager.KindClusterIssuer: &a.clusterIssuers} {
		gk := certmanager.GroupVersion.WithKind(kind).GroupKind()
		_, err := mgr.GetRESTMapper().RESTMapping(gk, certmanager.GroupVersion.Version)
		switch {
		case err == nil:
			*ok = true
		case apimeta.IsNoMatchError(err):
			ctrl.Log.Info("cert-manager's " + kind + "s are not served; CA cascades for them are not started (restart certrollout after installing cert-manager)")
		default:
			return a, err
		}
	}
	return a, nil
}

// indexCascades indexes the unfinished cascade CertRollouts by the issuer they re-issue for.
func indexCascades(ctx context.Context, mgr manager.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &api.CertRollout{}, cascadeIssuerIndex, func(o client.Object) []string {
		if ro, ok := o.(*api.CertRollout); ok {
			if key, ok := cascadeKeyOf(ro); ok {
				return []string{key}
			}
		}
		return nil
	})
}

// cascadeKeyOf is the cascadeIssuerKey of an unfinished cascade rollout; ok is false for any other.
func cascadeKeyOf(ro *api.CertRollout) (string, bool) {
	if ro.Spec.Cascade == nil || ro.Status.Phase.Finished() {
		return "", false
	}
	return cascadeIssuerKey(ro.Spec.Cascade.IssuerRef.Kind, ro.Namespace, ro.Spec.Cascade.IssuerRef.Name), true
}
