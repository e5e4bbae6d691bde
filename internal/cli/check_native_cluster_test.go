package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// The local cluster (1.34) serves PodCertificateRequests as certificates.k8s.io/v1alpha1 and
// ClusterTrustBundles as v1beta1. With no real kubelet, the test plays kubelet and signer as the cluster
// admin: it creates the request for a pod with a proof of possession of the key, and issues it through
// the status subresource, as a signer would. check then reports the pod's certificate, and the bundle with
// the Deployment that projects it by signer and selector.
func TestCheckReportsPodCertificatesAndClusterTrustBundles(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	signer := "certrollout.test/" + ns
	ca := testgen.CA(t, "pods-ca", testgen.WithValidity(time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0)))

	bundle := &certificatesv1beta1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(signer, "/", ":") + ":roots", Labels: map[string]string{"tier": "prod"}},
		Spec:       certificatesv1beta1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: string(ca.PEM())},
	}
	if _, err := c.Client.CertificatesV1beta1().ClusterTrustBundles().Create(ctx, bundle, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.CertificatesV1beta1().ClusterTrustBundles().Delete(context.Background(), bundle.Name, metav1.DeleteOptions{})
	})
	spec := testgen.PodSpec(testgen.WithProjectedSources("ca", testgen.BundleBySigner(signer, map[string]string{"tier": "prod"})))
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trusting"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "trusting"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "trusting"}}, Spec: spec},
	}}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pod, node, sa := podOnNode(t, ns)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pcr := createPodCertificateRequest(t, ns, signer, pod, node, sa, key)
	notAfter := issuePodCertificate(t, pcr, ca, key)

	rep, stderr, _ := checkJSON(t, "--kubeconfig", c.Kubeconfig, "-n", ns)
	var gotPod, gotBundle *CheckItem
	for i, it := range rep.Items {
		switch {
		case it.Source.Kind == checkKindPodCertificateRequest && it.Source.Name == pcr.GetName():
			gotPod = &rep.Items[i]
		case it.Source.Kind == checkKindClusterTrustBundle && it.Source.Name == bundle.Name:
			gotBundle = &rep.Items[i]
		}
	}
	if gotPod == nil || gotBundle == nil {
		t.Fatalf("check lists no PodCertificateRequest %s or no ClusterTrustBundle %s:\n%+v\n%s", pcr.GetName(), bundle.Name, rep.Items, stderr)
	}
	if pc := gotPod.PodCertificate; pc == nil || pc.Pod != pod.Name || pc.Node != node.Name || pc.Signer != signer || pc.BeginRefreshAt == nil {
		t.Errorf("pod certificate = %+v, want pod %s on %s from %s with a refresh time", pc, pod.Name, node.Name, signer)
	}
	if gotPod.Certificate == nil || !gotPod.Certificate.NotAfter.Equal(notAfter) || gotPod.Certificate.CommonName != pod.Name {
		t.Errorf("pod certificate facts = %+v, want CN %s expiring %s", gotPod.Certificate, pod.Name, notAfter)
	}
	if len(gotBundle.Consumers) != 1 || gotBundle.Consumers[0].Name != ns+"/trusting" || gotBundle.Certificates != 1 {
		t.Errorf("bundle item = %+v, want one CA projected by Deployment %s/trusting", gotBundle, ns)
	}
}

// podOnNode creates a bare pod bound to one of the cluster's nodes and returns it, the node and the
// pod's ServiceAccount: the identities a PodCertificateRequest names.
func podOnNode(t *testing.T, ns string) (*corev1.Pod, *corev1.Node, *corev1.ServiceAccount) {
	t.Helper()
	c := clustertest.Cluster(t)
	ctx := context.Background()
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("no node: %v", err)
	}
	node := &nodes.Items[0]
	var sa *corev1.ServiceAccount
	clustertest.Eventually(t, time.Minute, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		sa, err = c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "holder"}, Spec: testgen.PodSpec(
		testgen.WithProjectedSources("tls", testgen.PodCertificate("certrollout.test/"+ns)))}
	pod.Spec.NodeName = node.Name
	if pod, err = c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pod, node, sa
}

var pcrResource = schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1alpha1", Resource: "podcertificaterequests"}

// createPodCertificateRequest creates, as the kubelet would, the request of pod for key.
func createPodCertificateRequest(t *testing.T, ns, signer string, pod *corev1.Pod, node *corev1.Node, sa *corev1.ServiceAccount, key *ecdsa.PrivateKey) *unstructured.Unstructured {
	t.Helper()
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(pod.UID))
	proof, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "certificates.k8s.io/v1alpha1", "kind": "PodCertificateRequest",
		"metadata": map[string]any{"namespace": ns, "generateName": pod.Name + "-"},
		"spec": map[string]any{
			"signerName": signer, "podName": pod.Name, "podUID": string(pod.UID),
			"serviceAccountName": sa.Name, "serviceAccountUID": string(sa.UID),
			"nodeName": node.Name, "nodeUID": string(node.UID), "maxExpirationSeconds": int64(86400),
			"pkixPublicKey": base64.StdEncoding.EncodeToString(pub), "proofOfPossession": base64.StdEncoding.EncodeToString(proof),
		},
	}}
	created, err := dynamicClient(t).Resource(pcrResource).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a PodCertificateRequest as the cluster admin: %v", err)
	}
	return created
}

