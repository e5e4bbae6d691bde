package nodeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, clustertest.WithoutCertManager())
}

// TestPublish runs the agent against the local cluster: it creates the node's NodeCertificates owned by
// the Node, does not rewrite an unchanged status before the heartbeat, writes on the heartbeat and on a
// renewal, keeps since across an agent restart, and the object goes with the Node.
func TestPublish(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	n := newKubeadmNode(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = api.AddToScheme(scheme)
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	nodeName := "cp-agent-" + hex.EncodeToString(suffix)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	if err := cl.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Delete(context.Background(), node) })

	// The apiserver's mirror pod, as the kubelet posts it.
	started := metav1.NewTime(time.Now().UTC().Truncate(time.Second).Add(time.Minute))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + nodeName, Namespace: metav1.NamespaceSystem,
			Labels:      map[string]string{"component": KubeAPIServer},
			Annotations: map[string]string{AnnotationConfigMirror: "hash", "kubernetes.io/config.source": "file"}},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: KubeAPIServer, Image: "registry.k8s.io/kube-apiserver:v1.34.4"}}},
	}
	if err := cl.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Delete(context.Background(), pod) })
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: KubeAPIServer,
		Image: pod.Spec.Containers[0].Image, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}}}
	if err := cl.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}

	clock := started.Add(2 * time.Minute)
	r := &router{routes: map[string]string{}}
	newAgent := func() *Agent {
		return &Agent{Node: nodeName, Scan: ScanOptions{HostRoot: n.root}, Client: cl, Dial: r.dial, ProbeTimeout: time.Second,
			Heartbeat: 5 * time.Minute, Now: func() time.Time { return clock }, AgentVersion: "test", Log: logr.Discard()}
	}
	a := newAgent()
	get := func() *api.NodeCertificates {
		t.Helper()
		var obj api.NodeCertificates
		if err := cl.Get(ctx, client.ObjectKey{Name: nodeName}, &obj); err != nil {
			t.Fatal(err)
		}
		return &obj
	}
	once := func(a *Agent, wantWrote bool, why string) {
		t.Helper()
		_, wrote, err := a.Once(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if wrote != wantWrote {
			t.Fatalf("%s: wrote %v, want %v", why, wrote, wantWrote)
		}
	}

	if a.Ready() {
		t.Error("ready before publishing")
	}
	once(a, true, "first scan")
	if !a.Ready() {
		t.Error("not ready after publishing")
	}
	obj := get()
	if len(obj.OwnerReferences) != 1 || obj.OwnerReferences[0].Kind != "Node" || obj.OwnerReferences[0].UID != node.UID ||
		obj.OwnerReferences[0].Controller == nil || *obj.OwnerReferences[0].Controller {
		t.Errorf("ownerReferences %+v, want the Node %s (controller=false)", obj.OwnerReferences, node.UID)
	}
	st := obj.Status
	if st.FileCount != 17 || len(st.Files) != 17 || st.AgentVersion != "test" || st.KubeadmDir != "/etc/kubernetes" || st.ObservedAt == nil || !st.ObservedAt.Time.Equal(clock) {
		t.Errorf("status: fileCount %d files %d agentVersion %q kubeadmDir %q observedAt %v", st.FileCount, len(st.Files), st.AgentVersion, st.KubeadmDir, st.ObservedAt)
	}
	apis := component(st, KubeAPIServer)
	if apis.StartedAt == nil || !apis.StartedAt.Time.Equal(started.Time) || apis.State != api.ComponentUnreachable {
		t.Errorf("kube-apiserver: %+v (its mirror pod started %s; nothing listens on 198.18.0.1:6443)", apis, started)
	}
	if etcd := component(st, Etcd); etcd.State != api.ComponentNotRunning {
		t.Errorf("etcd without a mirror pod: %+v", etcd)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Reason != api.ReasonScanned {
		t.Errorf("conditions %+v", st.Conditions)
	}
	rv := obj.ResourceVersion

	clock = clock.Add(time.Minute)
	once(a, false, "nothing changed and the heartbeat is not due")
	if got := get(); got.ResourceVersion != rv {
		t.Errorf("the object was rewritten: resourceVersion %s -> %s", rv, got.ResourceVersion)
	}

	clock = clock.Add(5 * time.Minute)
	once(a, true, "heartbeat")
	if got := get(); !got.Status.ObservedAt.Time.Equal(clock) {
		t.Errorf("observedAt %s after the heartbeat, want %s", got.Status.ObservedAt, clock)
	}

	// The file's modification time is real time, behind this test's clock: since is then the last
	// published scan, the earliest the change can have happened.
	n.renew("apiserver")
	renewedAt := clock
	clock = clock.Add(time.Minute)
	once(a, true, "apiserver.crt renewed")
	if f := fileByNameIn(get().Status.Files, "apiserver"); !f.Since.Time.Equal(renewedAt) {
		t.Errorf("apiserver since %s, want %s", f.Since, renewedAt)
	}

	// A restarted agent reads since from what it published.
	clock = clock.Add(time.Minute)
	once(newAgent(), false, "a restarted agent that sees the same")
	if f := fileByNameIn(get().Status.Files, "apiserver"); !f.Since.Time.Equal(renewedAt) {
		t.Errorf("apiserver since %s after an agent restart, want %s", f.Since, renewedAt)
	}

	// The Node owns it: the garbage collector removes it with the Node.
	if err := cl.Delete(ctx, node); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "NodeCertificates "+nodeName+" garbage collected", func(ctx context.Context) (bool, error) {
		err := cl.Get(ctx, client.ObjectKey{Name: nodeName}, &api.NodeCertificates{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}
