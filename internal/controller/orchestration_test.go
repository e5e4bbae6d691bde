package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// crClient is a direct (uncached) client that knows certrollout's types.
func (e *env) crClient() client.Client {
	e.t.Helper()
	if e.cr != nil {
		return e.cr
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		e.t.Fatal(err)
	}
	if err := api.AddToScheme(s); err != nil {
		e.t.Fatal(err)
	}
	c, err := client.New(e.c.Config, client.Options{Scheme: s})
	if err != nil {
		e.t.Fatal(err)
	}
	e.cr = c
	return c
}

// opsChain sets up the OpsChain procedure: a build service that mounts a cert-manager certificate and is
// governed by policy "build" (labels role=build), and 3 workers whose pods take drainDelay to terminate.
func (e *env) opsChain(drainDelay time.Duration, mods ...func(*api.RolloutPolicySpec)) {
	e.t.Helper()
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(testgen.CertManagerChain(e.ns, "build", "build-tls", "2160h", ""))); err != nil {
		e.t.Fatal(err)
	}
	clustertest.Eventually(e.t, time.Minute, "Certificate build to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, e.c, e.ns, "build")
	})
	build := deployment(e.ns, "build", false, testgen.WithSecretVolume("build-tls"))
	build.Labels = map[string]string{"role": "build"}
	e.deploy(build)
	e.deploy(e.workers("workers", 3, drainDelay))
	e.waitAvailable("build")
	e.waitAvailable("workers")
	spec := api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: 2 * time.Minute}}},
		HealthTimeout: metav1.Duration{Duration: time.Minute},
	}
	for _, m := range mods {
		m(&spec)
	}
	e.createPolicy("build", spec)
}

// workers builds a Deployment whose pods take delay to terminate once deleted (kwok honours the delay
// annotation, up to the grace period).
func (e *env) workers(name string, replicas int32, delay time.Duration) *appsv1.Deployment {
	return testgen.Deployment(e.ns, name, replicas, nil, testgen.SlowToTerminate(delay))
}

// roleWeb selects the Deployment governedWeb creates.
var roleWeb = metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}

// governedWeb creates Secret api-tls and Deployment web (labels role=web) that mounts it, and returns the
// CA that signed the leaf.
func (e *env) governedWeb() *testgen.Cert {
	e.t.Helper()
	ca := testgen.CA(e.t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(e.t, ca, "api"), ca, nil)
	web := deployment(e.ns, "web", false, testgen.WithSecretVolume("api-tls"))
	web.Labels = map[string]string{"role": "web"}
	e.deploy(web)
	return ca
}