// issuePodCertificate signs key's certificate with ca, as the signer would, and writes it to the request's
// status; it returns the certificate's notAfter.
func issuePodCertificate(t *testing.T, pcr *unstructured.Unstructured, ca *testgen.Cert, key *ecdsa.PrivateKey) time.Time {
	t.Helper()
	podName, _, _ := unstructured.NestedString(pcr.Object, "spec", "podName")
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: podName},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.X509, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(ca.PEM())
	status := map[string]any{
		"certificateChain": chain,
		"notBefore":        now.Format(time.RFC3339), "notAfter": tmpl.NotAfter.Format(time.RFC3339),
		"beginRefreshAt": now.Add(16 * time.Hour).Format(time.RFC3339),
		"conditions": []any{map[string]any{"type": "Issued", "status": "True", "reason": "Issued", "message": "issued by the test",
			"lastTransitionTime": now.Format(time.RFC3339)}},
	}
	if err := unstructured.SetNestedField(pcr.Object, status, "status"); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamicClient(t).Resource(pcrResource).Namespace(pcr.GetNamespace()).UpdateStatus(context.Background(), pcr, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("issuing the PodCertificateRequest: %v", err)
	}
	return tmpl.NotAfter
}

func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	dc, err := dynamic.NewForConfig(clustertest.Cluster(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// TestPlanInANamespaceReadsTheClusterTrustBundlesItsPodsProject: a bundle is cluster-scoped, but the plan
// of one namespace decides on the workloads that project it, as the cluster-wide controller does. Its
// pods started before the bundle changed, so plan says they run on old certificates.
func TestPlanInANamespaceReadsTheClusterTrustBundlesItsPodsProject(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	bundle := &certificatesv1beta1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: "plan-" + ns},
		Spec:       certificatesv1beta1.ClusterTrustBundleSpec{TrustBundle: string(testgen.CA(t, "plan-ca").PEM())},
	}
	bundle, err := c.Client.CertificatesV1beta1().ClusterTrustBundles().Create(ctx, bundle, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.CertificatesV1beta1().ClusterTrustBundles().Delete(context.Background(), bundle.Name, metav1.DeleteOptions{})
	})
	d := testgen.Deployment(ns, "trusting", 1, []testgen.PodOption{testgen.WithProjectedSources("ca", testgen.BundleByName(bundle.Name))},
		testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "trusting")

	_, items := planJSON(t, ns, "--settle-period=0")
	p, ok := items["trusting"]
	if !ok || len(p.Sources) != 1 || p.Sources[0].Kind != "ClusterTrustBundle" || p.Sources[0].Name != bundle.Name || len(p.Missing) != 0 {
		t.Fatalf("plan -n %s: want trusting with ClusterTrustBundle %s as its source, got %+v", ns, bundle.Name, p)
	}
	if p.Certificates.Current == "" || p.Reason == api.ReasonNoCertificates {
		t.Errorf("trusting's certificates: %+v (%s: %s)", p.Certificates, p.Reason, p.Message)
	}

	// A user who may read the namespace but not list bundles gets the plan without them, told so; the
	// bundle is not called missing. (Kubernetes lets every ServiceAccount read bundles,
	// system:cluster-trust-bundle-discovery, so the reader is a user.)
	const user = "tenant@example.com"
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Rules: readerRules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := run(t, "certrollout", "plan", "--kubeconfig", c.Kubeconfig, "--as", user, "-n", ns, "--settle-period=0", "-o", "json")
	var rep PlanReport
	if jerr := json.Unmarshal([]byte(out), &rep); err != nil || jerr != nil || len(rep.Items) != 1 {
		t.Fatalf("plan as a reader: %v %v\n%s\n%s", err, jerr, out, stderr)
	}
	if it := rep.Items[0]; !rep.BundlesUnread || len(it.Missing) != 0 || len(it.Unread) != 1 || !strings.Contains(it.Unread[0], bundle.Name) {
		t.Errorf("plan as a reader: bundlesUnread %t, missing %v, unread %v; want true, none, and the bundle", rep.BundlesUnread, it.Missing, it.Unread)
	}
	_, stderr, _ = run(t, "certrollout", "plan", "--kubeconfig", c.Kubeconfig, "--as", user, "-n", ns)
	if !strings.Contains(stderr, "Not shown: ClusterTrustBundles, which you may not list") {
		t.Errorf("the table's notes do not say the bundles were not read:\n%s", stderr)
	}

	time.Sleep(1100 * time.Millisecond) // the change in a later second than the pod's start
	bundle.Spec.TrustBundle += string(testgen.CA(t, "plan-ca-2").PEM())
	if _, err := c.Client.CertificatesV1beta1().ClusterTrustBundles().Update(ctx, bundle, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, items = planJSON(t, ns, "--settle-period=0")
	if p := items["trusting"]; len(p.StalePods) != 1 || p.Action != "Restart" {
		t.Errorf("after the bundle gained a CA: %s %s (%s), stale %v; want its one pod stale and a restart", p.Action, p.Reason, p.Message, p.StalePods)
	}
}
