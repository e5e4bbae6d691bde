package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

var enabledAnnotations = map[string]string{api.AnnotationEnabled: "true"}

// podTemplate labels pods app=<app> and mounts Secret api-tls.
func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}}, Spec: testgen.PodSpec(testgen.WithSecretVolume("api-tls"))}
}

// createStatefulSet creates an opted-in two-replica StatefulSet whose pods mount api-tls.
func (e *env) createStatefulSet(name string, strategy appsv1.StatefulSetUpdateStrategy) {
	e.t.Helper()
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: enabledAnnotations}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		PodManagementPolicy: appsv1.ParallelPodManagement, Template: podTemplate(name), UpdateStrategy: strategy,
	}}
	if _, err := e.c.Client.AppsV1().StatefulSets(e.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// createDaemonSet creates an opted-in DaemonSet (one pod on the one node) whose pods mount api-tls.
func (e *env) createDaemonSet(name string, strategy appsv1.DaemonSetUpdateStrategy) {
	e.t.Helper()
	d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: enabledAnnotations}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: podTemplate(name), UpdateStrategy: strategy,
	}}
	if _, err := e.c.Client.AppsV1().DaemonSets(e.ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// waitPodsRunning waits until the namespace has exactly n running pods.
func (e *env) waitPodsRunning(n int) {
	e.t.Helper()
	clustertest.Eventually(e.t, 2*time.Minute, fmt.Sprintf("%d pods to run", n), func(ctx context.Context) (bool, error) {
		pods, err := e.c.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != n {
			return false, fmt.Errorf("%d of %d pods running", running, n)
		}
		return true, nil
	})
}

func TestStatefulSetsDaemonSetsAndOptedInBarePodsRestart(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.createStatefulSet("sts", appsv1.StatefulSetUpdateStrategy{})
	e.createDaemonSet("ds", appsv1.DaemonSetUpdateStrategy{})
	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Spec: testgen.PodSpec(testgen.WithSecretVolume("api-tls"))}
	}
	deletable := pod("deletable", map[string]string{api.AnnotationEnabled: "true", api.AnnotationDeleteStalePods: "true"})
	kept := pod("kept", enabledAnnotations)
	for _, p := range []*corev1.Pod{deletable, kept} {
		if _, err := e.c.Client.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitPodsRunning(5)
	clustertest.Eventually(t, time.Minute, "the StatefulSet and DaemonSet to be ready", func(ctx context.Context) (bool, error) {
		s, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, "sts", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		d, err := e.c.Client.AppsV1().DaemonSets(e.ns).Get(ctx, "ds", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if s.Status.ReadyReplicas != 2 || d.Status.NumberReady != 1 {
			return false, fmt.Errorf("sts ready %d, ds ready %d", s.Status.ReadyReplicas, d.Status.NumberReady)
		}
		return true, nil
	})
	e.start()
	ledger := func(get func(context.Context) (metav1.Object, error)) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			o, err := get(ctx)
			if err != nil {
				return false, err
			}
			return o.GetAnnotations()[api.AnnotationCertificateHash] != "", nil
		}
	}
	getSTS := func(ctx context.Context) (metav1.Object, error) {
		return e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, "sts", metav1.GetOptions{})
	}
	getDS := func(ctx context.Context) (metav1.Object, error) {
		return e.c.Client.AppsV1().DaemonSets(e.ns).Get(ctx, "ds", metav1.GetOptions{})
	}
	clustertest.Eventually(t, time.Minute, "the StatefulSet's ledger", ledger(getSTS))
	clustertest.Eventually(t, time.Minute, "the DaemonSet's ledger", ledger(getDS))

	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "the StatefulSet and DaemonSet templates to carry the new certificates", func(ctx context.Context) (bool, error) {
		s, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, "sts", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		d, err := e.c.Client.AppsV1().DaemonSets(e.ns).Get(ctx, "ds", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		h1, h2 := s.Spec.Template.Annotations[api.AnnotationRestartHash], d.Spec.Template.Annotations[api.AnnotationRestartHash]
		return h1 != "" && h1 == s.Annotations[api.AnnotationCertificateHash] && h2 != "" && h2 == d.Annotations[api.AnnotationCertificateHash], nil
	})
	clustertest.Eventually(t, time.Minute, "the opted-in bare pod to be deleted", func(ctx context.Context) (bool, error) {
		p, err := e.c.Client.CoreV1().Pods(e.ns).Get(ctx, "deletable", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && p.DeletionTimestamp != nil, err
	})
	clustertest.Eventually(t, time.Minute, "a BarePod Event on the pod that did not opt in to deletion", e.hasEvent("kept", corev1.EventTypeWarning, api.ReasonBarePod))
	if p, err := e.c.Client.CoreV1().Pods(e.ns).Get(ctx, "kept", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("the bare pod without delete-stale-pods must stay (err %v)", err)
	}
}

