package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/probe"
)

func TestProbeAnnotationsPreferTheWorkloadsThenThePodTemplates(t *testing.T) {
	deploy := func(workload, template string) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		if workload != "" {
			d.Annotations = map[string]string{api.AnnotationProbe: workload}
		}
		if template != "" {
			d.Spec.Template.Annotations = map[string]string{api.AnnotationProbe: template}
		}
		return d
	}
	tests := map[string]struct {
		d    *appsv1.Deployment
		want string
	}{
		"the workload's annotation wins over the pod template's":           {deploy("8443", "9443"), "8443"},
		"the pod template's annotation applies when the workload has none": {deploy("", "9443"), "9443"},
		"neither: no annotation, container ports decide":                   {deploy("", ""), ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := probeAnnotations(tt.d)[api.AnnotationProbe]; got != tt.want {
				t.Errorf("probe annotation = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProbeTableShowsShortFingerprintsAndWhyAPortWasNotProbed(t *testing.T) {
	cur, old := strings.Repeat("a", 64), strings.Repeat("b", 64)
	served := []probe.Served{
		{Port: probe.Port{Number: 8443}, Leaf: certs.Certificate{Fingerprint: old, DNSNames: []string{"api.shop.example"}}},
		{Port: probe.Port{Number: 9443, Name: "admin-tls"}, Err: errors.New("connection refused")},
	}
	probes := []WorkloadProbe{
		{Namespace: "shop", Kind: "Deployment", Name: "api", Expected: []string{cur}, Pods: []PodProbe{podProbe("api-1", served, probe.Expectation{Leaves: []string{cur}, Names: []string{"api.shop.example"}})}},
		{Namespace: "shop", Kind: "StatefulSet", Name: "db", Expected: []string{cur}, Problem: `annotation certrollout.io/probe="x": "x" names no container port`},
	}
	var b strings.Builder
	if err := probeTable(&b, probes); err != nil {
		t.Fatal(err)
	}
	golden(t, "probe-table", b.String())
}

// TestPortForwardDialerSaysWhichRightIsMissing dials as a user with no rights: the API server's refusal
// becomes the message that names the RBAC verb.
func TestPortForwardDialerSaysWhichRightIsMissing(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	if _, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody-" + ns}
	d, err := probe.NewPortForwardDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.DialContext(context.Background(), "tcp", ns+"/p:8443")
	if err == nil || !strings.Contains(err.Error(), "create on pods/portforward in namespace "+ns) {
		t.Fatalf("dial as a user without rights: %v; want the missing RBAC verb named", err)
	}
}
