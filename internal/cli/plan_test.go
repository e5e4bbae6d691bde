package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
	"github.com/certrollout/certrollout/internal/testgen"
)

// planFixture builds, without a cluster, the controller's view of four workloads on one Secret whose
// certificate was renewed at `renewed`: an enabled one, one not enabled, a paused one, and one governed by
// a policy whose window is closed.
func planFixture(t *testing.T, now, renewed time.Time) ([]controller.Workload, map[string]string) {
	t.Helper()
	ca := testgen.CA(t, "root", testgen.WithValidity(now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour)))
	leaf := testgen.Leaf(t, ca, "web.example", testgen.WithValidity(renewed, renewed.Add(90*24*time.Hour)))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-tls"},
		Data: map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "ca.crt": ca.PEM()}}
	src := inventory.FromSecret(secret)
	src.Issuance = &inventory.Issuance{Certificate: "web", Revision: 3, Ready: true, Current: true}
	ref := consumers.Ref{Kind: consumers.KindSecret, Name: "web-tls"}
	started := renewed.Add(-time.Hour)
	pods := []decide.Pod{{Name: "p-1", Started: started}, {Name: "p-2", Started: started}}
	var out []controller.Workload
	mk := func(name string, annotations map[string]string, paused bool, pv *controller.PolicyView) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: annotations}}
		uses := consumers.FromPodSpec(ptrPodSpec(testgen.PodSpec(testgen.WithSecretVolume("web-tls"))), nil)
		in := decide.Input{Now: now, Workload: decide.Workload{Kind: api.KindDeployment, Namespace: "shop", Name: name, Annotations: annotations, Paused: paused},
			Set: inventory.SetOf(uses, map[consumers.Ref]*inventory.Source{ref: src}), Pods: pods, MinRestartInterval: 10 * time.Minute}
		if pv != nil {
			in.Policy = pv.Policy.Name
		}
		out = append(out, controller.Workload{Kind: api.KindDeployment, Namespace: "shop", Name: name, Object: d, Uses: uses,
			Sources: map[consumers.Ref]*inventory.Source{ref: src}, Input: in, Decision: decide.Restart(in), Policy: pv})
	}
	oldLedger := map[string]string{api.AnnotationEnabled: "true", api.AnnotationCertificateHash: "0123456789abcdef",
		api.AnnotationCertificateNotAfter: now.Add(48 * time.Hour).Format(time.RFC3339)}
	mk("web", oldLedger, false, nil)
	mk("idle", nil, false, nil)
	mk("frozen", oldLedger, true, nil)
	win, err := schedule.Parse("0 2 * * 6", 3*time.Hour, "Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	pol := api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "build-service"}, Spec: api.RolloutPolicySpec{
		Quiesce:        []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Hour}}},
		ExpiryDeadline: &metav1.Duration{Duration: 72 * time.Hour},
	}}
	runningNotAfter := now.Add(48 * time.Hour)
	pv := &controller.PolicyView{Policy: pol, Window: schedule.At([]schedule.Window{win}, now), Deadline: pol.Spec.DeadlineFor(runningNotAfter),
		Gate: orchestrate.StartGate(orchestrate.Start{Policy: &orchestrate.Policy{Name: pol.Name, Spec: pol.Spec, Windows: []schedule.Window{win}}, NotAfter: runningNotAfter, Now: now})}
	mk("build", map[string]string{api.AnnotationCertificateHash: "0123456789abcdef"}, false, pv)
	// Fingerprints, serials and set hashes come from random keys: golden files name them by role.
	leafFacts := src.Certificates([]string{"tls.crt"})[0]
	if leafFacts.Subject != "CN=web.example" {
		t.Fatalf("tls.crt starts with %s", leafFacts.Subject)
	}
	replace := map[string]string{leafFacts.SerialNumber: "<leaf-serial>", out[0].Decision.Set.Hash: "<current-hash>"}
	fp := leafFacts.Fingerprint
	replace[fp] = "<leaf-sha256>"
	replace[fp[:8]] = "<leaf-sha>"
	replace[out[0].Decision.Set.Hash[:8]] = "<cur>"
	return out, replace
}

func ptrPodSpec(s corev1.PodSpec) *corev1.PodSpec { return &s }

