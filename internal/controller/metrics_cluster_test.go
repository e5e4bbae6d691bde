package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// sample reads one series of the controller's registry, as Prometheus would scrape it; ok is false when
// the series is absent.
func sample(t *testing.T, name string, labels map[string]string) (value float64, ok bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// waitSample waits until the series has the value.
func waitSample(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	clustertest.Eventually(t, 2*time.Minute, fmt.Sprintf("%s%v to be %g", name, labels, want), func(context.Context) (bool, error) {
		got, ok := sample(t, name, labels)
		if !ok {
			return false, fmt.Errorf("absent")
		}
		if got != want {
			return false, fmt.Errorf("it is %g", got)
		}
		return true, nil
	})
}

// A restart whose new pods cannot start (a quota allows no surge pod) leaves the old pods running on the
// old certificate: the stale-pod count says so until they are gone, and the running-certificate expiry is
// the old certificate's, not the renewed one's.
func TestStalePodsAreReportedUntilTheRestartReplacesThemAndTheRunningExpiryIsTheOldCertificates(t *testing.T) {
	e := newEnv(t, testOptions())
	now := time.Now()
	ca := testgen.CA(t, "root")
	oldLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Hour), now.Add(3*24*time.Hour)))
	e.tlsSecret("api-tls", oldLeaf, ca, nil)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")
	e.start()
	e.waitLedger("web", "")
	web := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "web"}
	oldExpiry := float64(oldLeaf.X509.NotAfter.Unix())
	waitSample(t, "certrollout_workload_stale_pods", web, 0)
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web, oldExpiry)

	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-surge", Namespace: e.ns},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}},
	}
	ctx := context.Background()
	if _, err := e.c.Client.CoreV1().ResourceQuotas(e.ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the quota to be enforced", func(ctx context.Context) (bool, error) {
		q, err := e.c.Client.CoreV1().ResourceQuotas(e.ns).Get(ctx, "no-surge", metav1.GetOptions{})
		return err == nil && len(q.Status.Hard) > 0, err
	})
	renewedBefore, _ := sample(t, "certrollout_renewal_to_restart_seconds", nil)
	newLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Minute), now.Add(90*24*time.Hour)))
	e.tlsSecret("api-tls", newLeaf, ca, nil)
	clustertest.Eventually(t, time.Minute, "the controller to restart web", func(context.Context) (bool, error) {
		return e.get("web").Spec.Template.Annotations[api.AnnotationRestartHash] != "", nil
	})
	if got, _ := sample(t, "certrollout_renewal_to_restart_seconds", nil); got != renewedBefore+1 {
		t.Errorf("renewal_to_restart observed %g times for one restart after a renewal, want once", got-renewedBefore)
	}
	// The restart is made; its pods are not. Before this fix the count went to 0 here.
	waitSample(t, "certrollout_workload_stale_pods", web, 2)
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web, oldExpiry)
	waitSample(t, "certrollout_workload_certificate_expiry_timestamp_seconds", web, float64(newLeaf.X509.NotAfter.Unix()))
	if got := e.get("web").Annotations[api.AnnotationPreviousNotAfter]; got != oldLeaf.X509.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("%s = %q, want the old certificate's expiry", api.AnnotationPreviousNotAfter, got)
	}
	readyBefore, _ := sample(t, "certrollout_restart_to_ready_seconds", nil)

	if _, err := e.c.Client.CoreV1().ResourceQuotas(e.ns).Patch(ctx, "no-surge", types.MergePatchType,
		[]byte(`{"spec":{"hard":{"pods":"10"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitAvailable("web")
	waitSample(t, "certrollout_workload_stale_pods", web, 0)
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web, float64(newLeaf.X509.NotAfter.Unix()))
	clustertest.Eventually(t, time.Minute, "restart_to_ready to time the restart", func(context.Context) (bool, error) {
		got, _ := sample(t, "certrollout_restart_to_ready_seconds", nil)
		return got > readyBefore, nil
	})
}
