package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// cpEnv is a cluster-wide controller (control-plane rollouts run only there) whose node agents' Lease
// lives in the test's namespace, with a client for the cluster-scoped objects. Every ControlPlaneRollout
// and the ControlPlanePolicy are deleted when the test ends.
func cpEnv(t *testing.T) (*env, client.Client) {
	t.Helper()
	e := newEnv(t, testOptions())
	e.opts.Namespaces = nil
	e.opts.ControlPlaneLeaseNamespace = e.ns
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(e.c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	clean := func() {
		ctx := context.Background()
		_ = cl.DeleteAllOf(ctx, &api.ControlPlaneRollout{})
		_ = cl.Delete(ctx, &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: api.ControlPlanePolicyName}})
	}
	clean()
	t.Cleanup(clean)
	return e, cl
}

// cpPolicy creates the ControlPlanePolicy with a 1s pause between nodes (trigger Manual unless change
// says otherwise).
func cpPolicy(t *testing.T, cl client.Client, change func(*api.ControlPlanePolicySpec)) {
	t.Helper()
	p := &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: api.ControlPlanePolicyName}, Spec: api.ControlPlanePolicySpec{
		Trigger: api.ControlPlaneTriggerManual, PauseBetweenNodes: &metav1.Duration{Duration: time.Second}}}
	if change != nil {
		change(&p.Spec)
	}
	if err := cl.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func cpRollout(t *testing.T, cl client.Client, name string, change func(*api.ControlPlaneRolloutSpec)) *api.ControlPlaneRollout {
	t.Helper()
	ro := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: api.ControlPlaneRolloutSpec{Trigger: api.ControlPlaneTriggerByHand}}
	if change != nil {
		change(&ro.Spec)
	}
	if err := cl.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// waitCPRollout waits until the rollout satisfies cond, failing with its last status.
func waitCPRollout(t *testing.T, cl client.Client, name, what string, timeout time.Duration, cond func(*api.ControlPlaneRollout) bool) *api.ControlPlaneRollout {
	t.Helper()
	var ro api.ControlPlaneRollout
	clustertest.Eventually(t, timeout, "ControlPlaneRollout "+name+" "+what, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Name: name}, &ro); err != nil {
			return false, err
		}
		if cond(&ro) {
			return true, nil
		}
		return false, fmt.Errorf("phase %s, node %q: %s", ro.Status.Phase, ro.Status.CurrentNode, ro.Status.Message)
	})
	return &ro
}

func phaseIs(p api.RolloutPhase) func(*api.ControlPlaneRollout) bool {
	return func(ro *api.ControlPlaneRollout) bool { return ro.Status.Phase == p }
}

func nodePhases(ro *api.ControlPlaneRollout) string {
	var out []string
	for _, n := range ro.Status.Nodes {
		out = append(out, n.Name+"="+string(n.Phase))
	}
	return strings.Join(out, ",")
}

func TestControlPlaneRolloutDoesNodesOneAtATimeInOrderWithTheWorkloadStoppedAndRestoredExactly(t *testing.T) {
	e, cl := cpEnv(t)
	e.statefulSet("provider", 3)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2", "cp-3")
	var replicasAtFirst *int32
	agents.onStart = func(node string) {
		if node == "cp-1" {
			replicasAtFirst = e.statefulSetNamed("provider").Spec.Replicas
		}
	}
	agents.start()
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) {
		s.Quiesce = []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: e.ns, Name: "provider"}}
	})
	e.start()
	cpRollout(t, cl, "renew-all", nil)

	ro := waitCPRollout(t, cl, "renew-all", "to succeed", 3*time.Minute, phaseIs(api.PhaseSucceeded))
	agents.check("cp-1", "cp-2", "cp-3")
	if replicasAtFirst == nil || *replicasAtFirst != 0 {
		t.Errorf("the StatefulSet had %v replicas when cp-1 started, want 0", replicasAtFirst)
	}
	s := e.statefulSetNamed("provider")
	if *s.Spec.Replicas != 3 || s.Annotations[api.AnnotationQuiescedBy] != "" || s.Annotations[api.AnnotationQuiescedReplicas] != "" {
		t.Errorf("the StatefulSet has %d replicas and annotations %v, want 3 and no quiesce marks", *s.Spec.Replicas, s.Annotations)
	}
	if got := nodePhases(ro); got != "cp-1=Succeeded,cp-2=Succeeded,cp-3=Succeeded" {
		t.Errorf("nodes %s", got)
	}
	if c := ro.Status.Nodes[0].Components; len(c) != 1 || c[0].State != api.RestartVerified {
		t.Errorf("the agent's report was not copied: %+v", c)
	}
	if ro.Status.Progress != "3/3 nodes" || !apimeta.IsStatusConditionTrue(ro.Status.Conditions, api.ConditionReady) ||
		!apimeta.IsStatusConditionTrue(ro.Status.Conditions, api.ConditionComplete) {
		t.Errorf("progress %q, conditions %+v", ro.Status.Progress, ro.Status.Conditions)
	}
	if ro.Status.Settings == nil || ro.Status.Settings.HealthTimeout.Duration != api.DefaultControlPlaneHealthTimeout {
		t.Errorf("settings not recorded with their defaults: %+v", ro.Status.Settings)
	}
}

