package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/testgen"
)

// fakeClock starts at a fixed instant and advances by step each time it is read.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	now := start.Add(-step)
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

var t0 = time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)

func at(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }

// opsChainSnapshots is the status of a policy rollout as a controller writes it, step by step: workers
// quiesced, build restarted, workers restored; and an ungoverned rollout that runs beside it.
func opsChainSnapshots() [][]api.CertRollout {
	base := api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "build-x7k2p"},
		Spec:       api.CertRolloutSpec{Policy: "build", Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "build"}}},
	}
	web := api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "web-4kq9z"},
		Spec:       api.CertRolloutSpec{Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "web"}}},
	}
	step := func(ro api.CertRollout, st api.CertRolloutStatus) api.CertRollout {
		ro.Status = st
		return ro
	}
	workers := func(state api.QuiesceState, msg string, drained, restored bool) []api.QuiescedWorkload {
		q := api.QuiescedWorkload{Kind: "Deployment", Name: "workers", OriginalReplicas: ptr.To[int32](3), State: state, ScaledDownAt: at(time.Second), Message: msg}
		if drained {
			q.DrainedAt = at(13 * time.Second)
		}
		if restored {
			q.RestoredAt = at(40 * time.Second)
		}
		return []api.QuiescedWorkload{q}
	}
	build := func(state api.TargetState, msg string, finished bool) []api.TargetStatus {
		t := api.TargetStatus{Kind: "Deployment", Name: "build", State: state, Message: msg}
		if state != api.TargetPending {
			t.StartedAt = at(14 * time.Second)
		}
		if finished {
			t.FinishedAt = at(38 * time.Second)
		}
		return []api.TargetStatus{t}
	}
	webTarget := func(state api.TargetState, finished bool) []api.TargetStatus {
		t := api.TargetStatus{Kind: "Deployment", Name: "web", State: state, StartedAt: at(2 * time.Second)}
		if finished {
			t.FinishedAt = at(9 * time.Second)
		}
		return []api.TargetStatus{t}
	}
	started := at(time.Second)
	return [][]api.CertRollout{
		{base, web},
		{step(base, api.CertRolloutStatus{Phase: api.PhaseQuiescing, Progress: "0/1 restarted", Message: "quiescing", StartTime: started,
			Quiesced: workers(api.QuiesceDraining, "", false, false), Targets: build(api.TargetPending, "", false)}),
			step(web, api.CertRolloutStatus{Phase: api.PhaseRestarting, Progress: "0/1 restarted", StartTime: at(2 * time.Second), Targets: webTarget(api.TargetRestarting, false)})},
		{step(base, api.CertRolloutStatus{Phase: api.PhaseQuiescing, Progress: "0/1 restarted", Message: "quiescing: 0/1 drained", StartTime: started,
			Quiesced: workers(api.QuiesceDraining, "waiting for 2 pod(s) to terminate", false, false), Targets: build(api.TargetPending, "", false)}),
			step(web, api.CertRolloutStatus{Phase: api.PhaseSucceeded, Progress: "1/1 restarted", Message: "1 target(s) restarted", StartTime: at(2 * time.Second), CompletionTime: at(9 * time.Second), Targets: webTarget(api.TargetSucceeded, true)})},
		{step(base, api.CertRolloutStatus{Phase: api.PhaseRestarting, Progress: "0/1 restarted", Message: "restarting", StartTime: started,
			Quiesced: workers(api.QuiesceDrained, "", true, false), Targets: build(api.TargetRestarting, `Waiting for deployment "build" rollout to finish: 0 of 1 updated replicas are available...`, false)}),
			step(web, api.CertRolloutStatus{Phase: api.PhaseSucceeded, Progress: "1/1 restarted", Message: "1 target(s) restarted", StartTime: at(2 * time.Second), CompletionTime: at(9 * time.Second), Targets: webTarget(api.TargetSucceeded, true)})},
		{step(base, api.CertRolloutStatus{Phase: api.PhaseRestoring, Progress: "1/1 restarted", Message: "restoring", StartTime: started,
			Quiesced: workers(api.QuiesceDrained, "", true, false), Targets: build(api.TargetSucceeded, "", true)}),
			step(web, api.CertRolloutStatus{Phase: api.PhaseSucceeded, Progress: "1/1 restarted", Message: "1 target(s) restarted", StartTime: at(2 * time.Second), CompletionTime: at(9 * time.Second), Targets: webTarget(api.TargetSucceeded, true)})},
		{step(base, api.CertRolloutStatus{Phase: api.PhaseSucceeded, Progress: "1/1 restarted", Message: "1 target(s) restarted, 1 quiesced workload(s) restored", StartTime: started, CompletionTime: at(41 * time.Second),
			Quiesced: workers(api.QuiesceRestored, "", true, true), Targets: build(api.TargetSucceeded, "", true)}),
			step(web, api.CertRolloutStatus{Phase: api.PhaseSucceeded, Progress: "1/1 restarted", Message: "1 target(s) restarted", StartTime: at(2 * time.Second), CompletionTime: at(9 * time.Second), Targets: webTarget(api.TargetSucceeded, true)})},
	}
}

