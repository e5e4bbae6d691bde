package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// emergencyRollout creates a CertRollout of policy that alice asks to start at once.
func (e *env) emergencyRollout(name, policy, reason string) {
	e.t.Helper()
	ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: api.CertRolloutSpec{
		Policy:    policy,
		Trigger:   api.RolloutTrigger{Type: api.TriggerManual, Message: reason},
		Emergency: &api.EmergencySpec{Reason: reason, RequestedBy: "alice"},
	}}
	if err := e.crClient().Create(context.Background(), ro); err != nil {
		e.t.Fatal(err)
	}
}

// hasEventSaying is hasEvent for an Event whose message also contains each of says.
func (e *env) hasEventSaying(regarding, eventType, reason string, says ...string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + regarding})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Reason != reason || ev.Type != eventType {
				continue
			}
			found := true
			for _, s := range says {
				found = found && strings.Contains(ev.Note, s)
			}
			if found {
				return true, nil
			}
		}
		return false, nil
	}
}

// checkEmergencyRecord asserts that a finished emergency rollout succeeded and recorded who asked, why
// and what it overrode, on its Emergency condition and an EmergencyStart Event.
func (e *env) checkEmergencyRecord(ro *api.CertRollout, reason, overrode string) {
	e.t.Helper()
	if ro.Status.Phase != api.PhaseSucceeded {
		e.t.Fatalf("emergency rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionEmergency)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != api.ReasonEmergencyStart ||
		!strings.Contains(c.Message, "requested by alice: "+reason) || !strings.Contains(c.Message, overrode) {
		e.t.Errorf("Emergency condition %+v: want True %s naming alice, %q and %q", c, api.ReasonEmergencyStart, reason, overrode)
	}
	clustertest.Eventually(e.t, 30*time.Second, "an EmergencyStart Event naming who asked and why",
		e.hasEventSaying(ro.Name, corev1.EventTypeWarning, api.ReasonEmergencyStart, "requested by alice: "+reason, overrode))
}

func TestAnEmergencyRolloutStartsAtOnceInAClosedWindowAndStillQuiesces(t *testing.T) {
	e := newEnv(t, testOptions())
	e.governedWeb()
	e.deploy(e.workers("workers", 2, time.Second))
	e.waitAvailable("web")
	e.waitAvailable("workers")
	e.createPolicy("web", api.RolloutPolicySpec{
		Selector: roleWeb,
		Windows:  []api.MaintenanceWindow{{Schedule: "0 3 29 2 *", Duration: metav1.Duration{Duration: time.Hour}}}, // leap days only
		Quiesce:  []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Minute}}},
	})
	e.start()
	sets := e.rollouts("web")
	e.emergencyRollout("now", "web", "INC-42: the portal serves an expired certificate")
	ro := e.waitRollout(2*time.Minute, "the emergency CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	e.checkEmergencyRecord(ro, "INC-42: the portal serves an expired certificate", "the maintenance windows")
	if q := ro.Status.Quiesced; len(q) != 1 || q[0].State != api.QuiesceRestored || q[0].DrainedAt == nil {
		t.Errorf("the workers were not quiesced first and restored: %+v", q)
	}
	if got := e.replicas("workers"); got != 2 {
		t.Errorf("workers restored to %d replicas, want 2", got)
	}
	if e.rollouts("web") != sets+1 {
		t.Errorf("web rolled %d times, want once", e.rollouts("web")-sets)
	}
}

func TestAnEmergencyRolloutStartsAtOnceOnASuspendedPolicy(t *testing.T) {
	e := newEnv(t, testOptions())
	e.governedWeb()
	e.waitAvailable("web")
	e.createPolicy("web", api.RolloutPolicySpec{Selector: roleWeb, Suspend: true})
	e.start()
	sets := e.rollouts("web")
	e.emergencyRollout("now", "web", "CHG-7: rotate before the audit")
	ro := e.waitRollout(2*time.Minute, "the emergency CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	e.checkEmergencyRecord(ro, "CHG-7: rotate before the audit", "RolloutPolicy web being suspended")
	if e.rollouts("web") != sets+1 {
		t.Errorf("web rolled %d times, want once", e.rollouts("web")-sets)
	}
}
