package chart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/certrollout/certrollout/internal/clustertest"
)

// warnings collects the API server's warnings (Pod Security, deprecations, unknown fields).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// prometheusOperatorKinds are not served by the local cluster (no Prometheus Operator CRDs); the render
// tests check them instead.
var prometheusOperatorKinds = map[string]bool{"ServiceMonitor": true, "PodMonitor": true, "PrometheusRule": true}

// restricted labels a namespace so Pod Security admission enforces, and warns about, the restricted
// profile, as a hardened cluster's namespace would.
func restricted(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	patch := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/warn":"restricted"}}}`
	if _, err := client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestEveryRenderedObjectIsAcceptedByTheAPIServerAndThePodMeetsTheRestrictedProfile(t *testing.T) {
	c := clustertest.Cluster(t)
	home, team := clustertest.Namespace(t), clustertest.Namespace(t)
	restricted(t, c.Client, home)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	release := "apply-" + hex.EncodeToString(suffix)

	w := &warnings{}
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	for name, doc := range map[string]string{
		"every toggle on": `
serviceMonitor: {enabled: true}
podMonitor: {enabled: true, authorization: {type: Bearer, credentials: {name: prometheus-token, key: token}}}
metrics: {reader: {serviceAccount: {name: prometheus, namespace: monitoring}}}
prometheusRule: {enabled: true}
grafanaDashboard: {enabled: true}
networkPolicy: {enabled: true, ingress: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}]
commonLabels: {team: platform}
commonAnnotations: {owner: sre}
`,
		"namespaced mode": fmt.Sprintf("watchNamespaces: [%s]\nreplicaCount: 1\nleaderElection: {enabled: false}\n", team),
	} {
		t.Run(name, func(t *testing.T) {
			r := renderRelease(t, release, home, values(t, doc))
			applied, skipped := 0, 0
			for _, u := range r.Objects {
				if prometheusOperatorKinds[u.GetKind()] {
					skipped++
					t.Logf("skipped %s: the local cluster serves no monitoring.coreos.com", key(u))
					continue
				}
				gvk := u.GroupVersionKind()
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Errorf("%s: %v", key(u), err)
					continue
				}
				var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
				if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
					if u.GetNamespace() == "" {
						t.Errorf("%s is namespaced but rendered without a namespace", key(u))
						continue
					}
					ri = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
				}
				data, err := u.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				force := true
				_, err = ri.Patch(context.Background(), u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
					FieldManager: "chart-test", Force: &force, DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict",
				})
				if err != nil {
					t.Errorf("the API server rejected %s: %v", key(u), err)
				}
				applied++
				for _, msg := range w.take() {
					t.Errorf("the API server warned about %s: %s", key(u), msg)
				}
			}
			if applied+skipped != len(r.Objects) || applied < 9 {
				t.Errorf("%d objects applied, %d skipped, of %v", applied, skipped, r.keys())
			}

			// A pod of the Deployment's template is admitted in a namespace that enforces "restricted".
			d := r.deployment(t)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "controller-", Namespace: home, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
			pod.Spec.ServiceAccountName = "default" // the chart's ServiceAccount exists only in the dry run above
			if _, err := client.CoreV1().Pods(home).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("a pod of the controller's template is not admitted under Pod Security restricted: %v", err)
			}
			for _, msg := range w.take() {
				t.Errorf("the API server warned about the controller's pod: %s", msg)
			}
		})
	}

	// The check is live: a pod that may escalate privileges is refused in that namespace.
	r := renderRelease(t, release, home, nil)
	spec := r.deployment(t).Spec.Template.Spec
	spec.ServiceAccountName = "default"
	spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "escalating-", Namespace: home}, Spec: spec}
	_, err = client.CoreV1().Pods(home).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "allowPrivilegeEscalation") {
		t.Errorf("a pod without allowPrivilegeEscalation=false was not refused as restricted would: %v", err)
	}
	_ = w.take()
}