func (e *env) createPolicy(name string, spec api.RolloutPolicySpec) {
	e.t.Helper()
	p := &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: spec}
	if err := e.crClient().Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) policyStatus(name string) api.RolloutPolicy {
	e.t.Helper()
	var p api.RolloutPolicy
	if err := e.crClient().Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// waitRollout waits for the namespace's only CertRollout to satisfy cond and returns it.
func (e *env) waitRollout(timeout time.Duration, what string, cond func(*api.CertRollout) bool) *api.CertRollout {
	e.t.Helper()
	var got *api.CertRollout
	clustertest.Eventually(e.t, timeout, what, func(ctx context.Context) (bool, error) {
		var list api.CertRolloutList
		if err := e.crClient().List(ctx, &list, client.InNamespace(e.ns)); err != nil {
			return false, err
		}
		if len(list.Items) != 1 {
			return false, fmt.Errorf("%d CertRollouts", len(list.Items))
		}
		got = &list.Items[0]
		if !cond(got) {
			return false, fmt.Errorf("phase %s: %s", got.Status.Phase, got.Status.Message)
		}
		return true, nil
	})
	return got
}

func (e *env) rolloutCount() int {
	e.t.Helper()
	var list api.CertRolloutList
	if err := e.crClient().List(context.Background(), &list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	return len(list.Items)
}

func (e *env) replicas(name string) int32 { return *e.get(name).Spec.Replicas }

// podTimeline records, from a watch, when the last pod of app=workers went away and when the build
// Deployment's template changed.
type podTimeline struct {
	mu             sync.Mutex
	workersGone    time.Time
	buildRestarted time.Time
}

func (e *env) watchTimeline(ctx context.Context) *podTimeline {
	e.t.Helper()
	tl := &podTimeline{}
	pods, err := e.c.Client.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=workers"})
	if err != nil {
		e.t.Fatal(err)
	}
	deps, err := e.c.Client.AppsV1().Deployments(e.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=build"})
	if err != nil {
		e.t.Fatal(err)
	}
	present := map[string]bool{}
	go func() {
		for ev := range pods.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			tl.mu.Lock()
			if ev.Type == watch.Deleted {
				delete(present, p.Name)
				if len(present) == 0 {
					tl.workersGone = time.Now()
				}
			} else {
				present[p.Name] = true
			}
			tl.mu.Unlock()
		}
	}()
	go func() {
		last := ""
		for ev := range deps.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			v := d.Spec.Template.Annotations[api.AnnotationRollout]
			tl.mu.Lock()
			if v != "" && v != last && tl.buildRestarted.IsZero() {
				tl.buildRestarted = time.Now()
			}
			last = v
			tl.mu.Unlock()
		}
	}()
	return tl
}

func TestTheOpsChainProcedure(t *testing.T) {
	e := newEnv(t, testOptions())
	e.opsChain(8 * time.Second)
	// The workers are autoscaled: the HPA must neither fight the quiesce nor keep the restore from
	// giving back exactly the count they had.
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "workers"}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "workers"},
		MinReplicas:    ptr.To[int32](2), MaxReplicas: 5,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)},
		}}},
	}}
	if _, err := e.c.Client.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.start()
	clustertest.Eventually(t, time.Minute, "the policy to report its workloads", func(context.Context) (bool, error) {
		p := e.policyStatus("build")
		c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionValid)
		return c != nil && c.Status == metav1.ConditionTrue && p.Status.Workloads == 1 && p.Status.StaleWorkloadCount == 0, nil
	})
	if n := e.rolloutCount(); n != 0 {
		t.Fatalf("%d CertRollouts before any renewal", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tl := e.watchTimeline(ctx)
	buildSets := e.rollouts("build")

	clustertest.Renew(t, e.c, e.ns, "build")
	ro := e.waitRollout(3*time.Minute, "the CertRollout to succeed", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	tl.mu.Lock()
	gone, restarted := tl.workersGone, tl.buildRestarted
	tl.mu.Unlock()
	if gone.IsZero() || restarted.IsZero() || restarted.Before(gone) {
		t.Errorf("the build service restarted at %s, the last worker pod went at %s: it must restart only after the workers are gone", restarted, gone)
	}
	if got := e.replicas("workers"); got != 3 {
		t.Errorf("workers restored to %d replicas, want exactly 3", got)
	}
	if a := e.get("workers").Annotations; a[api.AnnotationQuiescedBy] != "" || a[api.AnnotationQuiescedReplicas] != "" {
		t.Errorf("quiesce annotations left on the workers: %v", a)
	}
	if got := e.rollouts("build"); got != buildSets+1 {
		t.Errorf("build rolled %d times, want once", got-buildSets)
	}
	for workload, reason := range map[string]string{"workers": api.ReasonRestored, "build": api.ReasonRestarted} {
		clustertest.Eventually(t, 30*time.Second, "a "+reason+" Event on "+workload, e.hasEvent(workload, corev1.EventTypeNormal, reason))
	}
	if ro.Spec.Trigger.Type != api.TriggerCertificateRenewed || len(ro.Status.Quiesced) != 1 || ro.Status.Quiesced[0].OriginalReplicas == nil || *ro.Status.Quiesced[0].OriginalReplicas != 3 {
		t.Errorf("the CertRollout does not record the trigger and the workers' 3 replicas: %+v %+v", ro.Spec.Trigger, ro.Status.Quiesced)
	}
	e.waitAvailable("workers")
	// Nothing more happens: the build service runs on the new certificate.
	time.Sleep(3 * time.Second)
	if n := e.rolloutCount(); n != 1 {
		t.Errorf("%d CertRollouts after one renewal, want 1", n)
	}
}

func TestAStatefulSetIsQuiescedAndRestored(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := e.governedWeb()
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "queue"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "queue"}},
		PodManagementPolicy: appsv1.ParallelPodManagement, Template: podTemplate("queue"),
	}}
	sts.Spec.Template.Spec = testgen.PodSpec()
	if _, err := e.c.Client.AppsV1().StatefulSets(e.ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitAvailable("web")
	e.waitPodsRunning(4)
	e.createPolicy("web", api.RolloutPolicySpec{
		Selector: roleWeb,
		Quiesce:  []api.QuiesceTarget{{Kind: "StatefulSet", Name: "queue"}},
	})
	e.start()
	e.waitLedger("web", "")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	ro := e.waitRollout(2*time.Minute, "the CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	got, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, "queue", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 2 || got.Annotations[api.AnnotationQuiescedBy] != "" {
		t.Errorf("StatefulSet restored to %d replicas (annotations %v), want 2 and none", *got.Spec.Replicas, got.Annotations)
	}
	if q := ro.Status.Quiesced; len(q) != 1 || q[0].State != api.QuiesceRestored || q[0].DrainedAt == nil {
		t.Errorf("quiesce progress not recorded: %+v", q)
	}
}