func TestControlPlaneRolloutStopsWhenANodeFailsAndStillRestoresTheWorkload(t *testing.T) {
	e, cl := cpEnv(t)
	e.statefulSet("provider", 3)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2", "cp-3")
	agents.fail["cp-2"] = true
	agents.start()
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) {
		s.Quiesce = []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: e.ns, Name: "provider"}}
	})
	e.start()
	cpRollout(t, cl, "renew-all", nil)

	ro := waitCPRollout(t, cl, "renew-all", "to fail", 3*time.Minute, phaseIs(api.PhaseFailed))
	time.Sleep(2 * time.Second) // cp-3 would have had its turn by now
	agents.check("cp-1", "cp-2")
	if got := nodePhases(ro); got != "cp-1=Succeeded,cp-2=Failed,cp-3=Pending" {
		t.Errorf("nodes %s", got)
	}
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed); c == nil || c.Reason != api.ReasonNodeFailed || !strings.Contains(c.Message, "cp-2") {
		t.Errorf("Failed condition %+v", c)
	}
	if s := e.statefulSetNamed("provider"); *s.Spec.Replicas != 3 || s.Annotations[api.AnnotationQuiescedBy] != "" {
		t.Errorf("the StatefulSet has %d replicas, quiesced-by %q after the failure, want 3 and none", *s.Spec.Replicas, s.Annotations[api.AnnotationQuiescedBy])
	}
}

func TestControlPlaneRolloutRefusesToStartWithoutAnAgentAndTouchesNothing(t *testing.T) {
	e, cl := cpEnv(t)
	e.statefulSet("provider", 3)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2", "cp-3")
	if err := cl.Delete(context.Background(), &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: "cp-3"}}); err != nil {
		t.Fatal(err)
	}
	agents.nodes = []string{"cp-1", "cp-2"}
	agents.start()
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) {
		s.Quiesce = []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: e.ns, Name: "provider"}}
	})
	e.start()
	cpRollout(t, cl, "renew-all", nil)

	ro := waitCPRollout(t, cl, "renew-all", "to be refused", time.Minute, phaseIs(api.PhaseFailed))
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed); c == nil || c.Reason != api.ReasonAgentMissing || !strings.Contains(c.Message, "cp-3") {
		t.Errorf("Failed condition %+v, want AgentMissing naming cp-3", c)
	}
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled %+v", c)
	}
	agents.check()
	if s := e.statefulSetNamed("provider"); *s.Spec.Replicas != 3 || s.Annotations[api.AnnotationQuiescedBy] != "" {
		t.Errorf("the refused rollout touched the StatefulSet: %d replicas, quiesced-by %q", *s.Spec.Replicas, s.Annotations[api.AnnotationQuiescedBy])
	}
}

