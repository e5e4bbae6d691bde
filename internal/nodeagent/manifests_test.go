package nodeagent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

const movedAPIServer = `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
  labels: {component: kube-apiserver, tier: control-plane}
spec:
  containers:
  - name: kube-apiserver
    command:
    - kube-apiserver
    - --bind-address=0.0.0.0
    - --secure-port
    - "8443"
    - --tls-cert-file=/pki/apiserver.crt
    - --etcd-certfile=/pki/etcd/client.crt
    - --proxy-client-cert-file=/elsewhere/front-proxy-client.crt
    volumeMounts:
    - {name: pki, mountPath: /pki}
    - {name: etcd, mountPath: /pki/etcd}
  volumes:
  - name: pki
    hostPath: {path: /etc/kubernetes/pki}
  - name: etcd
    hostPath: {path: /srv/etcd-client}
`

func TestParseManifest(t *testing.T) {
	c, err := ParseManifest([]byte(movedAPIServer))
	if err != nil {
		t.Fatal(err)
	}
	want := []Use{
		{Path: "/etc/kubernetes/pki/apiserver.crt", Use: api.UseServing, Endpoint: "127.0.0.1:8443", Flag: "--tls-cert-file"},
		{Path: "/srv/etcd-client/client.crt", Use: api.UseClient, Flag: "--etcd-certfile"},
		{Path: "/elsewhere/front-proxy-client.crt", Use: api.UseClient, Flag: "--proxy-client-cert-file", Reloads: true},
	}
	if c.Name != KubeAPIServer || c.PodName != "kube-apiserver" || len(c.Uses) != len(want) {
		t.Fatalf("%+v", c)
	}
	for i := range want {
		if c.Uses[i] != want[i] {
			t.Errorf("use %d: %+v, want %+v (the longest mount wins; an unmounted path stays as it is)", i, c.Uses[i], want[i])
		}
	}
	noPort := "kind: Pod\nmetadata: {name: kube-scheduler, labels: {component: kube-scheduler}}\nspec:\n  containers:\n  - name: kube-scheduler\n    command: [kube-scheduler, --secure-port=0, --kubeconfig=/etc/kubernetes/scheduler.conf]\n"
	if c, err := ParseManifest([]byte(noPort)); err != nil || len(c.Uses) != 1 || c.Uses[0].Use != api.UseClient {
		t.Errorf("a scheduler with --secure-port=0 serves nothing: %+v %v", c, err)
	}
	if _, err := ParseManifest([]byte("kind: Pod\nspec: {containers: []}")); err == nil {
		t.Error("a pod without containers parsed")
	}
	if _, err := ParseManifest([]byte("{{")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestManifestsOfRealKubeadm(t *testing.T) {
	n := newKubeadmNode(t)
	comps, problems := Manifests(ScanOptions{HostRoot: n.root})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	type use struct{ path, use, endpoint string }
	want := map[string][]use{
		Etcd: {
			{"/etc/kubernetes/pki/etcd/server.crt", api.UseServing, "127.0.0.1:2379"},
			{"/etc/kubernetes/pki/etcd/peer.crt", api.UseServing, "198.18.0.1:2380"},
		},
		KubeAPIServer: {
			{"/etc/kubernetes/pki/apiserver.crt", api.UseServing, "198.18.0.1:6443"},
			{"/etc/kubernetes/pki/apiserver-etcd-client.crt", api.UseClient, ""},
			{"/etc/kubernetes/pki/apiserver-kubelet-client.crt", api.UseClient, ""},
			{"/etc/kubernetes/pki/front-proxy-client.crt", api.UseClient, ""},
		},
		KubeControllerManager: {{"", api.UseServing, "127.0.0.1:10257"}, {"/etc/kubernetes/controller-manager.conf", api.UseClient, ""}},
		KubeScheduler:         {{"", api.UseServing, "127.0.0.1:10259"}, {"/etc/kubernetes/scheduler.conf", api.UseClient, ""}},
	}
	if len(comps) != len(want) {
		t.Fatalf("components %+v", comps)
	}
	for _, c := range comps {
		w := want[c.Name]
		if len(c.Uses) != len(w) || c.Manifest != "/etc/kubernetes/manifests/"+c.Name+".yaml" {
			t.Errorf("%s: %+v", c.Name, c)
			continue
		}
		for i := range w {
			if got := (use{c.Uses[i].Path, c.Uses[i].Use, c.Uses[i].Endpoint}); got != w[i] {
				t.Errorf("%s use %d: %+v, want %+v", c.Name, i, got, w[i])
			}
		}
	}
}

func TestStarted(t *testing.T) {
	started := metav1.NewTime(t0)
	pod := func(name, component string, running bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"component": component}}}
		cs := corev1.ContainerStatus{Name: component}
		if running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return p
	}
	c := Component{Name: Etcd, PodName: "etcd"}
	cases := map[string]struct {
		pods    []corev1.Pod
		running bool
		why     string
	}{
		"runs since its running container's start":       {[]corev1.Pod{pod("etcd-cp-1", Etcd, true)}, true, ""},
		"finds the mirror pod by its component label":    {[]corev1.Pod{pod("etcd-x", Etcd, true)}, true, ""},
		"does not run without a mirror pod":              {nil, false, "no mirror pod etcd-cp-1 in kube-system"},
		"does not run when no container of its pod runs": {[]corev1.Pod{pod("etcd-cp-1", Etcd, false)}, false, "no container of mirror pod etcd-cp-1 runs"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			running, at, why := Started(tc.pods, c, "cp-1")
			if running != tc.running || why != tc.why || (running && (at == nil || !at.Equal(t0))) {
				t.Errorf("running %v at %v why %q", running, at, why)
			}
		})
	}
}