func failingSnapshots() [][]api.CertRollout {
	ro := api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "stuck-abcde"}, Spec: api.CertRolloutSpec{Policy: "build"}}
	waiting := ro
	waiting.Status = api.CertRolloutStatus{Phase: api.PhaseWaitingForWindow, Message: "waiting for the maintenance window at 2026-11-28T02:00:00Z", NextWindow: at(4 * 24 * time.Hour)}
	restarting := ro
	restarting.Status = api.CertRolloutStatus{Phase: api.PhaseRestarting, Progress: "0/2 restarted", StartTime: at(time.Second), Targets: []api.TargetStatus{
		{Kind: "Deployment", Name: "stuck", State: api.TargetRestarting, StartedAt: at(time.Second)},
		{Kind: "StatefulSet", Name: "db", State: api.TargetPending},
	}}
	failed := ro
	failed.Status = api.CertRolloutStatus{Phase: api.PhaseFailed, Progress: "0/2 restarted", Message: "1 of 2 target(s) failed", StartTime: at(time.Second), CompletionTime: at(11 * time.Second),
		Targets: []api.TargetStatus{
			{Kind: "Deployment", Name: "stuck", State: api.TargetFailed, StartedAt: at(time.Second), FinishedAt: at(11 * time.Second),
				Message: "rollout not finished within the health timeout of 10s: Waiting for deployment \"stuck\" rollout to finish: 0 of 1 updated replicas are available..."},
			{Kind: "StatefulSet", Name: "db", State: api.TargetSkipped, Message: "not restarted: an earlier target failed (onFailure: Halt)"},
		},
		Conditions: []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: "TargetFailed", Message: "1 of 2 target(s) failed", LastTransitionTime: *at(11 * time.Second)}},
	}
	return [][]api.CertRollout{{ro}, {waiting}, {restarting}, {failed}}
}

func TestRestartProgressLinesPrintOnlyWhatChanged(t *testing.T) {
	for name, snapshots := range map[string][][]api.CertRollout{"opschain": opsChainSnapshots(), "failed": failingSnapshots(), "cascade": cascadeSnapshots()} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			p := newLinePrinter(&out, fakeClock(t0, time.Second))
			for _, s := range snapshots {
				p.observe(s)
				p.observe(s) // the same status again (a resync, a relist) prints nothing
			}
			golden(t, "restart-progress-lines-"+name, out.String())
		})
	}
}

