package cli

import (
	"testing"
	"time"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/testgen"
)

// A v1alpha1 PodCertificateRequest (what 1.34 serves) reads into the v1beta1 type; an issued one is an
// item held by its pod, a pending one is none.
func TestPodCertificateRequestsOfAnyVersionAreItemsOnceIssued(t *testing.T) {
	ca := testgen.CA(t, "pods")
	leaf := testgen.Leaf(t, ca, "web-0")
	refresh := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	pcr := func(chain string) unstructured.Unstructured {
		return unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "certificates.k8s.io/v1alpha1", "kind": "PodCertificateRequest",
			"metadata": map[string]any{"namespace": "shop", "name": "web-0-abcde"},
			"spec":     map[string]any{"signerName": "example.com/pods", "podName": "web-0", "nodeName": "node-1"},
			"status":   map[string]any{"certificateChain": chain, "beginRefreshAt": refresh.Format(time.RFC3339)},
		}}
	}
	list := &unstructured.UnstructuredList{Items: []unstructured.Unstructured{pcr(string(testgen.Concat(leaf.PEM(), ca.PEM()))), pcr("")}}
	pcrs, err := podCertificateRequestsOf(list)
	if err != nil || len(pcrs) != 2 {
		t.Fatalf("podCertificateRequestsOf = %d, %v", len(pcrs), err)
	}
	it, ok := podCertificateItem(&pcrs[0])
	if !ok {
		t.Fatal("an issued request is no item")
	}
	want := CheckPodCertificate{Pod: "web-0", Node: "node-1", Signer: "example.com/pods", BeginRefreshAt: &refresh}
	if pc := it.PodCertificate; pc == nil || pc.Pod != want.Pod || pc.Node != want.Node || pc.Signer != want.Signer || !pc.BeginRefreshAt.Equal(refresh) {
		t.Errorf("PodCertificate = %+v, want %+v", it.PodCertificate, want)
	}
	if it.Certificate == nil || it.Certificate.CommonName != "web-0" || it.Certificates != 2 {
		t.Errorf("the item's certificate is not the pod's own leaf first: %+v (%d)", it.Certificate, it.Certificates)
	}
	if len(it.Consumers) != 1 || it.Consumers[0].Kind != "Pod" || it.Consumers[0].Name != "web-0" {
		t.Errorf("consumers = %+v, want the pod", it.Consumers)
	}
	if _, ok := podCertificateItem(&pcrs[1]); ok {
		t.Error("a request not issued yet is an item")
	}
}

func TestBundleItemsNameTheWorkloadsThatProjectThem(t *testing.T) {
	ca := testgen.CA(t, "corp")
	b := certificatesv1beta1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "example.com:corp:a", Labels: map[string]string{"tier": "prod"}},
		Spec: certificatesv1beta1.ClusterTrustBundleSpec{SignerName: "example.com/corp", TrustBundle: string(ca.PEM())}}
	unused := certificatesv1beta1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: certificatesv1beta1.ClusterTrustBundleSpec{TrustBundle: string(ca.PEM())}}
	use := func(r consumers.Ref) []consumers.Use { return []consumers.Use{{Ref: r, Mode: consumers.ModeVolume}} }
	workloads := []controller.Workload{
		{Kind: "Deployment", Namespace: "a", Name: "by-name", Uses: use(consumers.Ref{Kind: consumers.KindClusterTrustBundle, Name: b.Name})},
		{Kind: "Deployment", Namespace: "b", Name: "by-signer", Uses: use(consumers.SignerRef("example.com/corp", &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}))},
		{Kind: "Deployment", Namespace: "b", Name: "other-tier", Uses: use(consumers.SignerRef("example.com/corp", &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "dev"}}))},
	}
	bundles := []certificatesv1beta1.ClusterTrustBundle{b, unused}
	all := bundleItems(bundles, workloads, true)
	if len(all) != 2 {
		t.Fatalf("every bundle is listed across all namespaces: got %d", len(all))
	}
	got := all[0].Consumers
	if len(got) != 2 || got[0].Name != "a/by-name" || got[1].Name != "b/by-signer" {
		t.Errorf("consumers = %+v, want a/by-name and b/by-signer", got)
	}
	if one := bundleItems(bundles, workloads, false); len(one) != 1 || one[0].Source.Name != b.Name {
		t.Errorf("in one namespace only the bundles its workloads project are listed: %+v", one)
	}
}