// An agent whose kubeadm folder is mounted read-only (the chart's default) cannot renew: with renewal
// on, the rollout is refused before anything is touched, naming the node and the chart key, on its
// Failed condition and in an Event of the same reason.
func TestControlPlaneRolloutRefusesRenewalWhenAnAgentCannotWriteThePKI(t *testing.T) {
	e, cl := cpEnv(t)
	e.statefulSet("provider", 3)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2")
	agents.set(func(a *fakeAgents) { a.readOnly["cp-2"] = true })
	agents.report(context.Background(), "cp-2", func(*api.NodeCertificatesStatus) {})
	agents.start()
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) {
		s.Quiesce = []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: e.ns, Name: "provider"}}
	})
	e.start()
	cpRollout(t, cl, "renew-read-only", nil)

	ro := waitCPRollout(t, cl, "renew-read-only", "to be refused", time.Minute, phaseIs(api.PhaseFailed))
	c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed)
	if c == nil || c.Reason != api.ReasonRenewalNotPossible || !strings.Contains(c.Message, "agent on cp-2 cannot write") ||
		!strings.Contains(c.Message, "nodeAgent.controlPlaneRollouts.renew") || strings.Contains(c.Message, "cp-1") {
		t.Errorf("Failed condition %+v, want RenewalNotPossible naming cp-2 (only) and the chart key", c)
	}
	clustertest.Eventually(t, time.Minute, "a Warning Event RenewalNotPossible", func(ctx context.Context) (bool, error) {
		evs, err := e.c.Client.EventsV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=renew-read-only"})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Reason == api.ReasonRenewalNotPossible && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Note, "cp-2") {
				return true, nil
			}
		}
		return false, nil
	})
	agents.check()
	if s := e.statefulSetNamed("provider"); *s.Spec.Replicas != 3 || s.Annotations[api.AnnotationQuiescedBy] != "" {
		t.Errorf("the refused rollout touched the StatefulSet: %d replicas, quiesced-by %q", *s.Spec.Replicas, s.Annotations[api.AnnotationQuiescedBy])
	}

	// With renewal off, the same agents restart what they can: the rollout runs.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p api.ControlPlanePolicy
		if err := cl.Get(context.Background(), client.ObjectKey{Name: api.ControlPlanePolicyName}, &p); err != nil {
			return err
		}
		p.Spec.Renewal.Enabled = ptr.To(false)
		return cl.Update(context.Background(), &p)
	}); err != nil {
		t.Fatal(err)
	}
	cpRollout(t, cl, "restart-only", nil)
	waitCPRollout(t, cl, "restart-only", "to succeed without renewal", 2*time.Minute, phaseIs(api.PhaseSucceeded))
	agents.check("cp-1", "cp-2")
}

func TestControlPlaneRolloutRefusesAnUnknownNodeNamingIt(t *testing.T) {
	e, cl := cpEnv(t)
	newFakeAgents(t, cl, e.ns, "cp-1").start()
	e.start()
	cpRollout(t, cl, "one-node", func(s *api.ControlPlaneRolloutSpec) { s.Nodes = []string{"cp-1", "cp-9"} })
	ro := waitCPRollout(t, cl, "one-node", "to be refused", time.Minute, phaseIs(api.PhaseFailed))
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed); c == nil || c.Reason != api.ReasonUnknownNode || !strings.Contains(c.Message, "cp-9") {
		t.Errorf("Failed condition %+v, want UnknownNode naming cp-9", c)
	}
}