func TestRestartProgressSaysOnceThatAnEmergencyStartedAndWhy(t *testing.T) {
	msg := "Started at once as an emergency requested by dana: INC-42 (despite the maintenance windows)"
	ro := api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "portal-qn7t5"}, Spec: api.CertRolloutSpec{
		Policy: "portal", Emergency: &api.EmergencySpec{Reason: "INC-42", RequestedBy: "dana"}}}
	quiescing := ro
	quiescing.Status = api.CertRolloutStatus{Phase: api.PhaseQuiescing, StartTime: at(time.Second),
		Conditions: []metav1.Condition{{Type: api.ConditionEmergency, Status: metav1.ConditionTrue, Reason: api.ReasonEmergencyStart, Message: msg, LastTransitionTime: *at(time.Second)}}}
	restarting := quiescing
	restarting.Status.Phase = api.PhaseRestarting
	var out bytes.Buffer
	p := newLinePrinter(&out, fakeClock(t0, time.Second))
	for _, s := range [][]api.CertRollout{{ro}, {quiescing}, {quiescing}, {restarting}} {
		p.observe(s)
	}
	lines := strings.Split(out.String(), "\n")
	if got := strings.Count(out.String(), msg); got != 1 || len(lines) < 2 || !strings.HasSuffix(lines[0], msg) || !strings.Contains(lines[1], "Quiescing") {
		t.Errorf("want the emergency line once, before the phase line:\n%s", out.String())
	}
	var block bytes.Buffer
	(&blockPrinter{w: &block, now: fakeClock(t0, time.Second)}).draw([]api.CertRollout{quiescing})
	if !strings.Contains(block.String(), "portal-qn7t5  Quiescing  EMERGENCY") {
		t.Errorf("the progress block does not say it is an emergency:\n%s", block.String())
	}
}

func TestRestartProgressLinesSayWhenNoControllerPicksTheRolloutUp(t *testing.T) {
	var out bytes.Buffer
	now := t0
	p := newLinePrinter(&out, func() time.Time { return now })
	ros := []api.CertRollout{{ObjectMeta: metav1.ObjectMeta{Name: "web-4kq9z"}}}
	p.observe(ros)
	now = now.Add(29 * time.Second)
	p.tick(ros)
	if out.Len() != 0 {
		t.Fatalf("warned before %s: %q", unclaimedAfter, out.String())
	}
	now = now.Add(time.Second)
	p.tick(ros)
	p.tick(ros)
	if got := strings.Count(out.String(), "no controller has picked the rollout up"); got != 1 {
		t.Fatalf("want the notice once, got %d times:\n%s", got, out.String())
	}
}

// visibleEscapes shows terminal control sequences as text, so the golden file reads.
func visibleEscapes(s string) string { return strings.ReplaceAll(s, "\x1b", "<ESC>") }

func TestRestartProgressBlockRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	p := &blockPrinter{w: &out, now: fakeClock(t0, 3*time.Second)}
	for _, s := range opsChainSnapshots() {
		p.observe(s)
	}
	got := out.String()
	// Every redraw moves up exactly as many lines as the previous one drew.
	frames := strings.Split(got, ansiAutowrapOff)[1:]
	for i := 1; i < len(frames); i++ {
		prev := strings.Count(frames[i-1], "\n")
		if want := fmt.Sprintf("\x1b[%dA\r", prev); !strings.HasPrefix(frames[i], want) {
			t.Errorf("frame %d starts with %q, want %q", i, frames[i][:min(len(frames[i]), 8)], want)
		}
	}
	golden(t, "restart-progress-block", visibleEscapes(got))
}

