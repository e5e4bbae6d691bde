package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/inventory"
)

// DefaultClusterResourceNamespace is cert-manager's default --cluster-resource-namespace, where the CA
// Secrets of ClusterIssuers live.
const DefaultClusterResourceNamespace = "cert-manager"

// issuerAccess is what the snapshot may read of cert-manager's issuers: each kind only when the cluster
// serves it and the user may list it, so that a missing CRD or a namespace-scoped user does not leave a
// cache that never syncs. The reason says what is left out of the CA graph, and why.
type issuerAccess struct {
	issuers, clusterIssuers bool
	reason                  string
}

// setupIssuers decides which issuer kinds to cache (see issuerAccess); ns is the snapshot's namespace.
func setupIssuers(ctx context.Context, mgr manager.Manager, direct client.Client, ns string) (issuerAccess, error) {
	var a issuerAccess
	for _, k := range []struct {
		kind string
		list client.ObjectList
		ok   *bool
		opts []client.ListOption
	}{
		{certmanager.KindIssuer, &certmanager.IssuerList{}, &a.issuers, []client.ListOption{client.InNamespace(ns), client.Limit(1)}},
		{certmanager.KindClusterIssuer, &certmanager.ClusterIssuerList{}, &a.clusterIssuers, []client.ListOption{client.Limit(1)}},
	} {
		gk := schema.GroupKind{Group: certmanager.GroupVersion.Group, Kind: k.kind}
		if _, err := mgr.GetRESTMapper().RESTMapping(gk, certmanager.GroupVersion.Version); err != nil {
			if apimeta.IsNoMatchError(err) {
				continue
			}
			return a, err
		}
		if err := direct.List(ctx, k.list, k.opts...); err != nil {
			if apierrors.IsForbidden(err) {
				a.reason = fmt.Sprintf("%ss are not shown: %v", k.kind, err)
				continue
			}
			return a, err
		}
		*k.ok = true
	}
	return a, nil
}

// CAGraph returns the CA issuers of ns ("" for all), the ClusterIssuers that sign Certificates in ns (all
// of them for ""), and the Certificates of ns they sign, each judged against its issuer's current CA
// certificate (package cagraph). A ClusterIssuer's CA Secret is read from the cluster resource namespace
// (Options.ClusterResourceNamespace), with a direct GET when the snapshot covers another namespace; a
// Secret the user may not read becomes the issuer's Problem rather than an error.
func (s *Snapshot) CAGraph(ctx context.Context, ns string) (*cagraph.Graph, error) {
	if !s.CertManager {
		return &cagraph.Graph{}, nil
	}
	certificates, err := s.Certificates(ctx, ns)
	if err != nil {
		return nil, err
	}
	var issuers certmanager.IssuerList
	if s.disc.issuers.issuers {
		if err := s.disc.client.List(ctx, &issuers, client.InNamespace(ns)); err != nil {
			return nil, err
		}
	}
	var clusterIssuers certmanager.ClusterIssuerList
	if s.disc.issuers.clusterIssuers {
		if err := s.disc.client.List(ctx, &clusterIssuers); err != nil {
			return nil, err
		}
	}
	if ns != "" {
		// In one namespace, a ClusterIssuer is of interest only through the Certificates it signs there.
		used := map[string]bool{}
		for i := range certificates {
			if ref, ok := cagraph.IssuerOf(&certificates[i]); ok && ref.Kind == certmanager.KindClusterIssuer {
				used[ref.Name] = true
			}
		}
		kept := clusterIssuers.Items[:0]
		for _, ci := range clusterIssuers.Items {
			if used[ci.Name] {
				kept = append(kept, ci)
			}
		}
		clusterIssuers.Items = kept
	}
	crn := s.disc.opts.ClusterResourceNamespace
	if crn == "" {
		crn = DefaultClusterResourceNamespace
	}
	in := cagraph.Input{
		Issuers:      cagraph.Issuers(issuers.Items, clusterIssuers.Items, crn),
		Certificates: certificates,
		Secrets:      map[types.NamespacedName][]byte{},
		Unreadable:   map[types.NamespacedName]string{},
	}
	for _, name := range cagraph.SecretsNeeded(in.Issuers, certificates) {
		var secret corev1.Secret
		var err error
		if ns == "" || name.Namespace == ns {
			err = s.disc.client.Get(ctx, name, &secret)
		} else {
			// Outside the cache's namespace: one GET, reduced at once so the private key is dropped.
			if err = s.direct.Get(ctx, name, &secret); err == nil {
				inventory.ReduceSecret(&secret)
			}
		}
		switch {
		case apierrors.IsNotFound(err):
		case apierrors.IsForbidden(err):
			in.Unreadable[name] = err.Error()
		case err != nil:
			return nil, err
		default:
			in.Secrets[name] = secret.Data[corev1.TLSCertKey]
		}
	}
	g := cagraph.Build(in)
	return &g, nil
}

// CAGraphIncomplete says which issuers the CA graph leaves out and why (not served is not incomplete:
// there are none); empty when it shows them all.
func (s *Snapshot) CAGraphIncomplete() string { return s.disc.issuers.reason }