func TestControlPlaneRolloutWaitsWhileAnotherNodeHoldsTheLease(t *testing.T) {
	e, cl := cpEnv(t)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2")
	agents.start()
	cpPolicy(t, cl, nil)
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: api.ControlPlaneLeaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("cp-elsewhere"), LeaseDurationSeconds: ptr.To[int32](3600), AcquireTime: &now, RenewTime: &now}}
	if err := cl.Create(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	e.start()
	cpRollout(t, cl, "renew-all", nil)

	waitCPRollout(t, cl, "renew-all", "to wait for the Lease", time.Minute, func(ro *api.ControlPlaneRollout) bool {
		return strings.Contains(ro.Status.Message, "held by node cp-elsewhere")
	})
	time.Sleep(3 * time.Second)
	ro := waitCPRollout(t, cl, "renew-all", "to still wait", time.Second, func(*api.ControlPlaneRollout) bool { return true })
	if got := nodePhases(ro); got != "cp-1=Pending,cp-2=Pending" {
		t.Errorf("a node got its turn while the Lease was held by another: %s", got)
	}
	agents.check()
	if err := cl.Delete(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	waitCPRollout(t, cl, "renew-all", "to succeed once the Lease is released", 2*time.Minute, phaseIs(api.PhaseSucceeded))
	agents.check("cp-1", "cp-2")
}

func TestControlPlaneRolloutResumesAfterTheControllerRestartsWithoutAnotherTurn(t *testing.T) {
	e, cl := cpEnv(t)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2", "cp-3")
	release := make(chan struct{})
	agents.hold["cp-2"] = release
	agents.start()
	cpPolicy(t, cl, nil)
	e.start()
	cpRollout(t, cl, "renew-all", nil)

	waitCPRollout(t, cl, "renew-all", "to reach cp-2", 2*time.Minute, func(ro *api.ControlPlaneRollout) bool {
		return ro.Status.CurrentNode == "cp-2" && len(ro.Status.Nodes) == 3 && ro.Status.Nodes[1].Phase == api.NodeInProgress &&
			strings.Contains(ro.Status.Message, "restarting kube-apiserver")
	})
	e.stop()
	close(release) // cp-2 finishes while no controller runs
	time.Sleep(2 * time.Second)
	e.start()
	ro := waitCPRollout(t, cl, "renew-all", "to succeed", 2*time.Minute, phaseIs(api.PhaseSucceeded))
	agents.check("cp-1", "cp-2", "cp-3")
	if got := nodePhases(ro); got != "cp-1=Succeeded,cp-2=Succeeded,cp-3=Succeeded" {
		t.Errorf("nodes %s", got)
	}
}

func TestControlPlaneRolloutWaitsForTheWindowAndAnEmergencyDoesNot(t *testing.T) {
	e, cl := cpEnv(t)
	agents := newFakeAgents(t, cl, e.ns, "cp-1")
	agents.start()
	// Open on 1 January only: closed whenever the test runs, but for that day.
	window := api.MaintenanceWindow{Schedule: "0 0 1 1 *", Duration: metav1.Duration{Duration: time.Minute}}
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) { s.Windows = []api.MaintenanceWindow{window} })
	e.start()
	cpRollout(t, cl, "in-window", nil)

	ro := waitCPRollout(t, cl, "in-window", "to wait for the window", time.Minute, phaseIs(api.PhaseWaitingForWindow))
	if ro.Status.NextWindow == nil || ro.Status.NextWindow.Month() != time.January || ro.Status.NextWindow.Day() != 1 {
		t.Errorf("nextWindow %v, want 1 January", ro.Status.NextWindow)
	}
	clustertest.Eventually(t, time.Minute, "the policy to show the next window", func(ctx context.Context) (bool, error) {
		var p api.ControlPlanePolicy
		if err := cl.Get(ctx, client.ObjectKey{Name: api.ControlPlanePolicyName}, &p); err != nil {
			return false, err
		}
		return p.Status.NextWindow != nil && p.Status.NextWindow.Equal(ro.Status.NextWindow), nil
	})

	if err := cl.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	cpRollout(t, cl, "now", func(s *api.ControlPlaneRolloutSpec) {
		s.Emergency = &api.EmergencySpec{Reason: "the API server's certificate expired"}
	})
	ro = waitCPRollout(t, cl, "now", "to succeed outside the window", 2*time.Minute, phaseIs(api.PhaseSucceeded))
	if c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionEmergency); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Emergency condition %+v", c)
	}
	agents.check("cp-1")
}

// listCPRollouts lists every ControlPlaneRollout.
func listCPRollouts(t *testing.T, cl client.Client) []api.ControlPlaneRollout {
	t.Helper()
	var list api.ControlPlaneRolloutList
	if err := cl.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestTheControlPlaneTriggerCreatesOneRolloutFromAServesOldReportAndNoSecond(t *testing.T) {
	e, cl := cpEnv(t)
	agents := newFakeAgents(t, cl, e.ns, "cp-1", "cp-2")
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) { s.Trigger = api.ControlPlaneTriggerAutomatic })
	e.start()
	agents.start()
	time.Sleep(2 * time.Second)
	if items := listCPRollouts(t, cl); len(items) != 0 {
		t.Fatalf("a rollout was created with nothing due: %v", items[0].Name)
	}
	agents.set(func(a *fakeAgents) { a.servesOld["cp-2"] = true })
	agents.report(context.Background(), "cp-2", func(*api.NodeCertificatesStatus) {})

	var name string
	clustertest.Eventually(t, time.Minute, "a ControlPlaneRollout to be created", func(context.Context) (bool, error) {
		items := listCPRollouts(t, cl)
		if len(items) == 1 {
			name = items[0].Name
		}
		return len(items) == 1, nil
	})
	ro := waitCPRollout(t, cl, name, "to succeed", 2*time.Minute, phaseIs(api.PhaseSucceeded))
	if ro.Spec.Trigger != api.ControlPlaneTriggerServesOld || !strings.HasPrefix(ro.Name, "control-plane-") {
		t.Errorf("rollout %s with trigger %s", ro.Name, ro.Spec.Trigger)
	}
	time.Sleep(3 * time.Second)
	if items := listCPRollouts(t, cl); len(items) != 1 {
		t.Errorf("%d rollouts, want the one", len(items))
	}
	clustertest.Eventually(t, time.Minute, "the policy to name its last rollout", func(ctx context.Context) (bool, error) {
		var p api.ControlPlanePolicy
		if err := cl.Get(ctx, client.ObjectKey{Name: api.ControlPlanePolicyName}, &p); err != nil {
			return false, err
		}
		return p.Status.LastRollout != nil && p.Status.LastRollout.Name == name && p.Status.LastRollout.Phase == api.PhaseSucceeded &&
			len(p.Status.DueNodes) == 0 && apimeta.IsStatusConditionTrue(p.Status.Conditions, api.ConditionValid), nil
	})
}

