package chart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// The chart's node agent RBAC and admission policy, applied to a real API server: the agent's
// ServiceAccount, with a token bound to a pod on node A (what the kubelet mounts into the DaemonSet's
// pod), may write NodeCertificates A and its status, and nothing about node B; a token of the same
// ServiceAccount not bound to a pod may write none.
func TestTheNodeAgentWritesOnlyTheNodeCertificatesOfTheNodeItsTokenIsBoundTo(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns := clustertest.Namespace(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	release := "agent-" + hex.EncodeToString(suffix)
	ctx := context.Background()

	r := renderRelease(t, release, ns, values(t, "nodeAgent: {enabled: true}"))
	manifest := r.manifest(t, func(u *unstructured.Unstructured) bool {
		switch u.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "DaemonSet":
			return !strings.Contains(u.GetName(), "node-agent") && !strings.Contains(u.GetName(), "node-certificates")
		}
		return true
	})
	if err := localcluster.Apply(ctx, c.Config, manifest); err != nil {
		t.Fatalf("applying the node agent's objects: %v", err)
	}
	agent := release + "-certrollout-node-agent"
	t.Cleanup(func() {
		bg := context.Background()
		_ = c.Client.RbacV1().ClusterRoles().Delete(bg, agent, metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(bg, agent, metav1.DeleteOptions{})
		_ = c.Client.RbacV1().Roles("kube-system").Delete(bg, agent, metav1.DeleteOptions{})
		_ = c.Client.RbacV1().RoleBindings("kube-system").Delete(bg, agent, metav1.DeleteOptions{})
		_ = c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(bg, "certrollout.io-node-certificates", metav1.DeleteOptions{})
		_ = c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(bg, "certrollout.io-node-certificates", metav1.DeleteOptions{})
	})

	// Two nodes (kwok keeps them Ready), and a pod of the agent on node A, as the DaemonSet would place it.
	nodeA, nodeB := release+"-a", release+"-b"
	for _, name := range []string{nodeA, nodeB} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	// The DaemonSet places a pod on each of them (and on no other node: none of the cluster's own is labelled
	// a control-plane node).
	clustertest.Eventually(t, time.Minute, "the DaemonSet to schedule a pod on both control-plane nodes", func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node-agent"})
		if err != nil {
			return false, err
		}
		var on []string
		for _, p := range pods.Items {
			on = append(on, p.Spec.NodeName)
		}
		slices.Sort(on)
		if !slices.Equal(on, []string{nodeA, nodeB}) {
			return false, fmt.Errorf("pods on %v", on)
		}
		return true, nil
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "node-agent", Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: agent,
			NodeName:           nodeA,
			Containers:         []corev1.Container{{Name: "node-agent", Image: "certrollout:test"}},
		},
	}
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	if err := api.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// as returns a client that authenticates with a token of the agent's ServiceAccount, bound to ref.
	as := func(ref *authenticationv1.BoundObjectReference) client.Client {
		t.Helper()
		var token string
		clustertest.Eventually(t, time.Minute, "a token of "+agent, func(ctx context.Context) (bool, error) {
			tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, agent, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				ExpirationSeconds: ptr.To[int64](600), BoundObjectRef: ref,
			}}, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			token = tr.Status.Token
			return true, nil
		})
		cfg := rest.AnonymousClientConfig(c.Config)
		cfg.BearerToken = token
		cl, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	onA := as(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
	unbound := as(nil)
	admin, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, name := range []string{nodeA, nodeB} {
			_ = admin.Delete(context.Background(), &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	})

	// The RBAC and the policy are in force once the API server's caches have them: wait until the agent's
	// write to its own node goes through (it may be Forbidden by RBAC for a moment, never by the policy).
	own := &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: nodeA}}
	clustertest.Eventually(t, time.Minute, "the agent on "+nodeA+" to create NodeCertificates "+nodeA, func(ctx context.Context) (bool, error) {
		err := onA.Create(ctx, own)
		if err != nil && strings.Contains(err.Error(), "certrollout.io-node-certificates") {
			t.Fatalf("the policy refused the agent its own node's NodeCertificates: %v", err)
		}
		return err == nil, err
	})
	observed := metav1.Now()
	own.Status = api.NodeCertificatesStatus{ObservedAt: &observed, KubeadmDir: "/etc/kubernetes"}
	if err := onA.Status().Update(ctx, own); err != nil {
		t.Errorf("the agent on %s may not update its own status: %v", nodeA, err)
	}
	own.Labels = map[string]string{"example": "yes"}
	if err := onA.Update(ctx, own); err != nil {
		t.Errorf("the agent on %s may not update its own NodeCertificates: %v", nodeA, err)
	}

	wantRefused := func(what string, err error, message string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s was allowed", what)
			return
		}
		t.Logf("%s: refused: %v", what, err)
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			t.Errorf("%s: %v, want Forbidden by the admission policy", what, err)
		}
		if !strings.Contains(err.Error(), "certrollout.io-node-certificates") || !strings.Contains(err.Error(), message) {
			t.Errorf("%s was refused with %q, want the policy's message containing %q", what, err, message)
		}
	}
	other := &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: nodeB}}
	// The API server enforces a new admission policy once its policy cache has it, which can come after
	// RBAC: wait for that with dry runs (admission runs, nothing is stored). A policy that never refuses
	// fails here.
	clustertest.Eventually(t, time.Minute, "the admission policy to be in force", func(ctx context.Context) (bool, error) {
		err := onA.Create(ctx, other.DeepCopy(), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "certrollout.io-node-certificates"), nil
	})
	wantRefused("the agent on "+nodeA+" creating NodeCertificates "+nodeB, onA.Create(ctx, other),
		"the node agent on node "+nodeA+" may write only NodeCertificates "+nodeA+", not "+nodeB)

	// NodeCertificates B, written by an administrator (the policy is only the agent's): the agent on A may
	// not change it or its status.
	if err := admin.Create(ctx, other); err != nil {
		t.Fatalf("an administrator may not create NodeCertificates %s: %v", nodeB, err)
	}
	other.Status = api.NodeCertificatesStatus{ObservedAt: &observed, KubeadmDir: "/etc/kubernetes"}
	wantRefused("the agent on "+nodeA+" updating the status of "+nodeB, onA.Status().Update(ctx, other.DeepCopy()),
		"may write only NodeCertificates "+nodeA+", not "+nodeB)
	other.Labels = map[string]string{"example": "yes"}
	wantRefused("the agent on "+nodeA+" updating "+nodeB, onA.Update(ctx, other.DeepCopy()),
		"may write only NodeCertificates "+nodeA+", not "+nodeB)
	if err := admin.Status().Update(ctx, other.DeepCopy()); err != nil {
		t.Errorf("an administrator may not update the status of %s: %v", nodeB, err)
	}

	// A token of the same ServiceAccount bound to no pod carries no node: every write is refused.
	if err := unbound.Get(ctx, client.ObjectKey{Name: nodeA}, own); err != nil {
		t.Fatalf("the unbound token may not even read (RBAC): %v", err)
	}
	own.Status.AgentVersion = "forged"
	wantRefused("an unbound token updating the status of "+nodeA, unbound.Status().Update(ctx, own.DeepCopy()),
		"writes NodeCertificates only with a token bound to a pod on a node")
	wantRefused("an unbound token creating NodeCertificates", unbound.Create(ctx, &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: release + "-c"}}),
		"writes NodeCertificates only with a token bound to a pod on a node")

	// The checks were live: what the agent on A wrote is there, nothing of it reached B.
	var got api.NodeCertificates
	if err := admin.Get(ctx, client.ObjectKey{Name: nodeA}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.KubeadmDir != "/etc/kubernetes" || got.Status.AgentVersion == "forged" || got.Labels["example"] != "yes" {
		t.Errorf("NodeCertificates %s holds %+v, %v: want the agent's writes and not the unbound token's", nodeA, got.Status, got.Labels)
	}
	if err := admin.Get(ctx, client.ObjectKey{Name: nodeB}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["example"] == "yes" {
		t.Errorf("NodeCertificates %s was changed by the agent on %s", nodeB, nodeA)
	}
}