func TestTheGlobalRateBudgetHoldsBackRestartsBeyondIt(t *testing.T) {
	opts := testOptions()
	opts.RestartRate, opts.RestartBurst = 0.001, 1 // one restart, then one per ~17 minutes
	e := newEnv(t, opts)
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	for _, n := range []string{"a", "b", "c"} {
		e.deploy(deployment(e.ns, n, true, testgen.WithSecretVolume("api-tls")))
	}
	for _, n := range []string{"a", "b", "c"} {
		e.waitAvailable(n)
	}
	e.start()
	for _, n := range []string{"a", "b", "c"} {
		e.waitLedger(n, "")
	}
	rateLimited := map[string]string{"reason": api.ReasonRateLimited}
	blocked, _ := sample(t, "certrollout_restarts_blocked_total", rateLimited)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "one restart", func(ctx context.Context) (bool, error) {
		return e.rollouts("a")+e.rollouts("b")+e.rollouts("c") == 4, nil
	})
	e.quietly(5*time.Second, "a", "b", "c")
	if total := e.rollouts("a") + e.rollouts("b") + e.rollouts("c") - 3; total != 1 {
		t.Fatalf("a budget of one restart allowed %d", total)
	}
	// The two held back say so, by name and reason; the one restarted does not.
	for _, n := range []string{"a", "b", "c"} {
		w := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": n, "reason": api.ReasonRateLimited}
		if e.rollouts(n) == 2 {
			if _, ok := sample(t, "certrollout_workload_restart_blocked", w); ok {
				t.Errorf("%s was restarted, yet reported blocked by the rate limit", n)
			}
			continue
		}
		waitSample(t, "certrollout_workload_restart_blocked", w, 1)
	}
	if got, _ := sample(t, "certrollout_restarts_blocked_total", rateLimited); got < blocked+2 {
		t.Errorf("restarts_blocked_total{reason=RateLimited} rose by %g, want at least 2 (two workloads held back)", got-blocked)
	}
}

func TestNoRestartOnFailoverOrResync(t *testing.T) {
	resync := 2 * time.Second
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")
	leaseID := "certrollout-failover"
	startReplica := func() (stop func()) {
		mgr, err := NewManager(e.c.Config, ManagerOptions{
			Options: e.opts, MetricsBindAddress: "0", HealthProbeBindAddress: "0", SyncPeriod: &resync,
			LeaderElection: true, LeaderElectionNamespace: e.ns, LeaderElectionID: leaseID,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		var once bool
		stop = func() {
			if !once {
				once = true
				cancel()
				if err := <-done; err != nil {
					t.Errorf("controller replica: %v", err)
				}
			}
		}
		t.Cleanup(stop)
		return stop
	}
	holder := func(ctx context.Context) string {
		l, err := e.c.Client.CoordinationV1().Leases(e.ns).Get(ctx, leaseID, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	stopFirst := startReplica()
	e.waitLedger("web", "")
	first := holder(context.Background())
	startReplica()
	e.quietly(3*resync, "web") // several resyncs by the leader

	stopFirst() // releases the Lease; the standby takes over and sees every object again
	clustertest.Eventually(t, time.Minute, "the standby to take the lease", func(ctx context.Context) (bool, error) {
		h := holder(ctx)
		return h != "" && h != first, nil
	})
	e.quietly(3*resync, "web")
	if e.rollouts("web") != 1 {
		t.Fatalf("fail-over or resync rolled web %d time(s)", e.rollouts("web")-1)
	}
	// The new leader does its job.
	hash := e.get("web").Annotations[api.AnnotationCertificateHash]
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "the new leader to restart web", func(ctx context.Context) (bool, error) {
		return e.get("web").Annotations[api.AnnotationCertificateHash] != hash, nil
	})
}

func TestOnDeleteAndPartitionedWorkloadsAreReportedNotChanged(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.createStatefulSet("ondelete", appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType})
	e.createStatefulSet("partitioned", appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}})
	e.createDaemonSet("ds-ondelete", appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType})
	e.waitPodsRunning(5)
	e.start()
	clustertest.Eventually(t, time.Minute, "certrollout to record the three workloads", func(ctx context.Context) (bool, error) {
		var objs []metav1.Object
		for _, name := range []string{"ondelete", "partitioned"} {
			s, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			objs = append(objs, s)
		}
		d, err := e.c.Client.AppsV1().DaemonSets(e.ns).Get(ctx, "ds-ondelete", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, o := range append(objs, d) {
			if o.GetAnnotations()[api.AnnotationCertificateHash] == "" {
				return false, fmt.Errorf("%s has no ledger yet", o.GetName())
			}
		}
		return true, nil
	})
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "an OnDeleteStrategy Event on the StatefulSet", e.hasEvent("ondelete", corev1.EventTypeWarning, api.ReasonOnDeleteStrategy))
	clustertest.Eventually(t, time.Minute, "a StatefulSetPartition Event", e.hasEvent("partitioned", corev1.EventTypeWarning, api.ReasonPartitioned))
	clustertest.Eventually(t, time.Minute, "an OnDeleteStrategy Event on the DaemonSet", e.hasEvent("ds-ondelete", corev1.EventTypeWarning, api.ReasonOnDeleteStrategy))
	for _, name := range []string{"ondelete", "partitioned"} {
		s, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if h := s.Spec.Template.Annotations[api.AnnotationRestartHash]; h != "" {
			t.Errorf("StatefulSet %s was changed although a restart cannot reach its pods: %q", name, h)
		}
	}
	d, err := e.c.Client.AppsV1().DaemonSets(e.ns).Get(ctx, "ds-ondelete", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := d.Spec.Template.Annotations[api.AnnotationRestartHash]; h != "" {
		t.Errorf("the OnDelete DaemonSet was changed: %q", h)
	}
}