func TestAFailedControlPlaneRolloutBlocksTheAutomaticTrigger(t *testing.T) {
	e, cl := cpEnv(t)
	agents := newFakeAgents(t, cl, e.ns, "cp-1")
	agents.fail["cp-1"] = true
	agents.servesOld["cp-1"] = true
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) { s.Trigger = api.ControlPlaneTriggerAutomatic })
	agents.start()
	e.start()

	var name string
	clustertest.Eventually(t, time.Minute, "a ControlPlaneRollout to be created", func(context.Context) (bool, error) {
		items := listCPRollouts(t, cl)
		if len(items) > 0 {
			name = items[0].Name
		}
		return len(items) > 0, nil
	})
	waitCPRollout(t, cl, name, "to fail", 2*time.Minute, phaseIs(api.PhaseFailed))
	clustertest.Eventually(t, time.Minute, "the policy to be Blocked by "+name, func(ctx context.Context) (bool, error) {
		var p api.ControlPlanePolicy
		if err := cl.Get(ctx, client.ObjectKey{Name: api.ControlPlanePolicyName}, &p); err != nil {
			return false, err
		}
		c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionBlocked)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == api.ReasonPreviousRolloutFailed && strings.Contains(c.Message, name) &&
			slices.Equal(p.Status.DueNodes, []string{"cp-1"}), nil
	})
	time.Sleep(3 * time.Second)
	if items := listCPRollouts(t, cl); len(items) != 1 {
		t.Errorf("%d rollouts after a failure, want only the failed one", len(items))
	}

	// Deleting the failed rollout unblocks it: the next is created.
	if err := cl.Delete(context.Background(), &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "a new ControlPlaneRollout once the failed one is deleted", func(context.Context) (bool, error) {
		items := listCPRollouts(t, cl)
		return len(items) == 1 && items[0].Name != name, nil
	})
}

// quiescedStatefulSet creates a StatefulSet at zero replicas that quiescer holds, with 3 recorded.
func (e *env) quiescedStatefulSet(name, quiescer string) {
	e.t.Helper()
	e.statefulSet(name, 0)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := e.statefulSetNamed(name)
		s.Annotations = map[string]string{api.AnnotationQuiescedBy: quiescer, api.AnnotationQuiescedReplicas: "3"}
		_, err := e.c.Client.AppsV1().StatefulSets(e.ns).Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestSweeperLeavesAWorkloadToAnUnfinishedControlPlaneRolloutAndRestoresItOnceTheRolloutIsGone(t *testing.T) {
	e, cl := cpEnv(t)
	newFakeAgents(t, cl, e.ns, "cp-1").start()
	cpPolicy(t, cl, func(s *api.ControlPlanePolicySpec) {
		s.Windows = []api.MaintenanceWindow{{Schedule: "0 0 1 1 *", Duration: metav1.Duration{Duration: time.Minute}}}
	})
	cpRollout(t, cl, "busy", nil)
	e.quiescedStatefulSet("held", api.ControlPlaneQuiescer("busy"))
	e.quiescedStatefulSet("orphan", api.ControlPlaneQuiescer("gone"))
	e.start()

	clustertest.Eventually(t, time.Minute, "the orphan to be restored", func(context.Context) (bool, error) {
		s := e.statefulSetNamed("orphan")
		return *s.Spec.Replicas == 3 && s.Annotations[api.AnnotationQuiescedBy] == "", nil
	})
	waitCPRollout(t, cl, "busy", "to wait for its window", time.Minute, phaseIs(api.PhaseWaitingForWindow))
	time.Sleep(2 * time.Second)
	if s := e.statefulSetNamed("held"); *s.Spec.Replicas != 0 || s.Annotations[api.AnnotationQuiescedBy] != api.ControlPlaneQuiescer("busy") {
		t.Fatalf("the sweeper took a workload from an unfinished ControlPlaneRollout: %d replicas, quiesced-by %q", *s.Spec.Replicas, s.Annotations[api.AnnotationQuiescedBy])
	}
	if err := cl.Delete(context.Background(), &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "busy"}}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the workload of the deleted rollout to be restored", func(context.Context) (bool, error) {
		s := e.statefulSetNamed("held")
		return *s.Spec.Replicas == 3 && s.Annotations[api.AnnotationQuiescedBy] == "", nil
	})
}