func TestARolloutWaitsForAWindowThatOpensAMinuteLater(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := e.governedWeb()
	e.waitAvailable("web")
	opens := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	if time.Until(opens) < 20*time.Second {
		opens = opens.Add(time.Minute) // leave time to renew and observe the wait
	}
	e.createPolicy("web", api.RolloutPolicySpec{
		Selector: roleWeb,
		Windows:  []api.MaintenanceWindow{{Schedule: fmt.Sprintf("%d %d * * *", opens.Minute(), opens.Hour()), Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "UTC"}},
	})
	e.start()
	e.waitLedger("web", "")
	sets := e.rollouts("web")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	ro := e.waitRollout(30*time.Second, "the CertRollout to wait for the window", func(r *api.CertRollout) bool {
		return r.Status.Phase == api.PhaseWaitingForWindow
	})
	if ro.Status.NextWindow == nil || !ro.Status.NextWindow.Time.Equal(opens) {
		t.Errorf("next window %v, want %s", ro.Status.NextWindow, opens)
	}
	if e.rollouts("web") != sets {
		t.Fatal("the Deployment rolled before the window opened")
	}
	ro = e.waitRollout(3*time.Minute, "the CertRollout to succeed once the window opens", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded || ro.Status.StartTime == nil || ro.Status.StartTime.Time.Before(opens) {
		t.Fatalf("rollout %s started at %v, window opened at %s: %s", ro.Status.Phase, ro.Status.StartTime, opens, ro.Status.Message)
	}
	if e.rollouts("web") != sets+1 {
		t.Errorf("web rolled %d times, want once", e.rollouts("web")-sets)
	}
}

func TestTheExpiryDeadlineOverridesTheWindow(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := e.governedWeb() // its leaf is valid for 90 days: within a 1-year deadline
	e.waitAvailable("web")
	e.createPolicy("web", api.RolloutPolicySpec{
		Selector:       roleWeb,
		Windows:        []api.MaintenanceWindow{{Schedule: "0 3 29 2 *", Duration: metav1.Duration{Duration: time.Hour}}}, // leap days only
		ExpiryDeadline: &metav1.Duration{Duration: 365 * 24 * time.Hour},
	})
	e.start()
	e.waitLedger("web", "")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	ro := e.waitRollout(2*time.Minute, "the CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	if ro.Spec.Trigger.Type != api.TriggerDeadline {
		t.Errorf("trigger %s, want Deadline", ro.Spec.Trigger.Type)
	}
	clustertest.Eventually(t, 30*time.Second, "a DeadlineOverride Event on the CertRollout", e.hasEvent(ro.Name, corev1.EventTypeWarning, api.ReasonDeadlineOverride))
}

func TestATargetThatNeverBecomesReadyFailsTheRolloutAndTheWorkersAreRestored(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	stuck := testgen.Deployment(e.ns, "stuck", 1, nil)
	stuck.Labels = map[string]string{"role": "build"}
	stuck.Spec.Template.Spec.NodeSelector = map[string]string{"no-such-node": "true"} // never scheduled
	e.deploy(stuck)
	e.deploy(e.workers("workers", 2, time.Second))
	e.waitAvailable("workers")
	e.createPolicy("build", api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers"}},
		HealthTimeout: metav1.Duration{Duration: 10 * time.Second},
	})
	e.start()
	manual := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "by-hand"}, Spec: api.CertRolloutSpec{
		Policy: "build", Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "stuck"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	if err := e.crClient().Create(ctx, manual); err != nil {
		t.Fatal(err)
	}
	ro := e.waitRollout(2*time.Minute, "the CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseFailed || len(ro.Status.Targets) != 1 || ro.Status.Targets[0].State != api.TargetFailed ||
		!strings.Contains(ro.Status.Targets[0].Message, "health timeout") {
		t.Fatalf("want Failed with the health timeout, got %s: %+v", ro.Status.Phase, ro.Status.Targets)
	}
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("no Failed condition: %+v", ro.Status.Conditions)
	}
	if got := e.replicas("workers"); got != 2 {
		t.Errorf("workers restored to %d replicas, want 2", got)
	}
	clustertest.Eventually(t, 30*time.Second, "a TargetFailed Event", e.hasEvent("by-hand", corev1.EventTypeWarning, api.ReasonTargetFailed))
	// CertRolloutFailed selects result="Failed": the phase, as the counter records it.
	waitSample(t, "certrollout_rollouts_total", map[string]string{"namespace": e.ns, "type": "restart", "result": "Failed"}, 1)
	if n, ok := sample(t, "certrollout_rollout_duration_seconds", map[string]string{"type": "restart", "result": "Failed"}); !ok || n < 1 {
		t.Errorf("rollout_duration_seconds{type=restart,result=Failed} has %g observations", n)
	}
}

