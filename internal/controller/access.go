package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
)

// An informer on a type its user may not list never syncs: client-go retries the LIST and logs, and the
// process waits until a cache-sync timeout names some other type. So both the controller and the CLI's
// snapshot list one object of each type they will watch first, and a Forbidden comes at once, in the API
// server's words (verb, resource, namespace, user).

// requireList lists at most one object of each list type in ns ("" for all namespaces, or a
// cluster-scoped type), returning the first error.
func requireList(ctx context.Context, c client.Reader, ns string, lists ...client.ObjectList) error {
	for _, l := range lists {
		if err := c.List(ctx, l, client.InNamespace(ns), client.Limit(1)); err != nil {
			return err
		}
	}
	return nil
}

// coreLists are the types every controller and snapshot reads: certificate sources, pods and workloads.
func coreLists() []client.ObjectList {
	return []client.ObjectList{
		&corev1.SecretList{}, &corev1.ConfigMapList{}, &corev1.PodList{},
		&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}, &batchv1.CronJobList{},
	}
}

// checkControllerAccess is the controller's preflight: every type it will watch that the cluster serves,
// in each namespace it watches (all when namespaces is empty); ClusterIssuers cluster-wide, and
// NodeCertificates (with, when served, ControlPlaneRollouts, the ControlPlanePolicy, Nodes, and the node
// agents' Lease in leaseNamespace, by name) when it watches every namespace.
func checkControllerAccess(ctx context.Context, c client.Reader, mapper apimeta.RESTMapper, scheme *runtime.Scheme, namespaces []string, leaseNamespace string) error {
	namespaced := coreLists()
	var clusterScoped []client.ObjectList
	for _, t := range []struct {
		list    client.ObjectList
		obj     client.Object
		cluster bool
	}{
		{&certmanager.CertificateList{}, &certmanager.Certificate{}, false},
		{&certmanager.IssuerList{}, &certmanager.Issuer{}, false},
		{&certmanager.ClusterIssuerList{}, &certmanager.ClusterIssuer{}, true},
		{&api.RolloutPolicyList{}, &api.RolloutPolicy{}, false},
		{&api.CertRolloutList{}, &api.CertRollout{}, false},
		{&api.TrustBundleSyncList{}, &api.TrustBundleSync{}, false},
		{&api.MaintenanceHoldList{}, &api.MaintenanceHold{}, false},
	} {
		served, err := isServed(mapper, scheme, t.obj)
		if err != nil {
			return err
		}
		switch {
		case !served:
		case t.cluster:
			clusterScoped = append(clusterScoped, t.list)
		default:
			namespaced = append(namespaced, t.list)
		}
	}
	if len(namespaces) == 0 {
		namespaces = []string{""}
		// NodeCertificates feed the control-plane metrics, which only the cluster-wide controller exports.
		served, err := isServed(mapper, scheme, &api.NodeCertificates{})
		if err != nil {
			return err
		}
		if served {
			clusterScoped = append(clusterScoped, &api.NodeCertificatesList{})
		}
		// Control-plane rollouts: their records and policy, control-plane Nodes, the agents' Lease.
		rollouts, err := isServed(mapper, scheme, &api.ControlPlaneRollout{})
		if err != nil {
			return err
		}
		if served && rollouts {
			clusterScoped = append(clusterScoped, &api.ControlPlaneRolloutList{}, &api.ControlPlanePolicyList{}, &corev1.NodeList{})
			// The Lease is read, as the cache lists and watches it, by name in its namespace only: a Role
			// there grants it (config/rbac/control_plane_lease_role.yaml).
			if leaseNamespace != "" {
				err := c.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace(leaseNamespace),
					client.MatchingFields{"metadata.name": api.ControlPlaneLeaseName}, client.Limit(1))
				if err != nil {
					return fmt.Errorf("the controller cannot read the node agents' Lease %s/%s (grant its ServiceAccount the RBAC of config/rbac or the Helm chart): %w",
						leaseNamespace, api.ControlPlaneLeaseName, err)
				}
			}
		}
	}
	for _, ns := range namespaces {
		if err := requireList(ctx, c, ns, namespaced...); err != nil {
			return fmt.Errorf("the controller cannot read what it watches (grant its ServiceAccount the RBAC of config/rbac or the Helm chart): %w", err)
		}
	}
	if err := requireList(ctx, c, "", clusterScoped...); err != nil {
		return fmt.Errorf("the controller cannot read what it watches (grant its ServiceAccount the RBAC of config/rbac or the Helm chart): %w", err)
	}
	return nil
}

// isServed says whether the cluster serves obj's type.
func isServed(mapper apimeta.RESTMapper, scheme *runtime.Scheme, obj client.Object) (bool, error) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return false, err
	}
	gvk := gvks[0]
	if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if apimeta.IsNoMatchError(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
