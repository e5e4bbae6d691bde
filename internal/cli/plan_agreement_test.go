package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// startController runs the controller in this process, watching ns only and publishing its settings
// there, until the test ends.
func startController(t *testing.T, ns string, o controller.Options) {
	t.Helper()
	c := clustertest.Cluster(t)
	o.Namespaces, o.AllowRepeatedSetup = []string{ns}, true
	mgr, err := controller.NewManager(c.Config, controller.ManagerOptions{Options: o, MetricsBindAddress: "0", HealthProbeBindAddress: "0", SettingsNamespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

// planJSON runs `certrollout plan -o json` with args and returns the report's items by name.
func planJSON(t *testing.T, ns string, args ...string) (PlanReport, map[string]WorkloadPlan) {
	t.Helper()
	out, stderr, err := run(t, "certrollout", append([]string{"plan", "--kubeconfig", clustertest.Cluster(t).Kubeconfig, "-n", ns, "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr)
	}
	var report PlanReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a PlanReport: %v\n%s", err, out)
	}
	byName := map[string]WorkloadPlan{}
	for _, p := range report.Items {
		byName[p.Name] = p
	}
	return report, byName
}

// TestPlanGivenNoFlagsDecidesAsTheControllerRuns: a controller started with --auto and a long settle
// period publishes its settings; plan, given no flags, finds them and says the workload nobody opted in
// waits for the settle period and then restarts, at the time the controller then restarts it. Told
// --auto=false, plan says what a controller without --auto would (not enabled) and names the override.
func TestPlanGivenNoFlagsDecidesAsTheControllerRuns(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	secret := func() *corev1.Secret {
		leaf := testgen.Leaf(t, ca, "web")
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(t)}}
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := testgen.Deployment(ns, "web", 1, []testgen.PodOption{testgen.WithSecretVolume("web-tls")}) // not annotated
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "web")

	// No controller yet: plan assumes the defaults, and says so.
	report, items := planJSON(t, ns)
	if report.Controller.Source != "defaults" || items["web"].Reason != api.ReasonPodsCurrent && items["web"].Reason != api.ReasonNotEnabled {
		t.Fatalf("before any controller: source %q, web %s/%s", report.Controller.Source, items["web"].Action, items["web"].Reason)
	}

	time.Sleep(1100 * time.Millisecond) // renewed after the pod started (one-second resolution)
	if _, err := c.Client.CoreV1().Secrets(ns).Update(ctx, secret(), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	const settle = 60 * time.Second
	o := controller.DefaultOptions()
	o.Auto, o.SettlePeriod = true, settle
	startController(t, ns, o)
	clustertest.Eventually(t, time.Minute, "the controller to publish its settings", func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, controller.SettingsConfigMap, metav1.GetOptions{})
		return err == nil, nil
	})

	report, items = planJSON(t, ns)
	web := items["web"]
	if report.Controller.Source != "ConfigMap "+ns+"/"+controller.SettingsConfigMap || !report.Controller.Settings.Auto || report.Controller.Settings.SettlePeriod.Duration != settle {
		t.Fatalf("plan should decide with the published settings, assumed %+v", report.Controller)
	}
	if web.Action != string(decide.ActionWait) || web.Reason != api.ReasonSettling || web.NextAt == nil {
		t.Fatalf("web: plan says %s/%s (%s), want Wait/%s: the controller runs with --auto and a %s settle period", web.Action, web.Reason, web.Message, api.ReasonSettling, settle)
	}
	_, told := planJSON(t, ns, "--auto=false")
	if told["web"].Reason != api.ReasonNotEnabled {
		t.Errorf("plan --auto=false: web %s/%s, want %s", told["web"].Action, told["web"].Reason, api.ReasonNotEnabled)
	}
	_, stderr, err := run(t, "certrollout", "plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "--auto=false")
	if err != nil || !strings.Contains(stderr, "Deciding as the controller does (ConfigMap "+ns+"/certrollout-settings") || !strings.Contains(stderr, "overridden here: --auto") {
		t.Errorf("plan should say which settings it assumed and which flag overrode them: %v\n%s", err, stderr)
	}

	// The controller does what plan said, when plan said.
	var restarted time.Time
	clustertest.Eventually(t, 2*settle, "the controller to restart web", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		restarted, err = time.Parse(time.RFC3339, d.Annotations[api.AnnotationRestartedAt])
		return err == nil, nil
	})
	if restarted.Before(web.NextAt.Add(-time.Second)) {
		t.Errorf("the controller restarted web at %s, before the end of the settle period plan announced (%s)", restarted, web.NextAt)
	}
}

// TestPlanShowsTheCascadeHoldTheControllerApplies: a workload uses the CA and a leaf of an Issuer whose
// CA was renewed, and a cascade CertRollout for it has not finished: its restart is due, but waits for the
// leaf, so it rolls once. plan says so (CascadeInProgress, naming the cascade), as the controller decides
// it; once the controller has run the cascade, the workload has rolled exactly once and plan says it is up
// to date.
func TestPlanShowsTheCascadeHoldTheControllerApplies(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(ns, "api", "api-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ca", "api"} {
		clustertest.Eventually(t, 3*time.Minute, "Certificate "+n+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, c, ns, n)
		})
	}
	both := testgen.Deployment(ns, "both", 1, []testgen.PodOption{testgen.WithSecretVolume("ca", "ca.crt"), testgen.WithSecretVolume("api-tls")},
		testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, both, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "both")
	time.Sleep(1100 * time.Millisecond)
	clustertest.Renew(t, c, ns, "ca")

	cr, err := (&KubeFlags{config: c.Config}).Client()
	if err != nil {
		t.Fatal(err)
	}
	caSecret, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := certs.ParsePEM(caSecret.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	cascade := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rotate-ca"}, Spec: api.CertRolloutSpec{
		Trigger: api.RolloutTrigger{Type: api.TriggerCARotated, Message: "the test renewed the CA"},
		Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}, CAFingerprint: caCert.Certificates[0].Fingerprint},
	}}
	if err := cr.Create(ctx, cascade); err != nil {
		t.Fatal(err)
	}
	_, items := planJSON(t, ns, "--settle-period=0")
	p := items["both"]
	if p.Action != string(decide.ActionWait) || p.Reason != api.ReasonCascadeInProgress || !strings.Contains(p.Message, "CertRollout "+ns+"/rotate-ca") {
		t.Fatalf("both: plan says %s/%s (%s), want Wait/%s naming the cascade", p.Action, p.Reason, p.Message, api.ReasonCascadeInProgress)
	}
	if !strings.Contains(p.Next, "waits for the CA cascade to re-issue its leaf") {
		t.Errorf("both: next step %q should say it waits for the cascade", p.Next)
	}

	o := controller.DefaultOptions()
	o.SettlePeriod = 0
	startController(t, ns, o)
	clustertest.Eventually(t, 5*time.Minute, "the cascade to finish", func(ctx context.Context) (bool, error) {
		var ro api.CertRollout
		if err := cr.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rotate-ca"}, &ro); err != nil {
			return false, err
		}
		if ro.Status.Phase == api.PhaseFailed {
			t.Fatalf("the cascade failed: %s", ro.Status.Message)
		}
		return ro.Status.Phase == api.PhaseSucceeded, nil
	})
	clustertest.Eventually(t, 2*time.Minute, "both to run on its new leaf", func(context.Context) (bool, error) {
		_, items := planJSON(t, ns)
		return items["both"].Reason == api.ReasonUpToDate, nil
	})
	rs, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Items) != 2 {
		t.Errorf("Deployment both has %d ReplicaSets, want 2: held for its leaf, it rolled exactly once", len(rs.Items))
	}
}