func TestACronJobsStaleRunningJobsAreReportedAndNothingIsRestarted(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	tmpl := podTemplate("nightly")
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	// kwok completes a Job's pod after a few seconds; this one keeps running for the test's length.
	tmpl.Annotations = map[string]string{"pod-complete.stage.kwok.x-k8s.io/delay": "3600000"}
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Annotations: enabledAnnotations},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}},
		},
	}
	if _, err := e.c.Client.BatchV1().CronJobs(e.ns).Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.start()
	clustertest.Eventually(t, 2*time.Minute, "the CronJob's first Job to run", func(ctx context.Context) (bool, error) {
		got, err := e.c.Client.BatchV1().CronJobs(e.ns).Get(ctx, "nightly", metav1.GetOptions{})
		if err != nil || len(got.Status.Active) == 0 {
			return false, err
		}
		return true, nil
	})
	e.waitPodsRunning(1)
	before, err := e.c.Client.BatchV1().CronJobs(e.ns).Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job := before.Status.Active[0].Name

	// Renewed again until the controller reports it: the Job's pod started seconds before, and the first
	// renewal can be decided before the controller sees that pod as started earlier (its pod cache, or the
	// container start time kwok writes in a later stage); nothing decides a CronJob again when its Job's
	// pod changes, so the next renewal is what reports it, as it would be in a cluster.
	reported := e.hasEvent("nightly", corev1.EventTypeWarning, api.ReasonStaleRunningJobs)
	for renewals := 1; ; renewals++ {
		e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
		seen := false
		for end := time.Now().Add(20 * time.Second); !seen && time.Now().Before(end); time.Sleep(time.Second) {
			seen, _ = reported(ctx)
		}
		if seen {
			break
		}
		if renewals == 4 {
			t.Fatal("no StaleRunningJobs Event on the CronJob after 4 renewals")
		}
	}
	evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=nightly,reason=" + api.ReasonStaleRunningJobs})
	if err != nil || len(evs.Items) == 0 {
		t.Fatalf("events: %v", err)
	}
	if note := evs.Items[0].Note; !strings.Contains(note, "1 pod(s) of running Job(s) "+job+" started before") {
		t.Errorf("the Event must name the stale Job %s: %q", job, note)
	}
	after, err := e.c.Client.BatchV1().CronJobs(e.ns).Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || after.Annotations[api.AnnotationCertificateHash] != "" {
		t.Errorf("the CronJob must not be changed: generation %d → %d, annotations %v", before.Generation, after.Generation, after.Annotations)
	}
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].DeletionTimestamp != nil {
		t.Fatalf("the running Job's pod must be left alone: %v, %d pods", err, len(pods.Items))
	}
}
