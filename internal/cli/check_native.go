package cli

import (
	"context"
	"time"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/inventory"
)

// Kinds of the Kubernetes-native certificate sources (certificates.k8s.io) in a CheckSource.
const (
	checkKindClusterTrustBundle    = "ClusterTrustBundle"
	checkKindPodCertificateRequest = "PodCertificateRequest"
)

// CheckPodCertificate is what a PodCertificateRequest says of the certificate the kubelet obtained for
// one pod: reported only, since the kubelet renews it and rewrites the pod's projected file itself.
type CheckPodCertificate struct {
	Pod    string `json:"pod"`
	Node   string `json:"node"`
	Signer string `json:"signer"`
	// BeginRefreshAt is when the kubelet starts to renew it.
	BeginRefreshAt *time.Time `json:"beginRefreshAt,omitempty"`
}

// pcrVersions are the versions of certificates.k8s.io that have served PodCertificateRequests, newest
// first: alpha in Kubernetes 1.34, beta in 1.35, GA later. Their fields read the same.
var pcrVersions = []string{"v1", "v1beta1", "v1alpha1"}

// addNativeItems adds to s the ClusterTrustBundles (with their consumers among workloads) and the issued
// PodCertificateRequests of namespace ns ("" for all). A cluster that serves neither, or a user who may
// not list them, adds nothing: the report reads as it did before these APIs.
func (o *CheckOptions) addNativeItems(ctx context.Context, c client.Reader, s *checkSection, ns string, workloads []controller.Workload) error {
	bundles := &certificatesv1beta1.ClusterTrustBundleList{}
	err := c.List(ctx, bundles)
	switch {
	case err == nil:
		s.items = append(s.items, bundleItems(selected(bundles.Items, o.selector), workloads, ns == "")...)
	case !notServedOrForbidden(err, certificatesv1beta1.GroupName):
		return err
	}
	pcrs, err := listPodCertificateRequests(ctx, c, ns)
	if err != nil {
		return err
	}
	pcrs = selected(pcrs, o.selector)
	for i := range pcrs {
		if it, ok := podCertificateItem(&pcrs[i]); ok {
			s.items = append(s.items, it)
		}
	}
	sortCheckItems(s.items)
	return nil
}

// notServedOrForbidden reports whether err means the type is not served here or may not be listed.
func notServedOrForbidden(err error, group string) bool {
	return apimeta.IsNoMatchError(err) || isNotServed(err, group) || apierrors.IsForbidden(err)
}

// bundleItems makes one item per ClusterTrustBundle: its CAs and the workloads that project it, by name
// or through a signer query that matches it. all lists every bundle; otherwise (one namespace) only those
// its workloads project, since a bundle is cluster-scoped.
func bundleItems(bundles []certificatesv1beta1.ClusterTrustBundle, workloads []controller.Workload, all bool) []CheckItem {
	var out []CheckItem
	for i := range bundles {
		b := &bundles[i]
		it := CheckItem{Source: CheckSource{Kind: checkKindClusterTrustBundle, Name: b.Name}}
		cas := inventory.BundleCAs(b)
		it.Certificates = len(cas)
		if len(cas) > 0 {
			it.Certificate = checkCertificate((&certs.Bundle{Certificates: cas}).FirstToExpire())
		}
		for j := range workloads {
			if w := &workloads[j]; projects(w.Uses, b) {
				it.Consumers = append(it.Consumers, CheckConsumer{Kind: w.Kind, Name: w.Namespace + "/" + w.Name})
			}
		}
		if all || len(it.Consumers) > 0 {
			out = append(out, it)
		}
	}
	return out
}

// projects reports whether uses project bundle b: by its name, or by a signer query that selects it.
func projects(uses []consumers.Use, b *certificatesv1beta1.ClusterTrustBundle) bool {
	for _, r := range consumers.Refs(uses) {
		if r.Kind == consumers.KindClusterTrustBundle && r.Name == b.Name {
			return true
		}
		if q, err := r.Query(); err == nil && q.Matches(b.Spec.SignerName, b.Labels) {
			return true
		}
	}
	return false
}

// listPodCertificateRequests lists the PodCertificateRequests of ns in the newest version served. The
// client library may not know the served version's Go type (1.34 serves only v1alpha1), so they are read
// as unstructured objects and converted to the v1beta1 type, whose fields are the same.
func listPodCertificateRequests(ctx context.Context, c client.Reader, ns string) ([]certificatesv1beta1.PodCertificateRequest, error) {
	for _, v := range pcrVersions {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(certificatesv1beta1.GroupName + "/" + v)
		list.SetKind("PodCertificateRequestList")
		err := c.List(ctx, list, client.InNamespace(ns))
		if notServedOrForbidden(err, certificatesv1beta1.GroupName) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return podCertificateRequestsOf(list)
	}
	return nil, nil
}

// podCertificateRequestsOf converts unstructured PodCertificateRequests of any served version.
func podCertificateRequestsOf(list *unstructured.UnstructuredList) ([]certificatesv1beta1.PodCertificateRequest, error) {
	out := make([]certificatesv1beta1.PodCertificateRequest, 0, len(list.Items))
	for _, u := range list.Items {
		var pcr certificatesv1beta1.PodCertificateRequest
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &pcr); err != nil {
			return nil, err
		}
		out = append(out, pcr)
	}
	return out, nil
}

// podCertificateItem is an issued PodCertificateRequest's leaf certificate, held by its pod; ok is false
// while it is not issued (nothing to expire).
func podCertificateItem(pcr *certificatesv1beta1.PodCertificateRequest) (CheckItem, bool) {
	chain, err := certs.ParsePEM([]byte(pcr.Status.CertificateChain))
	if err != nil || len(chain.Certificates) == 0 {
		return CheckItem{}, false
	}
	it := CheckItem{
		Source:       CheckSource{Kind: checkKindPodCertificateRequest, Namespace: pcr.Namespace, Name: pcr.Name},
		Certificate:  checkCertificate(&chain.Certificates[0]), // the chain starts with the pod's own certificate
		Certificates: len(chain.Certificates),
		Consumers:    []CheckConsumer{{Kind: "Pod", Name: pcr.Spec.PodName}},
		PodCertificate: &CheckPodCertificate{
			Pod: pcr.Spec.PodName, Node: string(pcr.Spec.NodeName), Signer: pcr.Spec.SignerName,
		},
	}
	if t := pcr.Status.BeginRefreshAt; t != nil {
		at := t.UTC()
		it.PodCertificate.BeginRefreshAt = &at
	}
	return it, true
}

// selected keeps the objects whose labels sel (nil: all) matches, as -l does for Secrets and ConfigMaps.
func selected[T any, PT interface {
	*T
	GetLabels() map[string]string
}](items []T, sel labels.Selector) []T {
	if sel == nil || sel.Empty() {
		return items
	}
	var out []T
	for i := range items {
		if sel.Matches(labels.Set(PT(&items[i]).GetLabels())) {
			out = append(out, items[i])
		}
	}
	return out
}
