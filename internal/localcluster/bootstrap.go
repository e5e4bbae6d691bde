package localcluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/certrollout/certrollout/internal/certs"
)

// CertificateGVR is cert-manager's Certificate resource.
var CertificateGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// NodeName returns the name of the i-th kwok node.
func NodeName(i int) string { return "kwok-node-" + strconv.Itoa(i) }

// createNodes registers kwok nodes. kwok fills in their conditions and heartbeats; the capacity is large
// so scheduling never becomes the subject of a test.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        NodeName(i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"type": "kwok", "kubernetes.io/hostname": NodeName(i),
					"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", node.Name, err)
		}
	}
	return nil
}

// nodesReady holds when every node is Ready and carries no NoSchedule/NoExecute taint (the node lifecycle
// controller removes the not-ready taint once kwok reports Ready).
func (c *Cluster) nodesReady(ctx context.Context) (bool, error) {
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	if len(nodes.Items) == 0 {
		return false, nil
	}
	for _, n := range nodes.Items {
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready || len(n.Spec.Taints) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// defaultServiceAccount holds once pods can be created in the default namespace: the ServiceAccount
// admission plugin rejects pods until the controller manager has created the namespace's account.
func (c *Cluster) defaultServiceAccount(ctx context.Context) (bool, error) {
	_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// probeManifest is a self-signed Issuer and a Certificate: issuing it proves the CRDs are served and the
// controller works. It stays in place as the cluster's canary.
const probeManifest = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: probe-selfsigned
  namespace: cert-manager
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: probe
  namespace: cert-manager
spec:
  secretName: probe-tls
  commonName: probe.cert-manager.local
  dnsNames: [probe.cert-manager.local]
  duration: 2160h
  issuerRef:
    name: probe-selfsigned
    kind: Issuer
`

func (c *Cluster) startCertManager(ctx context.Context, bins *Binaries, metricsPort int) error {
	fmt.Fprintln(c.log, "Installing the cert-manager CRDs and starting cert-manager.")
	crds, err := os.ReadFile(bins.CertManagerCRDs)
	if err != nil {
		return err
	}
	if err := Apply(ctx, c.Config, crds); err != nil {
		return fmt.Errorf("installing the cert-manager CRDs: %w", err)
	}
	if err := c.waitFor(ctx, c.apiserver, "the cert-manager CRDs to be established", c.crdsEstablished("cert-manager.io", "acme.cert-manager.io")); err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ProbeNamespace}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	cm, err := c.run("cert-manager", bins.CertManager,
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--cluster-resource-namespace="+ProbeNamespace,
		"--metrics-listen-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--v=2")
	if err != nil {
		return err
	}
	if err := Apply(ctx, c.Config, []byte(probeManifest)); err != nil {
		return fmt.Errorf("creating the probe Certificate: %w", err)
	}
	return c.waitFor(ctx, cm, "cert-manager to issue the probe Certificate", func(ctx context.Context) (bool, error) {
		return CertificateReady(ctx, c, ProbeNamespace, "probe")
	})
}

func (c *Cluster) crdsEstablished(groups ...string) func(context.Context) (bool, error) {
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	return func(ctx context.Context) (bool, error) {
		list, err := c.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		seen := 0
		for _, crd := range list.Items {
			group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
			if !want[group] {
				continue
			}
			seen++
			if !conditionTrue(crd, "Established") {
				return false, nil
			}
		}
		return seen > 0, nil
	}
}

// CertificateReady reports whether a cert-manager Certificate has condition Ready=True for its current
// generation.
func CertificateReady(ctx context.Context, c *Cluster, namespace, name string) (bool, error) {
	cert, err := c.Dynamic.Resource(CertificateGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return conditionTrue(*cert, "Ready"), nil
}

func conditionTrue(obj unstructured.Unstructured, condType string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, raw := range conds {
		cond, ok := raw.(map[string]any)
		if !ok || cond["type"] != condType || cond["status"] != "True" {
			continue
		}
		if og, ok := cond["observedGeneration"].(int64); ok && og < obj.GetGeneration() {
			return false
		}
		return true
	}
	return false
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// CertificateRevision returns a Certificate's status.revision and the serial number (hex) of the leaf in
// its Secret's tls.crt, for tests and the demo that follow renewals.
func CertificateRevision(ctx context.Context, c *Cluster, namespace, name string) (int64, string, error) {
	cert, err := c.Dynamic.Resource(CertificateGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, "", err
	}
	rev, _, _ := unstructured.NestedInt64(cert.Object, "status", "revision")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	secret, err := c.Client.CoreV1().Secrets(namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return rev, "", err
	}
	bundle, err := certs.ParsePEM(secret.Data[corev1.TLSCertKey])
	if err != nil {
		return rev, "", fmt.Errorf("secret %s/%s tls.crt: %w", namespace, secretName, err)
	}
	return rev, bundle.Leaf().SerialNumber, nil
}

// InstallCRDs applies CustomResourceDefinition manifests (server-side, so it is idempotent) and waits
// until the CRDs of group are established.
func (c *Cluster) InstallCRDs(ctx context.Context, group string, manifests ...[]byte) error {
	for _, m := range manifests {
		if err := Apply(ctx, c.Config, m); err != nil {
			return fmt.Errorf("installing the %s CRDs: %w", group, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	established := c.crdsEstablished(group)
	for {
		ok, err := established(ctx)
		if ok && err == nil {
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for the %s CRDs to be established: %w", group, err)
		}
	}
}