func TestRestartParsesWorkloadsAsKubectlDoes(t *testing.T) {
	for in, want := range map[string]string{
		"deployment/web": "Deployment/web", "deploy/web": "Deployment/web", "Deployment/web": "Deployment/web",
		"deployments.apps/web": "Deployment/web", "deployments.v1.apps/web": "Deployment/web",
		"sts/db": "StatefulSet/db", "statefulsets/db": "StatefulSet/db", "ds/agent": "DaemonSet/agent",
	} {
		got, err := parseRestartable(in)
		if err != nil || got.Key() != want {
			t.Errorf("%s: got %v, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"web": "is not KIND/NAME", "cronjob/nightly": "cannot restart CronJob/nightly", "pod/x": "cannot restart Pod/x", "service/web": "unknown kind",
	} {
		if _, err := parseRestartable(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", in, err, want)
		}
	}
}

func TestRestartValidatesItsFlags(t *testing.T) {
	for args, want := range map[string]string{
		"restart":                                      "name what to restart",
		"restart deploy/web --policy p":                "one of them",
		"restart --policy p --secret s":                "one of them",
		"restart deploy/web --timeout 1m":              "--timeout only applies with --wait",
		"restart deploy/web --dry-run --wait":          "--dry-run creates nothing to wait for",
		"restart cronjob/nightly":                      "cannot restart CronJob/nightly",
		"restart deploy/web -o wide":                   "--output wide is for tables",
		"status --watch":                               "--watch follows named rollouts",
		"status a -A":                                  "use -n NAMESPACE instead of -A",
		"status a -l x=y":                              "not both",
		"status --timeout 1m a":                        "--timeout only applies with --watch",
		"renew":                                        "name Certificates",
		"renew a --all":                                "not both",
		"renew a -A":                                   "use -n NAMESPACE instead of -A",
		"renew a --timeout 1m":                         "--timeout only applies with --wait",
		"renew a --restart --dry-run":                  "--dry-run triggers nothing to wait for",
		"renew a --wait --dry-run=server":              "--dry-run triggers nothing to wait for",
		"renew a --dry-run=maybe":                      `--dry-run must be "none", "client" or "server"`,
		"restart deploy/web --dry-run=maybe":           `--dry-run must be "none", "client" or "server"`,
		"restart deploy/web --dry-run=server --wait":   "--dry-run creates nothing to wait for",
		"restart deploy/web --timeout -1s --wait":      "must not be negative",
		"restart --kubeconfig /nonexistent deploy/web": "kubeconfig",
	} {
		_, _, err := run(t, "certrollout", strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", args, err, want)
		}
	}
}

func TestRestartNowIsRefusedWithoutAReason(t *testing.T) {
	for name, args := range map[string][]string{
		"no --reason":           {"restart", "deploy/web", "--now"},
		"a blank --reason":      {"restart", "deploy/web", "--now", "--reason", "  "},
		"a reason too long":     {"restart", "deploy/web", "--now", "--reason", strings.Repeat("x", maxEmergencyReason+1)},
		"with --policy as well": {"restart", "--policy", "build", "--now"},
	} {
		_, _, err := run(t, "certrollout", args...)
		want := "--now needs --reason"
		if name == "a reason too long" {
			want = "holds at most 1024"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want)
		}
	}
	// With a reason, --now passes validation and fails only where the cluster is needed.
	_, _, err := run(t, "certrollout", "restart", "deploy/web", "--now", "--reason", "INC-42", "--kubeconfig", "/nonexistent")
	if err == nil || strings.Contains(err.Error(), "--reason") || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("got %v, want only the kubeconfig to be missing", err)
	}
}

func TestRestartHelpSaysWhenToUseNow(t *testing.T) {
	out, _, err := run(t, "certrollout", "restart", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--now --reason", "certificate\nexpires before the next maintenance window", "ClusterRole certrollout-emergency", "--now  "} {
		if !strings.Contains(out, want) {
			t.Errorf("restart --help does not say %q:\n%s", want, out)
		}
	}
}

func TestRestartWaitResultDistinguishesFailureAndTimeout(t *testing.T) {
	explainNothing := func(err error) error { return err }
	ok := []api.CertRollout{{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: api.CertRolloutStatus{Phase: api.PhaseSucceeded}}}
	if err := waitResult(ok, nil, 0, explainNothing); err != nil {
		t.Fatalf("succeeded: %v", err)
	}
	failed := append(ok, api.CertRollout{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: api.CertRolloutStatus{Phase: api.PhaseFailed, Message: "1 of 1 target(s) failed"}})
	err := waitResult(failed, nil, 0, explainNothing)
	var ee *exitError
	if !errors.Is(err, ErrRolloutFailed) || !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "CertRollout b failed: 1 of 1 target(s) failed") {
		t.Fatalf("failed: %v", err)
	}
	running := []api.CertRollout{{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Status: api.CertRolloutStatus{Phase: api.PhaseWaitingForWindow}}}
	err = waitResult(running, fmt.Errorf("following: %w", context.DeadlineExceeded), time.Minute, explainNothing)
	if !errors.Is(err, ErrWaitTimedOut) || !errors.As(err, &ee) || ee.code != ExitTimedOut ||
		!strings.Contains(err.Error(), "c (WaitingForWindow) not finished; it goes on in the cluster") {
		t.Fatalf("timed out: %v", err)
	}
}