func normalize(s string, replace map[string]string) string {
	// Longest first, so that a hash's prefix does not replace part of the whole hash.
	for len(replace) > 0 {
		longest := ""
		for k := range replace {
			if len(k) > len(longest) {
				longest = k
			}
		}
		s = strings.ReplaceAll(s, longest, replace[longest])
		delete(replace, longest)
	}
	return s
}

func TestPlanOutputFromTheControllersDecisions(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) // a Tuesday: the Saturday window is closed
	renewed := now.Add(-30 * time.Minute)
	workloads, replace := planFixture(t, now, renewed)
	var items []WorkloadPlan
	for i := range workloads {
		items = append(items, planOf(&workloads[i], now, nil))
	}
	byName := map[string]WorkloadPlan{}
	for _, p := range items {
		byName[p.Name] = p
	}
	cases := map[string]struct {
		name, action, reason, next string
	}{
		"an enabled workload on a renewed certificate restarts now":                 {"web", "Restart", api.ReasonCertificateRenewed, "restarts it now"},
		"a workload that did not opt in is reported, not restarted":                 {"idle", "None", api.ReasonNotEnabled, "nothing: not enabled"},
		"a paused Deployment is blocked and says why":                               {"frozen", "Block", api.ReasonDeploymentPaused, "the Deployment is paused"},
		"a governed workload waits for its deadline, which comes before the window": {"build", "Delegate", api.ReasonGovernedByPolicy, "RolloutPolicy build-service starts a CertRollout now, outside its windows"},
	}
	for sentence, c := range cases {
		p := byName[c.name]
		if p.Action != c.action || p.Reason != c.reason || !strings.Contains(p.Next, c.next) {
			t.Errorf("%s: got action %s reason %s next %q", sentence, p.Action, p.Reason, p.Next)
		}
		if len(p.StalePods) != 2 {
			t.Errorf("%s: want both pods stale, got %v", sentence, p.StalePods)
		}
	}
	var table, wide, describe strings.Builder
	if err := planTable(&table, items, false, false, now); err != nil {
		t.Fatal(err)
	}
	if err := planTable(&wide, items, true, true, now); err != nil {
		t.Fatal(err)
	}
	if err := describePlans(&describe, items[:1], now); err != nil {
		t.Fatal(err)
	}
	o := OutputFlag{Output: OutputJSON}
	var doc strings.Builder
	defaults := controller.SettingsOf(controller.DefaultOptions())
	defaults.Version = "" // the build's; not the test's business
	if err := o.printDocument(&doc, PlanReport{APIVersion: ReportAPIVersion, Kind: "PlanReport", GeneratedAt: now,
		Controller: AssumedSettings{Source: "defaults", Settings: defaults}, Items: items}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-table", normalize(table.String(), copyMap(replace)))
	golden(t, "plan-wide", normalize(wide.String(), copyMap(replace)))
	golden(t, "plan-describe", normalize(describe.String(), copyMap(replace)))
	golden(t, "plan-json", normalize(doc.String(), copyMap(replace)))
}

