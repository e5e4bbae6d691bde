package localcluster

import (
	"context"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Port-forward to kwok pods. `kubectl port-forward` (and certrollout's probe dialer) asks the API server
// for pods/portforward; the API server dials the pod's node at its InternalIP and
// status.daemonEndpoints.kubeletEndpoint.Port over HTTPS, as it would a kubelet. kwok's server plays
// that kubelet: it answers a forward for a pod's port by dialing the target that a kwok PortForward
// object (named after the pod) lists for the port. So the cluster needs:
//   - kwok's server on a known port with TLS (--server-address, --node-port, --tls-*-file): its node
//     template writes --node-ip and --node-port into each node's status;
//   - the API server to dial the InternalIP (kwok's template also lists the controller's own name as
//     Hostname, which resolves to nothing);
//   - the PortForward CRD, which kwok watches with --enable-crds=PortForward. Its schema is open: kwok
//     validates what it reads, and tests write the objects.
// Without a kubelet CA flag the API server does not verify the kubelet's certificate, so kwok may serve
// the cluster's own serving certificate.

// PortForwardGVR is kwok's PortForward resource: one object per pod, named after it, in its namespace.
var PortForwardGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

// kwokNodeIP is the address the API server dials for every kwok node: kwok's server listens there.
const kwokNodeIP = "127.0.0.1"

// kwokServerArgs are kwok's flags for serving port-forward on port with the cluster's serving pair.
func kwokServerArgs(port int, certFile, keyFile string) []string {
	p := strconv.Itoa(port)
	return []string{
		"--server-address=" + kwokNodeIP + ":" + p, "--node-port=" + p, "--node-ip=" + kwokNodeIP,
		"--tls-cert-file=" + certFile, "--tls-private-key-file=" + keyFile,
		"--enable-crds=PortForward",
	}
}

// apiserverKubeletArgs make the API server reach kwok's nodes by their InternalIP.
func apiserverKubeletArgs() []string {
	return []string{"--kubelet-preferred-address-types=InternalIP"}
}

// createPortForwardCRD registers kwok's PortForward kind before kwok starts watching it.
func (c *Cluster) createPortForwardCRD(ctx context.Context) error {
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "portforwards.kwok.x-k8s.io"},
		"spec": map[string]any{
			"group": "kwok.x-k8s.io",
			"scope": "Namespaced",
			"names": map[string]any{"plural": "portforwards", "singular": "portforward", "kind": "PortForward", "listKind": "PortForwardList"},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
	data, err := crd.MarshalJSON()
	if err != nil {
		return err
	}
	if err := Apply(ctx, c.Config, data); err != nil {
		return fmt.Errorf("creating kwok's PortForward CRD: %w", err)
	}
	return c.waitFor(ctx, c.apiserver, "kwok's PortForward CRD to be established", c.crdsEstablished("kwok.x-k8s.io"))
}

// ForwardPodPort makes the API server's port-forward to port of pod namespace/name reach address
// ("127.0.0.1:40123") instead: it writes the pod's kwok PortForward object, replacing the target of any
// earlier call for that pod. kwok reads the object from its watch, so the route may take a moment to
// apply.
func (c *Cluster) ForwardPodPort(ctx context.Context, namespace, name string, port int32, host string, targetPort int) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "PortForward",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(port)},
			"target": map[string]any{"address": host, "port": int64(targetPort)},
		}}},
	}}
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	if err := Apply(ctx, c.Config, data); err != nil {
		return fmt.Errorf("routing port %d of pod %s/%s: %w", port, namespace, name, err)
	}
	return nil
}