func TestAManualCertRolloutRestartsItsTargetsOnce(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	e.deploy(testgen.Deployment(e.ns, "a", 1, nil))
	e.deploy(testgen.Deployment(e.ns, "b", 1, nil))
	e.waitAvailable("a")
	e.waitAvailable("b")
	e.start()
	before := e.rollouts("a") + e.rollouts("b")
	manual := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "by-hand"}, Spec: api.CertRolloutSpec{
		Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "a"}, {Kind: "Deployment", Name: "b"}},
	}}
	if err := e.crClient().Create(ctx, manual); err != nil {
		t.Fatal(err)
	}
	ro := e.waitRollout(2*time.Minute, "the manual CertRollout to succeed", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded || ro.Spec.Trigger.Type != api.TriggerManual || ro.Status.Progress != "2/2 restarted" {
		t.Fatalf("rollout %s (%s, %s): %s", ro.Status.Phase, ro.Spec.Trigger.Type, ro.Status.Progress, ro.Status.Message)
	}
	a, b := ro.Status.Targets[0], ro.Status.Targets[1]
	if a.FinishedAt == nil || b.StartedAt == nil || b.StartedAt.Before(a.FinishedAt) {
		t.Errorf("serial order broken: a finished %v, b started %v", a.FinishedAt, b.StartedAt)
	}
	time.Sleep(2 * time.Second)
	if got := e.rollouts("a") + e.rollouts("b"); got != before+2 {
		t.Errorf("%d new ReplicaSets, want 2 (each target once)", got-before)
	}
}

func TestASuspendedPolicyStartsNothingAndKeepsThePendingWork(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := e.governedWeb()
	e.waitAvailable("web")
	e.createPolicy("web", api.RolloutPolicySpec{Selector: roleWeb, Suspend: true})
	e.start()
	e.waitLedger("web", "")
	sets := e.rollouts("web")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "the policy to report the pending work", func(context.Context) (bool, error) {
		p := e.policyStatus("web")
		c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionPending)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == api.ReasonSuspended && p.Status.StaleWorkloadCount == 1, nil
	})
	e.quietly(3*time.Second, "web")
	if n := e.rolloutCount(); n != 0 || e.rollouts("web") != sets {
		t.Fatalf("a suspended policy started %d CertRollouts", n)
	}
	p := e.policyStatus("web")
	p.Spec.Suspend = false
	if err := e.crClient().Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	ro := e.waitRollout(2*time.Minute, "the CertRollout to succeed after resuming", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded || e.rollouts("web") != sets+1 {
		t.Fatalf("rollout %s, web rolled %d times: %s", ro.Status.Phase, e.rollouts("web")-sets, ro.Status.Message)
	}
}