func TestRestartGeneratedNamesStayValid(t *testing.T) {
	long := strings.Repeat("a", 70)
	for in, want := range map[string]string{"web": "web-", "": "restart-", long: strings.Repeat("a", 57) + "-", "Web.": "web-"} {
		if got := generateName(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestRestartWithoutTheCRDsSaysToInstallThem(t *testing.T) {
	// The shared cluster serves certrollout.io, so the missing CRDs are simulated where the client meets
	// them: a REST mapper that knows only the built-in kinds answers NoKindMatch, as it does on a
	// cluster without the CRDs.
	c := clustertest.Cluster(t)
	mapper := apimeta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, apimeta.RESTScopeNamespace)
	cl, err := client.New(c.Config, client.Options{Scheme: Scheme(), Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	ns := clustertest.Namespace(t)
	if _, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), testgen.Deployment(ns, "web", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &planner{c: cl, ns: ns}
	_, err = p.forWorkloads(context.Background(), []api.WorkloadReference{{Kind: "Deployment", Name: "web"}}, "x")
	err = explain(err, c.Config)
	if !errors.Is(err, ErrCRDsMissing) || !strings.Contains(err.Error(), "kubectl apply -k config/crd") {
		t.Fatalf("want the CRDs-missing hint, got %v", err)
	}
}

// restartEnv is a test namespace with the CRDs installed and, when started, a controller scoped to it.
type restartEnv struct {
	t          *testing.T
	ns         string
	kubeconfig string
	cl         client.Client
}

func newRestartEnv(t *testing.T) *restartEnv {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	cl, err := client.New(c.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &restartEnv{t: t, ns: clustertest.Namespace(t), kubeconfig: c.Kubeconfig, cl: cl}
}

// startController runs the controller in-process, watching only the test's namespace.
func (e *restartEnv) startController() {
	e.t.Helper()
	e.startControllerSettling(time.Second)
}

// startControllerSettling is startController with the given settle period (0: restart as soon as a
// certificate changes).
func (e *restartEnv) startControllerSettling(settle time.Duration) {
	e.t.Helper()
	o := controller.DefaultOptions()
	o.Namespaces = []string{e.ns}
	o.SettlePeriod, o.MinRestartInterval = settle, 0
	o.RestartRate, o.RestartBurst = 100, 100
	o.AllowRepeatedSetup = true
	mgr, err := controller.NewManager(clustertest.Cluster(e.t).Config, controller.ManagerOptions{Options: o, MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("controller: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		e.t.Fatal("caches did not sync")
	}
}

func (e *restartEnv) deploy(d *appsv1.Deployment, wait bool) {
	e.t.Helper()
	if err := e.cl.Create(context.Background(), d); err != nil {
		e.t.Fatal(err)
	}
	if wait {
		waitDeploymentAvailable(e.t, e.ns, d.Name)
	}
}

// replicaSets counts a Deployment's ReplicaSets: one per template it has had.
func (e *restartEnv) replicaSets(name string) int {
	e.t.Helper()
	var rs appsv1.ReplicaSetList
	if err := e.cl.List(context.Background(), &rs, client.InNamespace(e.ns), client.MatchingLabels{"app": name}); err != nil {
		e.t.Fatal(err)
	}
	return len(rs.Items)
}

func (e *restartEnv) rollouts() []api.CertRollout {
	e.t.Helper()
	var list api.CertRolloutList
	if err := e.cl.List(context.Background(), &list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	sortRollouts(list.Items)
	return list.Items
}

func (e *restartEnv) run(args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	return run(e.t, "certrollout", append(args, "--kubeconfig", e.kubeconfig, "-n", e.ns)...)
}

func (e *restartEnv) policy(name string, spec api.RolloutPolicySpec) {
	e.t.Helper()
	if err := e.cl.Create(context.Background(), &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: spec}); err != nil {
		e.t.Fatal(err)
	}
}

func withLabels(d *appsv1.Deployment, l map[string]string) *appsv1.Deployment {
	d.Labels = l
	return d
}

var timestamped = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  `)

func TestRestartADeploymentWaitsUntilItRolledOnce(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(testgen.Deployment(e.ns, "web", 2, nil), true)
	e.startController()
	before := e.replicaSets("web")
	out, stderr, err := e.run("restart", "deploy/web", "--wait", "--reason", "new CA")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	ros := e.rollouts()
	if len(ros) != 1 {
		t.Fatalf("%d CertRollouts, want 1", len(ros))
	}
	ro := ros[0]
	if !strings.HasPrefix(ro.Name, "web-") || ro.Spec.Policy != "" || ro.Labels[api.LabelPolicy] != "" ||
		ro.Spec.Trigger.Type != api.TriggerManual || ro.Spec.Trigger.Message != "new CA" || ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: policy %q, trigger %+v, phase %s", ro.Name, ro.Spec.Policy, ro.Spec.Trigger, ro.Status.Phase)
	}
	if !strings.Contains(out, "certrollout.certrollout.io/"+ro.Name+" created: Deployment/web\n") {
		t.Errorf("no created line for %s:\n%s", ro.Name, out)
	}
	// Not a terminal: timestamped lines, the last one the result.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !timestamped.MatchString(last) || !strings.Contains(last, "Succeeded") || !strings.Contains(out, "Deployment/web restarted and healthy in") {
		t.Errorf("progress lines:\n%s", out)
	}
	waitDeploymentAvailable(t, e.ns, "web")
	time.Sleep(2 * time.Second) // a second restart would show as another ReplicaSet by now
	if got := e.replicaSets("web"); got != before+1 {
		t.Errorf("web has %d ReplicaSets, had %d: want exactly one new rollout", got, before)
	}
}

func TestRestartAPolicyQuiescesAndRestoresTheWorkersExactly(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(withLabels(testgen.Deployment(e.ns, "build", 1, nil), map[string]string{"role": "build"}), true)
	e.deploy(testgen.Deployment(e.ns, "workers", 3, nil), true)
	e.policy("build", api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Minute}}},
		HealthTimeout: metav1.Duration{Duration: time.Minute},
	})
	e.startController()
	before := e.replicaSets("build")
	out, stderr, err := e.run("restart", "--policy", "build", "--wait", "--timeout", "3m", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	var report RestartReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a RestartReport: %v\n%s", err, out)
	}
	if report.Kind != "RestartReport" || report.APIVersion != ReportAPIVersion || len(report.Rollouts) != 1 {
		t.Fatalf("report: %+v", report)
	}
	ro := report.Rollouts[0]
	if ro.Spec.Policy != "build" || len(ro.Spec.Targets) != 0 || ro.Labels[api.LabelPolicy] != "build" || ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout: policy %q, targets %v, labels %v, phase %s", ro.Spec.Policy, ro.Spec.Targets, ro.Labels, ro.Status.Phase)
	}
	if q := ro.Status.Quiesced; len(q) != 1 || q[0].Name != "workers" || q[0].OriginalReplicas == nil || *q[0].OriginalReplicas != 3 || q[0].State != api.QuiesceRestored {
		t.Fatalf("quiesced: %+v", q)
	}
	// Progress went to stderr, so stdout stays a document.
	if !strings.Contains(stderr, "Deployment/workers scaled from 3 to 0 replicas") || !strings.Contains(stderr, "Deployment/workers restored to 3 replicas") {
		t.Errorf("progress on stderr:\n%s", stderr)
	}
	var workers appsv1.Deployment
	if err := e.cl.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "workers"}, &workers); err != nil {
		t.Fatal(err)
	}
	if *workers.Spec.Replicas != 3 {
		t.Errorf("workers restored to %d replicas, want 3", *workers.Spec.Replicas)
	}
	if got := e.replicaSets("build"); got != before+1 {
		t.Errorf("build has %d ReplicaSets, had %d: want exactly one new rollout", got, before)
	}
}

func TestRestartNowStartsAGovernedWorkloadOutsideItsWindowAndRecordsWhoAndWhy(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(withLabels(testgen.Deployment(e.ns, "build", 1, nil), map[string]string{"role": "build"}), true)
	e.deploy(testgen.Deployment(e.ns, "workers", 2, nil), true)
	e.policy("build", api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Windows:       []api.MaintenanceWindow{{Schedule: "0 3 29 2 *", Duration: metav1.Duration{Duration: time.Hour}}}, // leap days only
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Minute}}},
		HealthTimeout: metav1.Duration{Duration: time.Minute},
	})
	e.startController()
	out, stderr, err := e.run("restart", "deploy/build", "--now", "--reason", "INC-7: expires tonight", "--wait", "--timeout", "3m")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	ros := e.rollouts()
	if len(ros) != 1 {
		t.Fatalf("%d CertRollouts, want 1", len(ros))
	}
	ro := ros[0]
	em := ro.Spec.Emergency
	if em == nil || em.Reason != "INC-7: expires tonight" || em.RequestedBy == "" || ro.Spec.Policy != "build" || ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: policy %q, emergency %+v, phase %s: %s", ro.Name, ro.Spec.Policy, em, ro.Status.Phase, ro.Status.Message)
	}
	if q := ro.Status.Quiesced; len(q) != 1 || q[0].Name != "workers" || q[0].State != api.QuiesceRestored {
		t.Errorf("the workers were not quiesced and restored: %+v", q)
	}
	created := "certrollout.certrollout.io/" + ro.Name + " created: policy build: Deployment/build (EMERGENCY: starts at once, requested by " + em.RequestedBy + ": INC-7: expires tonight)"
	said := "Started at once as an emergency requested by " + em.RequestedBy + ": INC-7: expires tonight (despite the maintenance windows)"
	if !strings.Contains(out, created) || !strings.Contains(out, said) {
		t.Errorf("output does not say it is an emergency, who asked and why:\n%s", out)
	}
}

func TestRestartAFailingRolloutExitsNonZeroWithItsMessage(t *testing.T) {
	e := newRestartEnv(t)
	stuck := withLabels(testgen.Deployment(e.ns, "stuck", 1, nil), map[string]string{"role": "build"})
	stuck.Spec.Template.Spec.NodeSelector = map[string]string{"no-such-node": "true"} // never scheduled
	e.deploy(stuck, false)
	e.policy("build", api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		HealthTimeout: metav1.Duration{Duration: 5 * time.Second},
	})
	e.startController()
	out, stderr, err := e.run("restart", "deployment/stuck", "--wait", "--timeout", "2m")
	var ee *exitError
	if !errors.Is(err, ErrRolloutFailed) || !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "health timeout of 5s") {
		t.Fatalf("want exit 1 naming the health timeout, got %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "created: policy build: Deployment/stuck") || !strings.Contains(out, "Deployment/stuck failed: rollout not finished within the health timeout") {
		t.Errorf("output:\n%s", out)
	}
}

func TestRestartStopsWaitingAtTheTimeoutAndSaysTheRolloutGoesOn(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(testgen.Deployment(e.ns, "web", 1, nil), false)
	// No controller: the rollout is never picked up.
	_, _, err := e.run("restart", "deploy/web", "--wait", "--timeout", "2s")
	var ee *exitError
	if !errors.Is(err, ErrWaitTimedOut) || !errors.As(err, &ee) || ee.code != ExitTimedOut || !strings.Contains(err.Error(), "goes on in the cluster") {
		t.Fatalf("want exit %d saying the rollout goes on, got %v", ExitTimedOut, err)
	}
	if n := len(e.rollouts()); n != 1 {
		t.Fatalf("%d CertRollouts, want the one created", n)
	}
}

func TestRestartDryRunGroupsByPolicyAndCreatesNothing(t *testing.T) {
	e := newRestartEnv(t)
	onSecret := []testgen.PodOption{testgen.WithSecretVolume("api-tls")}
	e.deploy(withLabels(testgen.Deployment(e.ns, "build", 1, onSecret), map[string]string{"role": "build"}), false)
	e.deploy(withLabels(testgen.Deployment(e.ns, "api", 1, onSecret), map[string]string{"role": "build"}), false)
	e.deploy(testgen.Deployment(e.ns, "web", 1, onSecret), false)
	e.deploy(testgen.Deployment(e.ns, "other", 1, nil), false)
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "nightly"}, Spec: batchv1.CronJobSpec{
		Schedule: "0 1 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: testgen.PodSpec(onSecret...)}}},
	}}
	cron.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if err := e.cl.Create(context.Background(), cron); err != nil {
		t.Fatal(err)
	}
	e.policy("build", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}}})

	// Workloads: the governed ones in one rollout following the policy (in its order), the rest in one.
	out, stderr, err := e.run("restart", "deploy/web", "deploy/build", "deploy/api", "deploy/other", "--dry-run=server", "-o", "yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var report RestartReport
	if err := yaml.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a RestartReport: %v\n%s", err, out)
	}
	if !report.DryRun || report.DryRunMode != DryRunServer || len(report.Rollouts) != 2 {
		t.Fatalf("want 2 rollouts in a dry run, got %+v", report)
	}
	gov, free := report.Rollouts[0], report.Rollouts[1]
	if gov.Spec.Policy != "build" || refsString(gov.Spec.Targets) != "Deployment/api, Deployment/build" || !strings.HasPrefix(gov.Name, "build-") ||
		gov.Kind != "CertRollout" || gov.APIVersion != "certrollout.io/v1alpha1" {
		t.Errorf("governed rollout: %s %s policy %q targets %s", gov.APIVersion, gov.Name, gov.Spec.Policy, refsString(gov.Spec.Targets))
	}
	if free.Spec.Policy != "" || refsString(free.Spec.Targets) != "Deployment/web, Deployment/other" || !strings.HasPrefix(free.Name, "restart-") {
		t.Errorf("ungoverned rollout: %s policy %q targets %s", free.Name, free.Spec.Policy, refsString(free.Spec.Targets))
	}
	if msg := gov.Spec.Trigger.Message; msg != "restarted by hand: certrollout restart deploy/web deploy/build deploy/api deploy/other" {
		t.Errorf("default trigger message %q", msg)
	}

	// --secret: its consumers, the CronJob named as not restartable.
	out, stderr, err = e.run("restart", "--secret", "api-tls", "--dry-run=server")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	names := regexp.MustCompile(`certrollout.certrollout.io/([a-z0-9-]+)`)
	normal := names.ReplaceAllStringFunc(out, func(s string) string { return s[:strings.LastIndex(s, "-")] + "-XXXXX" })
	golden(t, "restart-dry-run-secret", normal+"--- stderr\n"+stderr)

	// The server validated, and stored nothing.
	if n := len(e.rollouts()); n != 0 {
		t.Fatalf("a dry run created %d CertRollouts", n)
	}
}

func TestRestartNamesWhatDoesNotExist(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(testgen.Deployment(e.ns, "web", 1, nil), false)
	_, _, err := e.run("restart", "deploy/web", "deploy/nope", "sts/db")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`Deployment "nope" not found in namespace %q`, e.ns)) ||
		!strings.Contains(err.Error(), `StatefulSet "db" not found`) {
		t.Fatalf("want both missing workloads named, got %v", err)
	}
	_, _, err = e.run("restart", "--policy", "nope")
	if err == nil || !strings.Contains(err.Error(), `RolloutPolicy "nope" not found`) {
		t.Fatalf("unknown policy: %v", err)
	}
	e.policy("empty", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}}})
	_, _, err = e.run("restart", "--policy", "empty")
	if err == nil || !strings.Contains(err.Error(), "governs no workload") {
		t.Fatalf("policy selecting nothing: %v", err)
	}
	_, _, err = e.run("restart", "--secret", "nope")
	if err == nil || !strings.Contains(err.Error(), `no workload uses Secret "nope"`) {
		t.Fatalf("unused Secret: %v", err)
	}
	if n := len(e.rollouts()); n != 0 {
		t.Fatalf("errors created %d CertRollouts", n)
	}
}
