package hold

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

var (
	now      = time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	provider = Key{api.KindStatefulSet, "provider"}
	me       = api.HoldQuiescer("maint")
)

func holdOf(phase api.HoldPhase, mods ...func(*api.MaintenanceHold)) *api.MaintenanceHold {
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Name: "maint", Namespace: "akash", Generation: 1}, Spec: api.MaintenanceHoldSpec{
		Targets: api.HoldTargets{Workloads: []api.ScalableWorkloadReference{{Kind: provider.Kind, Name: provider.Name}}},
	}}
	h.Status.Phase = phase
	for _, m := range mods {
		m(h)
	}
	return h
}

// listed stores the provider in the hold's status in state, with original 3.
func listed(state api.HeldState) func(*api.MaintenanceHold) {
	return func(h *api.MaintenanceHold) {
		h.Status.Workloads = []api.HeldWorkload{{Kind: provider.Kind, Name: provider.Name, State: state, OriginalReplicas: ptr.To[int32](3)}}
	}
}

func running(replicas int32, pods int) Workload {
	return Workload{Exists: true, Replicas: replicas, Pods: pods}
}

func heldBy(by string, replicas int32, pods int, recorded *int32) Workload {
	return Workload{Exists: true, Replicas: replicas, Pods: pods, QuiescedBy: by, QuiescedReplicas: recorded}
}