func TestAnInvalidPolicyIsReportedAndTheRestOfTheClusterKeepsWorking(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	governed := deployment(e.ns, "governed", false, testgen.WithSecretVolume("api-tls"))
	governed.Labels = map[string]string{"role": "web"}
	e.deploy(governed)
	e.deploy(deployment(e.ns, "free", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("governed")
	e.waitAvailable("free")
	e.createPolicy("web", api.RolloutPolicySpec{
		Selector: roleWeb,
		Windows:  []api.MaintenanceWindow{{Schedule: "every night", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"}},
		Quiesce:  []api.QuiesceTarget{{Kind: "Deployment", Name: "missing"}, {Kind: "Deployment", Name: "x", Namespace: "elsewhere"}},
	})
	e.start()
	clustertest.Eventually(t, time.Minute, "Valid=False naming every problem", func(context.Context) (bool, error) {
		c := apimeta.FindStatusCondition(e.policyStatus("web").Status.Conditions, api.ConditionValid)
		if c == nil || c.Status != metav1.ConditionFalse {
			return false, nil
		}
		for _, want := range []string{"Mars/Olympus", "Deployment missing does not exist", "another namespace"} {
			if !strings.Contains(c.Message, want) {
				return false, fmt.Errorf("message %q lacks %q", c.Message, want)
			}
		}
		return true, nil
	})
	clustertest.Eventually(t, 30*time.Second, "an InvalidPolicy Event", e.hasEvent("web", corev1.EventTypeWarning, api.ReasonInvalidPolicy))
	e.waitLedger("free", "")
	governedSets := e.rollouts("governed")
	old := e.get("free").Annotations[api.AnnotationCertificateHash]
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.waitLedger("free", old) // the workload no policy governs restarts as usual
	e.quietly(3*time.Second, "governed")
	if e.rollouts("governed") != governedSets || e.rolloutCount() != 0 {
		t.Fatal("a workload of an invalid policy restarted")
	}
}

func TestAControllerKilledMidDrainAndMidRestartResumesAndLosesNothing(t *testing.T) {
	e := newEnv(t, testOptions())
	e.opsChain(20*time.Second, func(s *api.RolloutPolicySpec) { s.HealthTimeout = metav1.Duration{Duration: 2 * time.Minute} })
	// minReadySeconds keeps the build service's rollout in progress long enough to stop the controller in it.
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), "build", types.MergePatchType,
		[]byte(`{"spec":{"minReadySeconds":15}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitAvailable("build")
	e.start()
	clustertest.Eventually(t, time.Minute, "the policy to see the build service", func(context.Context) (bool, error) {
		return e.policyStatus("build").Status.Workloads == 1, nil
	})
	buildSets := e.rollouts("build")
	clustertest.Renew(t, e.c, e.ns, "build")
	e.waitRollout(time.Minute, "the workers to be draining", func(r *api.CertRollout) bool {
		return r.Status.Phase == api.PhaseQuiescing && len(r.Status.Quiesced) == 1 && r.Status.Quiesced[0].State == api.QuiesceDraining
	})
	e.stop() // mid-drain
	if got := e.get("workers"); *got.Spec.Replicas != 0 || got.Annotations[api.AnnotationQuiescedReplicas] != "3" {
		t.Fatalf("mid-drain the workers must be at 0 with 3 recorded on them: %d, %v", *got.Spec.Replicas, got.Annotations)
	}
	e.start()
	e.waitRollout(2*time.Minute, "the build service to be restarting", func(r *api.CertRollout) bool { return r.Status.Phase == api.PhaseRestarting })
	e.stop() // mid-restart
	e.start()
	ro := e.waitRollout(3*time.Minute, "the CertRollout to succeed", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	if got := e.replicas("workers"); got != 3 {
		t.Errorf("workers restored to %d replicas, want exactly 3", got)
	}
	if got := e.rollouts("build"); got != buildSets+1 {
		t.Errorf("build rolled %d times across the controller restarts, want once", got-buildSets)
	}
}

func TestAPolicyKeepsItsRolloutHistoryShortAndReportsTheLastResult(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	target := testgen.Deployment(e.ns, "a", 1, nil)
	target.Labels = map[string]string{"role": "a"}
	e.deploy(target)
	e.waitAvailable("a")
	e.createPolicy("a", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "a"}}, RolloutHistoryLimit: 1})
	e.start()
	for i := range 2 {
		ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: fmt.Sprintf("by-hand-%d", i)}, Spec: api.CertRolloutSpec{Policy: "a"}}
		if err := e.crClient().Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
		clustertest.Eventually(t, 2*time.Minute, ro.Name+" to succeed", func(ctx context.Context) (bool, error) {
			if err := e.crClient().Get(ctx, client.ObjectKeyFromObject(ro), ro); err != nil {
				return false, err
			}
			return ro.Status.Phase == api.PhaseSucceeded, nil
		})
		time.Sleep(time.Second) // distinct creation timestamps
	}
	clustertest.Eventually(t, time.Minute, "only the newest rollout kept, and the last result reported", func(context.Context) (bool, error) {
		if n := e.rolloutCount(); n != 1 {
			return false, fmt.Errorf("%d CertRollouts", n)
		}
		p := e.policyStatus("a")
		c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionLastRolloutSucceeded)
		if c == nil || c.Status != metav1.ConditionTrue || p.Status.LastRollout == nil || p.Status.LastRollout.Name != "by-hand-1" {
			return false, fmt.Errorf("condition %+v, last %+v", c, p.Status.LastRollout)
		}
		return true, nil
	})
	var kept api.CertRollout
	if err := e.crClient().Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "by-hand-1"}, &kept); err != nil {
		t.Fatalf("the newest rollout must be the one kept: %v", err)
	}
}

// API Connect's runbook restarts its subsystems in a documented order: management, then the portal, then
// the gateway. A policy's steps say so; without them its Parallel order would restart all three at once
// (and its kind-and-name order would put the gateway first).
func TestAPolicysStepsRestartSubsystemsInTheirDocumentedOrder(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(testgen.CertManagerChain(e.ns, "apic", "apic-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "Certificate apic to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, e.c, e.ns, "apic")
	})
	subsystems := []string{"management", "portal", "gateway"}
	for _, name := range subsystems {
		d := deployment(e.ns, name, false, testgen.WithSecretVolume("apic-tls"))
		d.Labels = map[string]string{"app.kubernetes.io/part-of": "apic", "subsystem": name}
		e.deploy(d)
	}
	for _, name := range subsystems {
		e.waitAvailable(name)
	}
	e.createPolicy("apic", api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "apic"}},
		Order:    api.OrderParallel, MaxConcurrent: 3,
		Steps: []api.RolloutStep{
			{Name: "management", Workloads: []api.WorkloadReference{{Kind: api.KindDeployment, Name: "management"}}},
			{Name: "portal", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"subsystem": "portal"}}},
			{Name: "gateway", Workloads: []api.WorkloadReference{{Kind: api.KindDeployment, Name: "gateway"}}},
		},
	})
	e.start()
	e.waitPolicy("Ready", "apic")

	clustertest.Renew(t, e.c, e.ns, "apic")
	ro := e.waitRollout(3*time.Minute, "the rollout to succeed", func(r *api.CertRollout) bool { return r.Status.Phase == api.PhaseSucceeded })
	if len(ro.Status.Targets) != 3 {
		t.Fatalf("targets %+v, want the three subsystems", ro.Status.Targets)
	}
	for i, ts := range ro.Status.Targets {
		if ts.Name != subsystems[i] || ts.Step != int32(i+1) || ts.State != api.TargetSucceeded || ts.StartedAt == nil || ts.FinishedAt == nil {
			t.Fatalf("target %d: %+v, want %s in step %d, succeeded", i, ts, subsystems[i], i+1)
		}
		if i > 0 {
			prev := ro.Status.Targets[i-1]
			if ts.StartedAt.Before(prev.FinishedAt) {
				t.Errorf("%s started at %s, before %s (the step before) finished at %s", ts.Name, ts.StartedAt, prev.Name, prev.FinishedAt)
			}
		}
	}
	for _, name := range subsystems {
		if n := e.rollouts(name); n != 2 {
			t.Errorf("Deployment %s has %d ReplicaSets, want 2: restarted once", name, n)
		}
	}
}