func TestPlanWaitsForTheNextWindowWhenTheDeadlineIsFar(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	next := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	deadline := now.Add(30 * 24 * time.Hour)
	pp := &PlanPolicy{Name: "p", NextWindow: &next, DeadlineAt: &deadline, ExpiryDeadline: "72h0m0s", Quiesce: []PlanQuiesce{{Kind: "Deployment", Name: "workers"}}}
	gate := orchestrate.Gate{Reason: api.ReasonWaitingForWindow, At: next}
	got, at := policyStep(pp, gate)
	if at == nil || !at.Equal(next) || !strings.Contains(got, "next maintenance window") || !strings.Contains(got, "Deployment/workers to zero") {
		t.Fatalf("got %q at %v", got, at)
	}
	pp.Suspended, pp.PendingReason = true, api.ReasonSuspended
	if got, _ := policyStep(pp, gate); !strings.Contains(got, "suspended") {
		t.Fatalf("a suspended policy holds: got %q", got)
	}
	pp.Invalid, pp.PendingReason = "windows[0]: bad cron", api.ReasonInvalidPolicy
	if got, _ := policyStep(pp, gate); !strings.Contains(got, "invalid (windows[0]: bad cron)") {
		t.Fatalf("an invalid policy holds and says why: got %q", got)
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestParseWorkloadArgAcceptsKubectlNames(t *testing.T) {
	for in, want := range map[string]WorkloadArg{
		"deployment/web": {api.KindDeployment, "web"}, "deploy/web": {api.KindDeployment, "web"},
		"Deployment/web": {api.KindDeployment, "web"}, "sts/db": {api.KindStatefulSet, "db"},
		"ds/agent": {api.KindDaemonSet, "agent"}, "cronjob/report": {api.KindCronJob, "report"}, "pod/tool": {api.KindPod, "tool"},
	} {
		got, err := ParseWorkloadArg(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"web", "service/web", "deployment/", "deployment/a/b"} {
		if _, err := ParseWorkloadArg(bad); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

// planEnv creates, in a namespace of the test cluster, a Secret whose certificate is renewed after five
// Deployments that use it have started, and a RolloutPolicy with a closed window governing one of them.
func planEnv(t *testing.T) (ns string) {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns = clustertest.Namespace(t)
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	secret := func(leaf *testgen.Cert) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()}}
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret(testgen.Leaf(t, ca, "web")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	enabled := testgen.WithAnnotation(api.AnnotationEnabled, "true")
	onSecret := []testgen.PodOption{testgen.WithSecretVolume("web-tls")}
	web := testgen.Deployment(ns, "web", 2, onSecret, enabled)
	web.Labels = map[string]string{"app": "web"}
	paused := testgen.Deployment(ns, "frozen", 1, onSecret, enabled)
	build := testgen.Deployment(ns, "build", 1, onSecret)
	build.Labels = map[string]string{"role": "build"}
	for _, d := range []*appsv1.Deployment{web, testgen.Deployment(ns, "idle", 1, onSecret), paused, build, testgen.Deployment(ns, "workers", 2, nil)} {
		if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"web", "idle", "frozen", "build", "workers"} {
		waitDeploymentAvailable(t, ns, n)
	}
	patch := []byte(`{"spec":{"paused":true}}`)
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "frozen", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Renewed after every pod started (start times have one-second resolution).
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.Client.CoreV1().Secrets(ns).Update(ctx, secret(testgen.Leaf(t, ca, "web")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr, err := (&KubeFlags{config: c.Config}).Client()
	if err != nil {
		t.Fatal(err)
	}
	pol := &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build-service"}, Spec: api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Quiesce:  []api.QuiesceTarget{{Kind: "Deployment", Name: "workers"}},
		// 03:00 on the 1st of January: closed unless the test runs in that hour.
		Windows:        []api.MaintenanceWindow{{Schedule: "0 3 1 1 *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "UTC"}},
		ExpiryDeadline: &metav1.Duration{Duration: 72 * time.Hour},
	}}
	if err := cr.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	return ns
}

// waitDeploymentAvailable waits until every replica of the Deployment runs its current template.
func waitDeploymentAvailable(t *testing.T, ns, name string) {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.Eventually(t, 2*time.Minute, "Deployment "+name+" to be available", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := *d.Spec.Replicas
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})
}

func TestPlanOnTheClusterSaysWhoIsStaleAndWhatTheControllerWillDo(t *testing.T) {
	ns := planEnv(t)
	kubeconfig := clustertest.Cluster(t).Kubeconfig
	out, stderr, err := run(t, "certrollout", "plan", "--kubeconfig", kubeconfig, "-n", ns, "--settle-period", "0", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var report PlanReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a PlanReport: %v\n%s", err, out)
	}
	if report.Kind != "PlanReport" || report.APIVersion != ReportAPIVersion {
		t.Fatalf("kind %q apiVersion %q", report.Kind, report.APIVersion)
	}
	got := map[string]WorkloadPlan{}
	for _, p := range report.Items {
		got[p.Name] = p
	}
	if _, listed := got["workers"]; listed {
		t.Error("workers uses no certificates and should not be listed")
	}
	want := map[string]struct {
		action, reason string
		stale          int
	}{
		"web":    {"Restart", api.ReasonStalePods, 2},
		"idle":   {"None", api.ReasonNotEnabled, 1},
		"frozen": {"Block", api.ReasonDeploymentPaused, 1},
		"build":  {"Delegate", api.ReasonGovernedByPolicy, 1},
	}
	for name, w := range want {
		p, ok := got[name]
		if !ok {
			t.Errorf("%s not listed", name)
			continue
		}
		if p.Action != w.action || p.Reason != w.reason || len(p.StalePods) != w.stale {
			t.Errorf("%s: got %s/%s with %d stale pod(s) (%s), want %s/%s with %d", name, p.Action, p.Reason, len(p.StalePods), p.Message, w.action, w.reason, w.stale)
		}
	}
	b := got["build"]
	if b.Policy == nil || b.Policy.Name != "build-service" || b.Policy.WindowOpen || b.Policy.NextWindow == nil ||
		len(b.Policy.Quiesce) != 1 || b.Policy.Quiesce[0].Name != "workers" || b.NextAt == nil || !b.NextAt.Equal(*b.Policy.NextWindow) {
		t.Errorf("build: the policy's window, quiesce list and next step are wrong: %+v next %q", b.Policy, b.Next)
	}
	if b.Policy == nil || !strings.HasPrefix(b.Policy.Creates, "build-service-") {
		t.Errorf("build: plan should name the CertRollout the RolloutPolicy controller creates for it, got %+v", b.Policy)
	}
	if s := got["web"].Sources; len(s) != 1 || s[0].Name != "web-tls" || s[0].Leaf == nil || s[0].Leaf.Subject != "CN=web" {
		t.Errorf("web: sources %+v", s)
	}

	// One workload in detail, and what --stale and -l leave out.
	out, stderr, err = run(t, "certrollout", "plan", "--kubeconfig", kubeconfig, "-n", ns, "deploy/build")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, s := range []string{"Workload:      Deployment " + ns + "/build", "Stale:         yes: 1 of 1 pod(s)", "Policy:        RolloutPolicy build-service",
		"Quiesces:    Deployment/workers", "Window:      closed; next opens", "Secret web-tls [all keys] (volume)"} {
		if !strings.Contains(out, s) {
			t.Errorf("describe lacks %q:\n%s", s, out)
		}
	}
	out, _, err = run(t, "certrollout", "plan", "--kubeconfig", kubeconfig, "-n", ns, "-l", "app=web", "--settle-period", "0")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "deployment/web ") || !strings.Contains(lines[1], "restart now") {
		t.Errorf("-l app=web should list web alone, to be restarted now:\n%s", out)
	}
	_, _, err = run(t, "certrollout", "plan", "--kubeconfig", kubeconfig, "-n", ns, "deployment/nope")
	if err == nil || !strings.Contains(err.Error(), "Deployment nope not found in namespace "+ns) {
		t.Errorf("an unknown workload should be named: %v", err)
	}
}

func TestPlanExplainsAnUnreachableCluster(t *testing.T) {
	_, _, err := run(t, "certrollout", "plan", "--kubeconfig", closedKubeconfig(t), "--request-timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Kubernetes API server at https://127.0.0.1:1") {
		t.Fatalf("want a message naming the server, got %v", err)
	}
}

func TestWorkloadNamesCompleteFromTheCluster(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	for _, name := range []string{"web", "worker", "db"} {
		if _, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), testgen.Deployment(ns, name, 0, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := run(t, "certrollout", "__complete", "plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "deploy/w")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out); len(got) < 2 || got[0] != "deploy/web" || got[1] != "deploy/worker" || strings.Contains(out, "db") {
		t.Fatalf("want deploy/web and deploy/worker, got:\n%s", out)
	}
	out, _, _ = run(t, "certrollout", "__complete", "plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "")
	if !strings.Contains(out, "deployment/\nstatefulset/\n") {
		t.Fatalf("want the kinds first, got:\n%s", out)
	}
}

func TestPlanDescribesAPolicysDrainWarning(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	warn := "quiesce[0]: Deployment workers lets its pods take up to 2h0m0s to stop (terminationGracePeriodSeconds), longer than its drainTimeout 1h0m0s"
	var b strings.Builder
	PlanPolicy{Name: "build", WindowOpen: true, Warnings: []string{warn}}.describe(&b, now)
	if !strings.Contains(b.String(), "  Warning:     "+warn+"\n") {
		t.Errorf("describe:\n%s\nwant the warning on its own line", b.String())
	}
}
