package rolloutstatus

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus/rolloutstatustest"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func rollout(phase api.RolloutPhase) *api.CertRollout {
	return &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Name: "r", Generation: 4}, Status: api.CertRolloutStatus{Phase: phase, Message: "quiescing"}}
}

func TestRecorderSetsTheKstatusConditionsOfEachPhase(t *testing.T) {
	for name, tc := range map[string]struct {
		step      func(r *Recorder)
		phase     api.RolloutPhase
		event     string
		eventType string
	}{
		"in progress: Reconciling, not Ready": {step: func(r *Recorder) { r.SetKstatus() }, phase: api.PhaseQuiescing},
		"succeeded: Ready": {step: func(r *Recorder) { r.SetKstatus(); r.Succeed("2 target(s) restarted") }, phase: api.PhaseSucceeded,
			event: "Succeeded: 2 target(s) restarted", eventType: Normal},
		"failed: Stalled, not Ready, with the failure's reason": {step: func(r *Recorder) { r.SetKstatus(); r.Fail("TargetFailed", "1 of 2 target(s) failed") },
			phase: api.PhaseFailed, event: "Failed: 1 of 2 target(s) failed", eventType: Warning},
	} {
		t.Run(name, func(t *testing.T) {
			r := New(rollout(api.PhaseQuiescing), now)
			tc.step(r)
			if r.Status.Phase != tc.phase {
				t.Fatalf("phase %s, want %s", r.Status.Phase, tc.phase)
			}
			rolloutstatustest.CheckKstatus(t, 4, r.Status)
			switch {
			case tc.event == "" && len(r.Events) != 0:
				t.Errorf("events %+v, want none", r.Events)
			case tc.event != "" && (len(r.Events) != 1 || r.Events[0].Message != tc.event || r.Events[0].Type != tc.eventType):
				t.Errorf("events %+v, want one %s %q", r.Events, tc.eventType, tc.event)
			}
			if tc.phase.Finished() && (r.Status.CompletionTime == nil || !r.Status.CompletionTime.Time.Equal(now)) {
				t.Errorf("completion time %v, want the step's clock", r.Status.CompletionTime)
			}
		})
	}
}

func TestRecorderLeavesItsInputAlone(t *testing.T) {
	ro := rollout(api.PhaseRestarting)
	New(ro, now).Fail("Aborted", "aborted")
	if ro.Status.Phase != api.PhaseRestarting || len(ro.Status.Conditions) != 0 {
		t.Fatalf("the rollout given to New changed: %+v", ro.Status)
	}
}

func TestWaitKeepsTheEarliestWakeUp(t *testing.T) {
	r := New(rollout(api.PhaseRestarting), now)
	r.Wait(time.Minute)
	r.Wait(5 * time.Second)
	r.Wait(time.Hour)
	if r.RequeueAfter != 5*time.Second {
		t.Errorf("requeue after %s, want the earliest, 5s", r.RequeueAfter)
	}
	r.Wait(-time.Second)
	if r.RequeueAfter != time.Second {
		t.Errorf("requeue after %s, want a second for a wake-up already due", r.RequeueAfter)
	}
}

func TestSettleThenStart(t *testing.T) {
	// Items: "f" in flight and staying, "d" in flight and finishing now, "p" pending, "s" pending that
	// stops the starts, "x" neither.
	for name, tc := range map[string]struct {
		items   string
		limit   int
		started string // the items start was called for, in order (it ignores those not pending)
		active  int
	}{
		"starts pending items in order up to the limit":                  {items: "ppp", limit: 2, started: "01", active: 2},
		"counts items still in flight against the limit":                 {items: "fpp", limit: 2, started: "01", active: 2},
		"frees the slot of an item that finished in this step":           {items: "dpp", limit: 1, started: "01", active: 1},
		"skips items that are neither, without taking a slot":            {items: "xpxp", limit: 2, started: "0123", active: 2},
		"stops starting when start says so, leaving later items pending": {items: "psp", limit: 3, started: "01", active: 1},
		"starts nothing when every slot is taken":                        {items: "ffp", limit: 2, started: "", active: 2},
	} {
		t.Run(name, func(t *testing.T) {
			started := ""
			active := SettleThenStart(len(tc.items), tc.limit,
				func(i int) bool { return tc.items[i] == 'f' },
				func(i int) (bool, bool) {
					started += string(rune('0' + i))
					switch tc.items[i] {
					case 'p':
						return true, false
					case 's':
						return false, true
					}
					return false, false
				})
			if started != tc.started || active != tc.active {
				t.Errorf("asked to start %q with %d in flight, want %q with %d", started, active, tc.started, tc.active)
			}
		})
	}
}

// A rollout that finished before the kstatus conditions existed gets them from its phase and its Failed
// condition, and a second step changes nothing (the controller writes only a change).
func TestSetKstatusBackfillsARolloutThatFinishedBeforeThem(t *testing.T) {
	ro := rollout(api.PhaseFailed)
	ro.Status.Message = "1 of 2 leaf Certificate(s) failed to re-issue: shop/web"
	ro.Status.Conditions = []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: "LeavesFailed", Message: ro.Status.Message}}
	r := New(ro, now)
	r.SetKstatus()
	rolloutstatustest.CheckKstatus(t, 4, r.Status)
	if len(r.Events) != 0 {
		t.Errorf("events %+v, want none for a rollout long finished", r.Events)
	}
	ro.Status = r.Status
	again := New(ro, now.Add(time.Hour))
	again.SetKstatus()
	if !equality.Semantic.DeepEqual(again.Status, ro.Status) {
		t.Errorf("a second step changed the status:\n%+v\nwas\n%+v", again.Status.Conditions, ro.Status.Conditions)
	}
}