func TestNext(t *testing.T) {
	type want struct {
		phase   api.HoldPhase
		state   api.HeldState // of the provider, when listed
		actions []string
		events  []string
		ready   metav1.ConditionStatus
		stalled bool
		message string
	}
	cases := map[string]struct {
		in   Input
		want want
	}{
		"records the workloads before scaling anything": {
			in:   Input{Now: now, Hold: holdOf(""), Workloads: map[Key]Workload{provider: running(3, 3)}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldPending, ready: metav1.ConditionFalse, message: "recording 1 workload(s)"},
		},
		"is stalled, and scales nothing, when a named workload does not exist": {
			in:   Input{Now: now, Hold: holdOf(""), Workloads: map[Key]Workload{}},
			want: want{phase: api.HoldPhasePending, events: []string{api.ReasonInvalidHold}, ready: metav1.ConditionFalse, stalled: true, message: "does not exist"},
		},
		"is stalled when a target names another namespace": {
			in:   Input{Now: now, Hold: holdOf("", func(h *api.MaintenanceHold) { h.Spec.Targets.Workloads[0].Namespace = "other" }), Workloads: map[Key]Workload{provider: running(3, 3)}},
			want: want{phase: api.HoldPhasePending, events: []string{api.ReasonInvalidHold}, ready: metav1.ConditionFalse, stalled: true, message: "another namespace"},
		},
		"is stalled when its selector matches nothing": {
			in: Input{Now: now, Hold: holdOf("", func(h *api.MaintenanceHold) {
				h.Spec.Targets = api.HoldTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "none"}}}
			}), Workloads: map[Key]Workload{}},
			want: want{phase: api.HoldPhasePending, events: []string{api.ReasonInvalidHold}, ready: metav1.ConditionFalse, stalled: true, message: "matches no Deployment or StatefulSet"},
		},
		"scales a recorded workload to zero, recording its count": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseDraining, listed(api.HeldPending)), Workloads: map[Key]Workload{provider: running(3, 3)}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldDraining, actions: []string{"ScaleDown StatefulSet/provider 3"}, events: []string{api.ReasonScaledDown}, ready: metav1.ConditionFalse},
		},
		"does not scale down twice after a crash between the scale-down and the status update": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseDraining, listed(api.HeldPending)), Workloads: map[Key]Workload{provider: heldBy(me, 0, 2, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldDraining, ready: metav1.ConditionFalse, message: "waiting for 2 pod(s)"},
		},
		"waits for a CertRollout that quiesced the workload to restore it": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseDraining, listed(api.HeldPending)), Workloads: map[Key]Workload{provider: heldBy("web-1", 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldPending, events: []string{api.ReasonQuiesceConflict}, ready: metav1.ConditionFalse, message: "quiesced by CertRollout web-1"},
		},
		"is held, and Ready, only once no pod is left": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseDraining, listed(api.HeldDraining)), Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseHeld, state: api.HeldHeld, events: []string{api.ReasonDrained, api.ReasonHeld}, ready: metav1.ConditionTrue, message: "no pod left"},
		},
		"scales a held workload back to zero when an HPA scales it up, and says something fights the hold": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld)), Workloads: map[Key]Workload{provider: heldBy(me, 2, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldDraining, actions: []string{"Enforce StatefulSet/provider 3"}, events: []string{api.ReasonHoldEnforced}, ready: metav1.ConditionFalse, message: "fights the hold"},
		},
		"marks a held workload again, with its original count, when someone strips its marks": {
			in:   Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld)), Workloads: map[Key]Workload{provider: running(0, 0)}},
			want: want{phase: api.HoldPhaseDraining, state: api.HeldDraining, actions: []string{"Enforce StatefulSet/provider 3"}, ready: metav1.ConditionFalse, message: "lost its hold marks"},
		},
		"restores the count recorded on the workload when released": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld), func(h *api.MaintenanceHold) { h.Spec.Release = true }),
				Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseReleased, state: api.HeldRestored, actions: []string{"Restore StatefulSet/provider 3"}, events: []string{api.ReasonHoldReleasing, api.ReasonRestored, api.ReasonReleased}, ready: metav1.ConditionTrue},
		},
		"releases itself when it expires": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld), func(h *api.MaintenanceHold) { h.Spec.ExpiresAt = &metav1.Time{Time: now.Add(-time.Second)} }),
				Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseReleased, state: api.HeldRestored, actions: []string{"Restore StatefulSet/provider 3"}, events: []string{api.ReasonHoldExpired, api.ReasonRestored, api.ReasonReleased}, ready: metav1.ConditionTrue, message: "expired"},
		},
		"keeps holding until its expiry, and looks again then": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld), func(h *api.MaintenanceHold) { h.Spec.ExpiresAt = &metav1.Time{Time: now.Add(10 * time.Second)} }),
				Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseHeld, state: api.HeldHeld, ready: metav1.ConditionTrue},
		},
		"restores the count in its status when the workload lost the recorded one": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, listed(api.HeldHeld), func(h *api.MaintenanceHold) { h.DeletionTimestamp = &metav1.Time{Time: now} }),
				Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, nil)}},
			want: want{phase: api.HoldPhaseReleased, state: api.HeldRestored, actions: []string{"Restore StatefulSet/provider 3"}, events: []string{api.ReasonHoldReleasing, api.ReasonRestored, api.ReasonReleased}, ready: metav1.ConditionTrue},
		},
		"never guesses a count: with none recorded anywhere the workload keeps its replicas": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseHeld, func(h *api.MaintenanceHold) {
				listed(api.HeldHeld)(h)
				h.Status.Workloads[0].OriginalReplicas = nil
				h.Spec.Release = true
			}), Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, nil)}},
			want: want{phase: api.HoldPhaseReleased, state: api.HeldRestored, actions: []string{"Release StatefulSet/provider 0"}, events: []string{api.ReasonHoldReleasing, api.ReasonNothingRecorded, api.ReasonReleased}, ready: metav1.ConditionTrue},
		},
		"does not restore a workload it never scaled down": {
			in: Input{Now: now, Hold: holdOf(api.HoldPhaseDraining, listed(api.HeldPending), func(h *api.MaintenanceHold) { h.Spec.Release = true }),
				Workloads: map[Key]Workload{provider: heldBy("web-1", 0, 0, ptr.To[int32](3))}},
			want: want{phase: api.HoldPhaseReleased, state: api.HeldRestored, events: []string{api.ReasonHoldReleasing, api.ReasonReleased}, ready: metav1.ConditionTrue},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Next(tc.in)
			if got.Status.Phase != tc.want.phase {
				t.Errorf("phase %s, want %s (message %q)", got.Status.Phase, tc.want.phase, got.Status.Message)
			}
			if tc.want.state != "" {
				if len(got.Status.Workloads) != 1 || got.Status.Workloads[0].State != tc.want.state {
					t.Errorf("workloads %+v, want the provider %s", got.Status.Workloads, tc.want.state)
				}
			}
			var actions, events []string
			for _, a := range got.Actions {
				actions = append(actions, fmt.Sprintf("%s %s %d", a.Type, a.Key, a.Replicas))
			}
			for _, e := range got.Events {
				events = append(events, e.Reason)
			}
			if !slices.Equal(actions, tc.want.actions) {
				t.Errorf("actions %q, want %q", actions, tc.want.actions)
			}
			if !slices.Equal(events, tc.want.events) {
				t.Errorf("events %q, want %q", events, tc.want.events)
			}
			ready := apimeta.FindStatusCondition(got.Status.Conditions, api.ConditionReady)
			if ready == nil || ready.Status != tc.want.ready || ready.ObservedGeneration != 1 {
				t.Errorf("Ready %+v, want %s at generation 1", ready, tc.want.ready)
			}
			if s := apimeta.IsStatusConditionTrue(got.Status.Conditions, api.ConditionStalled); s != tc.want.stalled {
				t.Errorf("Stalled %v, want %v", s, tc.want.stalled)
			}
			if !strings.Contains(got.Status.Message, tc.want.message) {
				t.Errorf("message %q, want it to contain %q", got.Status.Message, tc.want.message)
			}
		})
	}
}

// A hold that keeps holding wakes up when it expires, not later.
func TestAHoldLooksAgainWhenItExpires(t *testing.T) {
	h := holdOf(api.HoldPhaseHeld, listed(api.HeldHeld), func(h *api.MaintenanceHold) { h.Spec.ExpiresAt = &metav1.Time{Time: now.Add(10 * time.Second)} })
	got := Next(Input{Now: now, Hold: h, Workloads: map[Key]Workload{provider: heldBy(me, 0, 0, ptr.To[int32](3))}})
	if got.RequeueAfter != 10*time.Second {
		t.Errorf("requeue after %s, want 10s (the expiry)", got.RequeueAfter)
	}
}
