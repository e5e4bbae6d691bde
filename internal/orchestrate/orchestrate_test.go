package orchestrate

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
	"github.com/certrollout/certrollout/internal/rolloutstatus/rolloutstatustest"
	"github.com/certrollout/certrollout/internal/schedule"
)

var (
	now      = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	build    = Key{"Deployment", "build"}
	api2     = Key{"Deployment", "api"}
	workers  = Key{"Deployment", "workers"}
	database = Key{"StatefulSet", "db"}
)

func rollout(phase api.RolloutPhase, targets ...Key) *api.CertRollout {
	r := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Name: "ops-1", Namespace: "ops", Generation: 2}, Spec: api.CertRolloutSpec{Policy: "ops"}}
	r.Status.Phase = phase
	for _, t := range targets {
		r.Spec.Targets = append(r.Spec.Targets, api.WorkloadReference{Kind: t.Kind, Name: t.Name})
		if phase != "" {
			r.Status.Targets = append(r.Status.Targets, api.TargetStatus{Kind: t.Kind, Name: t.Name, State: api.TargetPending})
		}
	}
	return r
}

func policy(mods ...func(*Policy)) *Policy {
	p := &Policy{Name: "ops", Spec: api.RolloutPolicySpec{
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Hour}}},
		HealthTimeout: metav1.Duration{Duration: 5 * time.Minute},
	}}
	for _, m := range mods {
		m(p)
	}
	return p
}

// emergency makes r an emergency rollout that alice asked for.
func emergency(r *api.CertRollout) {
	r.Spec.Emergency = &api.EmergencySpec{Reason: "INC-42: the portal serves an expired certificate", RequestedBy: "alice"}
}

func window(t *testing.T, spec string, d time.Duration) func(*Policy) {
	w, err := schedule.Parse(spec, d, "")
	if err != nil {
		t.Fatal(err)
	}
	return func(p *Policy) { p.Windows = append(p.Windows, w) }
}

func quiesced(state api.QuiesceState, original int32, scaledAgo time.Duration) func(*api.CertRollout) {
	return func(r *api.CertRollout) {
		q := api.QuiescedWorkload{Kind: workers.Kind, Name: workers.Name, State: state, OriginalReplicas: ptr.To(original)}
		if state != api.QuiescePending {
			q.ScaledDownAt = &metav1.Time{Time: now.Add(-scaledAgo)}
		}
		r.Status.Quiesced = append(r.Status.Quiesced, q)
	}
}

func target(k Key, state api.TargetState, startedAgo time.Duration) func(*api.CertRollout) {
	return func(r *api.CertRollout) {
		for i := range r.Status.Targets {
			if r.Status.Targets[i].Kind == k.Kind && r.Status.Targets[i].Name == k.Name {
				r.Status.Targets[i].State = state
				r.Status.Targets[i].StartedAt = &metav1.Time{Time: now.Add(-startedAgo)}
			}
		}
	}
}

// onto sets the trigger's certificates: the hash each target is rolled onto.
func onto(hashes map[Key]string) func(*api.CertRollout) {
	return func(r *api.CertRollout) {
		r.Spec.Trigger.Certificates = map[string]string{}
		for k, h := range hashes {
			r.Spec.Trigger.Certificates[k.Kind+"/"+k.Name] = h
		}
	}
}

func with(r *api.CertRollout, mods ...func(*api.CertRollout)) *api.CertRollout {
	for _, m := range mods {
		m(r)
	}
	return r
}

// world is the observed workloads: workers (3 replicas, pods running), build and api (certificate
// users), db.
func world(mods ...func(map[Key]Workload)) map[Key]Workload {
	w := map[Key]Workload{
		workers:  {Exists: true, Replicas: 3, Pods: 3},
		build:    {Exists: true, Replicas: 1, Pods: 1, RestartValue: "hash-build", RunningNotAfter: now.Add(30 * 24 * time.Hour)},
		api2:     {Exists: true, Replicas: 2, Pods: 2, RestartValue: "hash-api", RunningNotAfter: now.Add(30 * 24 * time.Hour)},
		database: {Exists: true, Replicas: 1, Pods: 1},
	}
	for _, m := range mods {
		m(w)
	}
	return w
}

func set(k Key, f func(*Workload)) func(map[Key]Workload) {
	return func(m map[Key]Workload) {
		w := m[k]
		f(&w)
		m[k] = w
	}
}

type want struct {
	phase    api.RolloutPhase
	actions  []string // "ScaleDown Deployment/workers 3", "Restart Deployment/build hash-build", "Restore ..."
	events   []string // reasons, in order
	requeue  time.Duration
	message  string // substring of status.message
	progress string
	// targets are "Kind/name State: message" of each target, when set; the message only if the target has
	// one.
	targets []string
}

// TestNext is one map-keyed table of named cases (STYLE.md: "Test the composed chain with one map-keyed
// table"); its length is its cases, the code that runs them is short.
func TestNext(t *testing.T) {
	for name, tc := range map[string]struct {
		in   Input
		want want
	}{
		"fails a rollout whose policy does not exist, touching nothing": {
			in:   Input{Rollout: rollout("", build), PolicyMissing: true, Workloads: world()},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonFailed}, message: `RolloutPolicy "ops" does not exist`},
		},
		"fails a manual rollout that names a workload that does not exist": {
			in:   Input{Rollout: rollout("", Key{"Deployment", "nope"}), Policy: policy(), Workloads: world()},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonFailed}, message: "target Deployment nope does not exist"},
		},
		"rejects a target in another namespace": {
			in: Input{Rollout: func() *api.CertRollout {
				r := rollout("", build)
				r.Spec.Targets[0].Namespace = "other"
				return r
			}(), Policy: policy(), Workloads: world()},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonFailed}, message: "in another namespace"},
		},
		"takes the policy's selected workloads when the rollout names no target": {
			in:   Input{Rollout: rollout(""), Policy: policy(func(p *Policy) { p.Spec.Quiesce = nil }), Selected: []api.WorkloadReference{{Kind: "Deployment", Name: "api"}}, Workloads: world()},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/api hash-api"}, events: []string{api.ReasonStarted, api.ReasonRestarted}, requeue: pollInterval, progress: "0/1 restarted"},
		},
		"starts at once without windows, and stores the quiesce list before scaling anything down": {
			in:   Input{Now: now, Rollout: rollout("", build), Policy: policy(), Workloads: world()},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonStarted}, requeue: time.Second, message: "recording the quiesce list"},
		},
		"scales the workers down once the quiesce list is stored, recording their replicas": {
			in:   Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(), Workloads: world()},
			want: want{phase: api.PhaseQuiescing, actions: []string{"ScaleDown Deployment/workers 3"}, events: []string{api.ReasonScaledDown}, requeue: pollInterval},
		},
		"waits for the next window and wakes up when it opens": {
			in:   Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(window(t, "0 2 * * *", time.Hour)), Workloads: world()},
			want: want{phase: api.PhaseWaitingForWindow, events: []string{api.ReasonWaitingForWindow}, requeue: 14 * time.Hour, message: "2026-11-24T02:00:00Z"},
		},
		"starts inside an open window": {
			in:   Input{Now: now, Rollout: rollout(api.PhaseWaitingForWindow, build), Policy: policy(window(t, "30 11 * * *", time.Hour)), Workloads: world(set(workers, func(w *Workload) { w.Exists = false }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonStarted, api.ReasonRestarted}, requeue: pollInterval},
		},
		"starts outside the windows when the running certificate expires within the deadline, and says so": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseWaitingForWindow, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(window(t, "0 2 * * *", time.Hour), func(p *Policy) {
				p.Spec.ExpiryDeadline = &metav1.Duration{Duration: 72 * time.Hour}
			}), Workloads: world(set(build, func(w *Workload) { w.RunningNotAfter = now.Add(48 * time.Hour) }))},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonDeadlineOverride, api.ReasonStarted}, requeue: time.Second},
		},
		"keeps waiting for the window when the running certificate expires after the deadline, and wakes up for the deadline": {
			in: Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(window(t, "0 2 * * 6", time.Hour), func(p *Policy) {
				p.Spec.ExpiryDeadline = &metav1.Duration{Duration: 72 * time.Hour}
			}), Workloads: world(set(build, func(w *Workload) { w.RunningNotAfter = now.Add(80 * time.Hour) }))},
			want: want{phase: api.PhaseWaitingForWindow, events: []string{api.ReasonWaitingForWindow}, requeue: 8 * time.Hour},
		},
		"starts nothing while the policy is suspended": {
			in:   Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(func(p *Policy) { p.Spec.Suspend = true }), Workloads: world()},
			want: want{phase: api.PhasePending, events: []string{api.ReasonPolicySuspended}, message: "suspended"},
		},
		"starts nothing while the policy is invalid": {
			in:   Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(func(p *Policy) { p.Invalid = "windows[0]: bad cron" }), Workloads: world()},
			want: want{phase: api.PhasePending, events: []string{api.ReasonPolicyInvalid}, message: "is invalid: windows[0]: bad cron"},
		},
		"waits while the global limit of running rollouts is reached": {
			in:   Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(), Workloads: world(), Running: 2, MaxRunning: 2},
			want: want{phase: api.PhasePending, events: []string{api.ReasonConcurrencyLimit}, requeue: pollInterval, message: "--max-concurrent-rollouts"},
		},
		"waits for the workers' pods to terminate": {
			in:   Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiesceDraining, 3, 10*time.Minute)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.Pods, w.QuiescedBy = 0, 2, "ops-1" }))},
			want: want{phase: api.PhaseQuiescing, requeue: pollInterval, message: "0/1 drained"},
		},
		"restarts the build service once the workers are gone": {
			in:   Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiesceDraining, 3, 10*time.Minute)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.Pods, w.QuiescedBy = 0, 0, "ops-1" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonDrained, api.ReasonRestarted}, requeue: pollInterval},
		},
		"does not scale down twice after a crash between the scale-down and the status update": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) {
				w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 3, "ops-1", ptr.To[int32](3)
			}))},
			want: want{phase: api.PhaseQuiescing, requeue: pollInterval},
		},
		"waits for another rollout that quiesced the same workload": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) {
				w.Replicas, w.QuiescedBy, w.QuiescedReplicas = 0, "other-7", ptr.To[int32](3)
			}))},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonQuiesceConflict}, requeue: pollInterval, message: "quiesced by rollout other-7"},
		},
		"does not scale down the workers a MaintenanceHold holds, and restarts once their pods are gone": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) {
				w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 0, api.HoldQuiescer("maintenance"), ptr.To[int32](3)
			}))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonDrained, api.ReasonRestarted}, requeue: pollInterval},
		},
		"never restores the workers a MaintenanceHold holds: the hold gives them back at its release": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestoring, build), target(build, api.TargetSucceeded, time.Minute), quiesced(api.QuiesceDrained, 3, time.Hour)), Policy: policy(),
				Workloads: world(set(workers, func(w *Workload) {
					w.Replicas, w.QuiescedBy, w.QuiescedReplicas = 0, api.HoldQuiescer("maintenance"), ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonSucceeded}},
		},
		"aborts and restores the workers when they do not drain in time (onDrainTimeout: Abort)": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiesceDraining, 3, 2*time.Hour)), Policy: policy(), Workloads: world(set(workers, func(w *Workload) {
				w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 1, "ops-1", ptr.To[int32](3)
			}))},
			want: want{phase: api.PhaseFailed, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonDrainTimedOut, api.ReasonRestored, api.ReasonFailed}, message: "did not drain in time"},
		},
		"restarts anyway when the workers do not drain in time with onDrainTimeout: Proceed": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiesceDraining, 3, 2*time.Hour)), Policy: policy(func(p *Policy) { p.Spec.OnDrainTimeout = api.DrainTimeoutProceed }),
				Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.Pods, w.QuiescedBy = 0, 1, "ops-1" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonDrainTimedOut, api.ReasonRestarted}, requeue: pollInterval},
		},
		"restarts serially: the second target waits for the first to be healthy": {
			in:   Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), target(build, api.TargetRestarting, time.Minute)), Policy: policy(), Workloads: world(set(build, func(w *Workload) { w.Rollout.Message = "1 of 2 updated replicas are available" }))},
			want: want{phase: api.PhaseRestarting, requeue: pollInterval, progress: "0/2 restarted"},
		},
		"starts the next target in order once the previous one is healthy": {
			in:   Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), target(build, api.TargetRestarting, time.Minute)), Policy: policy(), Workloads: world(set(build, func(w *Workload) { w.Rollout.Done, w.RolledBy = true, "ops-1" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/api hash-api"}, events: []string{api.ReasonTargetHealthy, api.ReasonRestarted}, requeue: pollInterval, progress: "1/2 restarted"},
		},
		"records a target verified when its new pods serve the new certificates": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) {
					w.Rollout.Done, w.RolledBy = true, "ops-1"
					w.Verification = &Verification{Probed: true, Answered: true, Verified: true, Message: "all 1 pod(s) serve the certificates hash-build"}
				}))},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonVerified, api.ReasonTargetHealthy, api.ReasonSucceeded}, progress: "1/1 restarted", targets: []string{"Deployment/build Succeeded"}},
		},
		"waits for the new pods to answer their probe within the health timeout": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) {
					w.Rollout.Done, w.RolledBy = true, "ops-1"
					w.Verification = &Verification{Probed: true, Message: "1 new pod(s) are not ready"}
				}))},
			want: want{phase: api.PhaseRestarting, requeue: pollInterval, targets: []string{"Deployment/build Restarting: rolled out; waiting for its pods to answer a TLS probe: 1 new pod(s) are not ready"}},
		},
		"succeeds a target still serving an old certificate, naming it, when verification is Optional": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) {
					w.Rollout.Done, w.RolledBy = true, "ops-1"
					w.Verification = &Verification{Probed: true, Answered: true, Message: "1 of 1 pod(s) still serve an old certificate after the restart: build-1 serves 1a2b"}
				}))},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonNotVerified, api.ReasonTargetHealthy, api.ReasonSucceeded},
				targets: []string{"Deployment/build Succeeded: not verified: 1 of 1 pod(s) still serve an old certificate after the restart: build-1 serves 1a2b"}},
		},
		"fails a target still serving an old certificate when verification is Required": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(func(p *Policy) { p.Spec.Verification = api.VerificationRequired }),
				Workloads: world(set(build, func(w *Workload) {
					w.Rollout.Done, w.RolledBy = true, "ops-1"
					w.Verification = &Verification{Probed: true, Answered: true, Message: "1 of 1 pod(s) still serve an old certificate after the restart: build-1 serves 1a2b"}
				}))},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonTargetFailed, api.ReasonFailed}, message: "1 of 1 target(s) failed",
				targets: []string{"Deployment/build Failed: not verified: 1 of 1 pod(s) still serve an old certificate after the restart: build-1 serves 1a2b"}},
		},
		"fails a target with no TLS port to probe when verification is Required": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(func(p *Policy) { p.Spec.Verification = api.VerificationRequired }),
				Workloads: world(set(build, func(w *Workload) {
					w.Rollout.Done, w.RolledBy, w.Verification = true, "ops-1", &Verification{}
				}))},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonTargetFailed, api.ReasonFailed}, message: "1 of 1 target(s) failed"},
		},
		"does not take a done rollout of a version before its restart for the restart's health": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), target(build, api.TargetRestarting, time.Second)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.Rollout.Done, w.RolledBy, w.LedgerHash = true, "ops-0", "hash-old" }))},
			want: want{phase: api.PhaseRestarting, requeue: time.Second, targets: []string{"Deployment/build Restarting: waiting to observe the restart", "Deployment/api Pending"}},
		},
		"restarts up to maxConcurrent targets at once in parallel": {
			in:   Input{Now: now, Rollout: rollout(api.PhaseRestarting, build, api2, database), Policy: policy(func(p *Policy) { p.Spec.Order, p.Spec.MaxConcurrent = api.OrderParallel, 2 }), Workloads: world()},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build", "Restart Deployment/api hash-api"}, events: []string{api.ReasonRestarted, api.ReasonRestarted}, requeue: pollInterval},
		},
		"does not restart a target twice after a crash between its restart and the status update": {
			in:   Input{Now: now, Rollout: rollout(api.PhaseRestarting, build), Policy: policy(), Workloads: world(set(build, func(w *Workload) { w.RolledBy = "ops-1" }))},
			want: want{phase: api.PhaseRestarting, requeue: pollInterval},
		},
		"fails a target that is not healthy within the health timeout, skips the rest (Halt) and restores the workers": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), target(build, api.TargetRestarting, 6*time.Minute), quiesced(api.QuiesceDrained, 3, time.Hour)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.Rollout.Message = "0 of 1 updated replicas are available" }), set(workers, func(w *Workload) {
					w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 0, "ops-1", ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseFailed, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonTargetFailed, api.ReasonRestored, api.ReasonFailed}, message: "1 of 2 target(s) failed; quiesced workloads restored"},
		},
		"goes on with the next target after a failure with onFailure: Continue": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), target(build, api.TargetRestarting, time.Minute)), Policy: policy(func(p *Policy) { p.Spec.OnFailure = api.FailureContinue }),
				Workloads: world(set(build, func(w *Workload) { w.Rollout.Failed = "ProgressDeadlineExceeded" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/api hash-api"}, events: []string{api.ReasonTargetFailed, api.ReasonRestarted}, requeue: pollInterval},
		},
		"restores the exact replica count recorded on the workload, then succeeds": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute), quiesced(api.QuiesceDrained, 2, time.Hour)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.Rollout.Done, w.RolledBy = true, "ops-1" }), set(workers, func(w *Workload) {
					w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 0, "ops-1", ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseSucceeded, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonTargetHealthy, api.ReasonRestored, api.ReasonSucceeded}, progress: "1/1 restarted"},
		},
		"does not restore twice after a crash between the restore and the status update": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestoring, build), target(build, api.TargetSucceeded, time.Minute), quiesced(api.QuiesceDrained, 3, time.Hour)), Policy: policy(),
				Workloads: world()},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonSucceeded}, progress: "1/1 restarted"},
		},
		"says why it waits only once": {
			in: Input{Now: now, Rollout: func() *api.CertRollout {
				r := rollout(api.PhasePending, build)
				r.Status.Message = "waiting: RolloutPolicy ops is suspended"
				return r
			}(), Policy: policy(func(p *Policy) { p.Spec.Suspend = true }), Workloads: world()},
			want: want{phase: api.PhasePending, message: "suspended"},
		},
		"does not restart a target that already runs on the trigger's certificates, and says so": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), onto(map[Key]string{build: "hash-build", api2: "hash-api"})), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash, w.RolledBy = "hash-build", "ops-0" }), set(api2, func(w *Workload) { w.LedgerHash = "hash-api-old" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/api hash-api"}, events: []string{api.ReasonTargetUpToDate, api.ReasonRestarted}, requeue: pollInterval,
				progress: "0/2 restarted, 1 up to date",
				targets: []string{
					"Deployment/build UpToDate: already runs on certificates hash-build (rolled onto them before this rollout reached it); not restarted again",
					"Deployment/api Restarting",
				}},
		},
		"restarts a target that runs on other certificates than the trigger's": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), onto(map[Key]string{build: "hash-build"})), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash = "hash-old" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonRestarted}, requeue: pollInterval,
				targets: []string{"Deployment/build Restarting"}},
		},
		"restarts a target of a rollout without trigger certificates even if it runs on the current ones: restart means restart": {
			in: Input{Now: now, Rollout: rollout(api.PhaseRestarting, build), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash = "hash-build" }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonRestarted}, requeue: pollInterval,
				targets: []string{"Deployment/build Restarting"}},
		},
		"waits for the health of a target it restarted onto the trigger's certificates before a crash, not skipping it": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), onto(map[Key]string{build: "hash-build"})), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash, w.RolledBy = "hash-build", "ops-1" }))},
			want: want{phase: api.PhaseRestarting, requeue: pollInterval, progress: "0/1 restarted", targets: []string{"Deployment/build Restarting"}},
		},
		"ends at once, quiescing nothing and not waiting for the window, when every target already runs on the trigger's certificates": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseWaitingForWindow, build), onto(map[Key]string{build: "hash-build"}), quiesced(api.QuiescePending, 0, 0)),
				Policy: policy(window(t, "0 2 * * *", time.Hour)), Workloads: world(set(build, func(w *Workload) { w.LedgerHash = "hash-build" }))},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonTargetUpToDate, api.ReasonSucceeded},
				message: "0 target(s) restarted, 1 already on their certificates", progress: "0/1 restarted, 1 up to date",
				targets: []string{"Deployment/build UpToDate: already runs on certificates hash-build (rolled onto them before this rollout reached it); not restarted again"}},
		},
		"counts a target stored up to date in the old form (Skipped, message prefix) as up to date, written before the UpToDate state existed": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build, api2), onto(map[Key]string{build: "hash-build"}), func(r *api.CertRollout) {
				r.Status.Targets[0].State, r.Status.Targets[0].Message = api.TargetSkipped, "already runs on certificates hash-build (rolled onto them before this rollout reached it); not restarted again"
			}, target(api2, api.TargetRestarting, time.Minute)), Policy: policy(), Workloads: world(set(api2, func(w *Workload) { w.Rollout.Done, w.RolledBy = true, "ops-1" }))},
			want: want{phase: api.PhaseSucceeded, events: []string{api.ReasonTargetHealthy, api.ReasonSucceeded},
				message: "1 target(s) restarted, 1 already on their certificates", progress: "1/2 restarted, 1 up to date"},
		},
		"stops quiescing and restores the workers when its targets were rolled onto the trigger's certificates meanwhile": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), onto(map[Key]string{build: "hash-build"}), quiesced(api.QuiesceDraining, 3, time.Minute)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash = "hash-build" }), set(workers, func(w *Workload) {
					w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 1, "ops-1", ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseSucceeded, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonTargetUpToDate, api.ReasonRestored, api.ReasonSucceeded},
				message: "0 target(s) restarted, 1 already on their certificates, 1 quiesced workload(s) restored"},
		},
		"keeps quiescing when only some targets already run on the trigger's certificates": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build, api2), onto(map[Key]string{build: "hash-build", api2: "hash-api"}), quiesced(api.QuiesceDraining, 3, time.Minute)), Policy: policy(),
				Workloads: world(set(build, func(w *Workload) { w.LedgerHash = "hash-build" }), set(workers, func(w *Workload) {
					w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 1, "ops-1", ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseQuiescing, requeue: pollInterval, message: "0/1 drained", targets: []string{"Deployment/build Pending", "Deployment/api Pending"}},
		},
		"restores at once a workload it scaled down before it started, and waits for its window": {
			in: Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(window(t, "0 2 * * *", time.Hour)), Workloads: world(set(workers, func(w *Workload) {
				w.Replicas, w.QuiescedBy, w.QuiescedReplicas = 0, "ops-1", ptr.To[int32](3)
			}))},
			want: want{phase: api.PhaseWaitingForWindow, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonRestored, api.ReasonWaitingForWindow}, requeue: 14 * time.Hour},
		},
		"adopts a workload it scaled down that its status lost, and restores it with the others": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetSucceeded, time.Minute)), Policy: policy(func(p *Policy) { p.Spec.Quiesce = nil }),
				Workloads: world(set(workers, func(w *Workload) {
					w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 0, "ops-1", ptr.To[int32](3)
				}))},
			want: want{phase: api.PhaseSucceeded, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonAdopted, api.ReasonRestored, api.ReasonSucceeded}, message: "1 quiesced workload(s) restored"},
		},
		"leaves a quiesced workload with no recorded count as it is, and says so": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestoring, build), target(build, api.TargetSucceeded, time.Minute), func(r *api.CertRollout) {
				r.Status.Quiesced = []api.QuiescedWorkload{{Kind: "Deployment", Name: "workers", State: api.QuiesceDrained}}
			}), Policy: policy(), Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.Pods, w.QuiescedBy = 0, 0, "ops-1" }))},
			want: want{phase: api.PhaseSucceeded, actions: []string{"Release Deployment/workers"}, events: []string{api.ReasonNothingRecorded, api.ReasonSucceeded}},
		},
		"restores the recorded count over a change made during the quiesce, and says what it replaced": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseRestoring, build), target(build, api.TargetSucceeded, time.Minute), quiesced(api.QuiesceDrained, 3, time.Minute)), Policy: policy(),
				Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.QuiescedBy, w.QuiescedReplicas = 5, "ops-1", ptr.To[int32](3) }))},
			want: want{phase: api.PhaseSucceeded, actions: []string{"Restore Deployment/workers 3"}, events: []string{api.ReasonQuiesceOverridden, api.ReasonRestored, api.ReasonSucceeded}},
		},
		"waits while its namespace's share of the running rollouts is taken, even with a deadline": {
			in: Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(func(p *Policy) { p.Spec.ExpiryDeadline = &metav1.Duration{Duration: 72 * time.Hour} }),
				Workloads: world(set(build, func(w *Workload) { w.RunningNotAfter = now.Add(time.Hour) })), Running: 2, MaxRunning: 5, RunningHere: 2, MaxRunningHere: 2},
			want: want{phase: api.PhasePending, events: []string{api.ReasonConcurrencyLimit}, requeue: pollInterval, message: "--max-concurrent-rollouts-per-namespace"},
		},
		"does not wait behind other namespaces' rollouts when its certificate is about to expire": {
			in: Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(func(p *Policy) { p.Spec.ExpiryDeadline = &metav1.Duration{Duration: 72 * time.Hour} }),
				Workloads: world(set(build, func(w *Workload) { w.RunningNotAfter = now.Add(time.Hour) })), Running: 5, MaxRunning: 5, MaxRunningHere: 2},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonDeadlineOverride, api.ReasonStarted, api.ReasonRestarted}, requeue: pollInterval},
		},
		"starts under an invalid policy when the deadline comes, quiescing only what the policy validly names": {
			in: Input{Now: now, Rollout: rollout("", build), Policy: policy(func(p *Policy) {
				p.Invalid = "quiesce[1]: Deployment gone does not exist in namespace ops"
				p.Spec.ExpiryDeadline = &metav1.Duration{Duration: 72 * time.Hour}
				p.Spec.Quiesce = append(p.Spec.Quiesce, api.QuiesceTarget{Kind: "Deployment", Name: "gone"}, api.QuiesceTarget{Kind: "Deployment", Name: "x", Namespace: "other"}, api.QuiesceTarget{Kind: "Deployment", Name: "build"})
			}), Workloads: world(set(build, func(w *Workload) { w.RunningNotAfter = now.Add(time.Hour) }))},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonDeadlineOverride, api.ReasonStarted}, requeue: time.Second, message: "recording the quiesce list"},
		},
		"starts an emergency rollout at once in a closed window": {
			in:   Input{Now: now, Rollout: with(rollout("", build), emergency), Policy: policy(window(t, "0 2 * * 6", time.Hour)), Workloads: world()},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonEmergencyStart, api.ReasonStarted}, requeue: time.Second, message: "recording the quiesce list"},
		},
		"starts an emergency rollout at once on a suspended policy, still quiescing first": {
			in:   Input{Now: now, Rollout: with(rollout("", build), emergency), Policy: policy(func(p *Policy) { p.Spec.Suspend = true }), Workloads: world()},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonEmergencyStart, api.ReasonStarted}, requeue: time.Second, message: "recording the quiesce list"},
		},
		"starts an emergency rollout at once on an invalid policy": {
			in:   Input{Now: now, Rollout: with(rollout("", build), emergency), Policy: policy(func(p *Policy) { p.Invalid = "windows[0]: bad cron" }), Workloads: world()},
			want: want{phase: api.PhaseQuiescing, events: []string{api.ReasonEmergencyStart, api.ReasonStarted}, requeue: time.Second, message: "recording the quiesce list"},
		},
		"an emergency rollout still takes only its namespace's share of the running rollouts": {
			in: Input{Now: now, Rollout: with(rollout(api.PhasePending, build), emergency), Policy: policy(func(p *Policy) { p.Spec.Suspend = true }), Workloads: world(),
				Running: 2, MaxRunning: 5, RunningHere: 2, MaxRunningHere: 2},
			want: want{phase: api.PhasePending, events: []string{api.ReasonConcurrencyLimit}, requeue: pollInterval, message: "--max-concurrent-rollouts-per-namespace"},
		},
		"an emergency rollout does not wait behind other namespaces' rollouts": {
			in: Input{Now: now, Rollout: with(rollout(api.PhasePending, build), emergency), Policy: policy(func(p *Policy) { p.Spec.Quiesce = nil }), Workloads: world(),
				Running: 5, MaxRunning: 5, RunningHere: 1, MaxRunningHere: 2},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonEmergencyStart, api.ReasonStarted, api.ReasonRestarted}, requeue: pollInterval},
		},
		"fails a rollout that names an opted-out target, touching nothing": {
			in:   Input{Now: now, Rollout: rollout("", build), Policy: policy(), Workloads: world(set(build, func(w *Workload) { w.OptedOut = true }))},
			want: want{phase: api.PhaseFailed, events: []string{api.ReasonFailed}, message: `target Deployment build is opted out of certrollout`},
		},
		"leaves an opted-out quiesce target running": {
			in: Input{Now: now, Rollout: with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 0, 0)), Policy: policy(),
				Workloads: world(set(workers, func(w *Workload) { w.OptedOut = true }))},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonRestarted}, requeue: pollInterval},
		},
		"takes only the selected workloads that are not opted out": {
			in: Input{Rollout: rollout(""), Policy: policy(func(p *Policy) { p.Spec.Quiesce = nil }), Workloads: world(set(build, func(w *Workload) { w.OptedOut = true })),
				Selected: []api.WorkloadReference{{Kind: "Deployment", Name: "build"}, {Kind: "Deployment", Name: "api"}}},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/api hash-api"}, events: []string{api.ReasonStarted, api.ReasonRestarted}, requeue: pollInterval, targets: []string{"Deployment/api Restarting"}},
		},
		"waits for the global restart rate before restarting a target": {
			in:   Input{Now: now, Rollout: rollout(api.PhaseRestarting, build, api2), Policy: policy(func(p *Policy) { p.Spec.Quiesce = nil }), Workloads: world(), Throttled: true},
			want: want{phase: api.PhaseRestarting, requeue: time.Second, targets: []string{"Deployment/build Pending: waiting for the global restart rate (--restart-rate, --restart-burst)", "Deployment/api Pending"}},
		},
		"restarts only as many targets as the global rate has tokens for": {
			in: Input{Now: now, Rollout: rollout(api.PhaseRestarting, build, api2), Policy: policy(func(p *Policy) {
				p.Spec.Quiesce, p.Spec.Order, p.Spec.MaxConcurrent = nil, api.OrderParallel, 2
			}), Workloads: world(), Throttled: true, RestartTokens: 1},
			want: want{phase: api.PhaseRestarting, actions: []string{"Restart Deployment/build hash-build"}, events: []string{api.ReasonRestarted}, requeue: time.Second},
		},
		"does nothing once finished": {
			in:   Input{Now: now, Rollout: rollout(api.PhaseSucceeded, build), Policy: policy(), Workloads: world()},
			want: want{phase: api.PhaseSucceeded},
		},
	} {
		t.Run(name, func(t *testing.T) {
			res := Next(tc.in)
			if res.Status.Phase != tc.want.phase {
				t.Fatalf("phase %s, want %s (message %q)", res.Status.Phase, tc.want.phase, res.Status.Message)
			}
			var actions, events []string
			for _, e := range res.Events {
				events = append(events, e.Reason)
			}
			for _, a := range res.Actions {
				switch a.Type {
				case ScaleDown, Restore:
					actions = append(actions, strings.Join([]string{string(a.Type), a.Key.Kind + "/" + a.Key.Name, strconv.Itoa(int(a.Replicas))}, " "))
				case Release:
					actions = append(actions, string(a.Type)+" "+a.Key.Kind+"/"+a.Key.Name)
				case Restart:
					actions = append(actions, strings.Join([]string{string(a.Type), a.Key.Kind + "/" + a.Key.Name, a.RestartValue}, " "))
				default:
					t.Fatalf("unknown action %q", a.Type)
				}
			}
			if strings.Join(actions, ", ") != strings.Join(tc.want.actions, ", ") {
				t.Errorf("actions %q, want %q", actions, tc.want.actions)
			}
			if strings.Join(events, ", ") != strings.Join(tc.want.events, ", ") {
				t.Errorf("events %q, want %q", events, tc.want.events)
			}
			rolloutstatustest.CheckKstatus(t, tc.in.Rollout.Generation, res.Status)
			if res.RequeueAfter != tc.want.requeue {
				t.Errorf("requeue after %s, want %s", res.RequeueAfter, tc.want.requeue)
			}
			if !strings.Contains(res.Status.Message, tc.want.message) {
				t.Errorf("message %q, want it to contain %q", res.Status.Message, tc.want.message)
			}
			if tc.want.progress != "" && res.Status.Progress != tc.want.progress {
				t.Errorf("progress %q, want %q", res.Status.Progress, tc.want.progress)
			}
			if tc.want.targets != nil {
				var got []string
				for _, ts := range res.Status.Targets {
					line := ts.Kind + "/" + ts.Name + " " + string(ts.State)
					if ts.Message != "" {
						line += ": " + ts.Message
					}
					got = append(got, line)
				}
				if strings.Join(got, "\n") != strings.Join(tc.want.targets, "\n") {
					t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want.targets, "\n"))
				}
			}
		})
	}
}

func TestAnEmergencyStartRecordsWhoAskedWhyAndWhatItOverrode(t *testing.T) {
	res := Next(Input{Now: now, Rollout: with(rollout(api.PhaseWaitingForWindow, build), emergency),
		Policy: policy(window(t, "0 2 * * 6", time.Hour), func(p *Policy) { p.Spec.Suspend = true }), Workloads: world(), Running: 3, MaxRunning: 3})
	want := "Started at once as an emergency requested by alice: INC-42: the portal serves an expired certificate " +
		"(despite the 3 rollouts already running (--max-concurrent-rollouts), RolloutPolicy ops being suspended, the maintenance windows)"
	c := apimeta.FindStatusCondition(res.Status.Conditions, api.ConditionEmergency)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != api.ReasonEmergencyStart || c.Message != want {
		t.Errorf("Emergency condition %+v, want True %s %q", c, api.ReasonEmergencyStart, want)
	}
	var found bool
	for _, e := range res.Events {
		if e.Reason == api.ReasonEmergencyStart {
			found = true
			if e.Type != rolloutstatus.Warning || e.Message != want {
				t.Errorf("Event %+v, want a Warning %q", e, want)
			}
		}
	}
	if !found {
		t.Errorf("no %s Event among %+v", api.ReasonEmergencyStart, res.Events)
	}
	// An ordinary rollout of the same policy gets neither.
	res = Next(Input{Now: now, Rollout: rollout(api.PhasePending, build), Policy: policy(), Workloads: world()})
	if c := apimeta.FindStatusCondition(res.Status.Conditions, api.ConditionEmergency); c != nil || hasReason(res.Events, api.ReasonEmergencyStart) {
		t.Errorf("an ordinary rollout was recorded as an emergency: %+v, %+v", c, res.Events)
	}
}

func TestNextDoesNotModifyItsInput(t *testing.T) {
	r := with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiesceDraining, 3, time.Minute))
	before := r.Status.DeepCopy()
	Next(Input{Now: now, Rollout: r, Policy: policy(), Workloads: world(set(workers, func(w *Workload) { w.Pods = 0 }))})
	if r.Status.Quiesced[0].State != before.Quiesced[0].State || r.Status.Phase != before.Phase {
		t.Fatal("Next changed the rollout it was given")
	}
}

// cluster simulates the workloads for Next: it applies actions as the controller's writes would (a
// restart records the ledger too, as restart.Rollout does) and catches up a little per step: one pod of a
// scaled-down workload terminates, a rollout finishes the step after it began.
type cluster struct {
	w          map[Key]Workload
	scaleDowns int
	restarts   map[Key]int
}

func newCluster() *cluster { return &cluster{w: world(), restarts: map[Key]int{}} }

func (c *cluster) apply(r *api.CertRollout, actions []Action) {
	for _, a := range actions {
		cur := c.w[a.Key]
		switch a.Type {
		case ScaleDown:
			c.scaleDowns++
			cur.QuiescedBy, cur.QuiescedReplicas, cur.Replicas = r.Name, ptr.To(cur.Replicas), 0
		case Restart:
			c.restarts[a.Key]++
			cur.RolledBy, cur.LedgerHash, cur.Rollout = r.Name, a.RestartValue, Progress{Message: "rolling"}
		case Restore:
			cur.Replicas, cur.QuiescedBy, cur.QuiescedReplicas = a.Replicas, "", nil
		case Release:
			cur.QuiescedBy, cur.QuiescedReplicas = "", nil
		}
		c.w[a.Key] = cur
	}
}

func (c *cluster) catchUp() {
	for k, cur := range c.w {
		if cur.Replicas == 0 && cur.Pods > 0 {
			cur.Pods--
		}
		if cur.Replicas > 0 && cur.Pods < int(cur.Replicas) {
			cur.Pods++
		}
		switch cur.Rollout.Message {
		case "rolling":
			cur.Rollout.Message = "almost"
		case "almost":
			cur.Rollout = Progress{Done: true}
		}
		c.w[k] = cur
	}
}

func TestARolloutRunsToCompletionAgainstASimulatedCluster(t *testing.T) {
	// Drive Next to the end, applying its actions to a simulated cluster that needs a few steps to drain
	// and to roll out, the way the controller would.
	c := newCluster()
	r := rollout("", build, api2)
	p := policy()
	clock := now
	for step := 0; step < 50 && !r.Status.Phase.Finished(); step++ {
		res := Next(Input{Now: clock, Rollout: r, Policy: p, Workloads: c.w})
		c.apply(r, res.Actions)
		r.Status = res.Status
		c.catchUp()
		clock = clock.Add(res.RequeueAfter)
	}
	if r.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("phase %s: %s", r.Status.Phase, r.Status.Message)
	}
	if c.scaleDowns != 1 || c.restarts[build] != 1 || c.restarts[api2] != 1 {
		t.Errorf("scale-downs %d, restarts %v: want each exactly once", c.scaleDowns, c.restarts)
	}
	if got := c.w[workers]; got.Replicas != 3 || got.QuiescedBy != "" {
		t.Errorf("workers end with %d replicas (quiesced by %q), want 3 and no annotation", got.Replicas, got.QuiescedBy)
	}
	if r.Status.StartTime == nil || r.Status.CompletionTime == nil || r.Status.Progress != "2/2 restarted" {
		t.Errorf("status incomplete: %+v", r.Status)
	}
}

func TestTwoRolloutsForOneRenewalRestartEachTargetOnce(t *testing.T) {
	// The policy's CertificateRenewed rollout and the one `renew --restart` created for the same renewal
	// run side by side, stepped in turns (either first): each target restarts once, the workers are
	// quiesced once, and both rollouts succeed.
	for _, first := range []int{0, 1} {
		c := newCluster()
		certs := onto(map[Key]string{build: "hash-build", api2: "hash-api"})
		ros := []*api.CertRollout{with(rollout("", build, api2), certs), with(rollout("", build, api2), certs)}
		ros[1].Name, ros[1].Spec.Trigger.Type = "ops-2", api.TriggerManual
		p := policy()
		clock := now
		for step := 0; step < 100 && (!ros[0].Status.Phase.Finished() || !ros[1].Status.Phase.Finished()); step++ {
			for i := range ros {
				r := ros[(i+first)%2]
				res := Next(Input{Now: clock, Rollout: r, Policy: p, Workloads: c.w})
				c.apply(r, res.Actions)
				r.Status = res.Status
			}
			c.catchUp()
			clock = clock.Add(time.Second)
		}
		for _, r := range ros {
			if r.Status.Phase != api.PhaseSucceeded {
				t.Fatalf("first %s: rollout %s ended %s: %s", ros[first].Name, r.Name, r.Status.Phase, r.Status.Message)
			}
		}
		if c.scaleDowns != 1 || c.restarts[build] != 1 || c.restarts[api2] != 1 {
			t.Errorf("first %s: scale-downs %d, restarts %v: want each exactly once", ros[first].Name, c.scaleDowns, c.restarts)
		}
		if got := c.w[workers]; got.Replicas != 3 || got.QuiescedBy != "" {
			t.Errorf("first %s: workers end with %d replicas (quiesced by %q), want 3 and no annotation", ros[first].Name, got.Replicas, got.QuiescedBy)
		}
		if second := ros[1-first]; second.Status.Progress != "0/2 restarted, 2 up to date" {
			t.Errorf("first %s: the other rollout's progress %q, want both targets up to date", ros[first].Name, second.Status.Progress)
		}
	}
}

// FuzzNextSurvivesCrashesAndLostWrites drives a rollout to its end while the fuzzer decides, step by
// step, where the controller crashes (before its writes, between two writes, after the writes but before
// the status) and when someone edits the policy's quiesce list. Whatever the faults, once they stop the
// rollout finishes, every workload ends with exactly the replicas it had and no quiesce mark, nothing is
// restored to any other count, and no target restarts twice.
func FuzzNextSurvivesCrashesAndLostWrites(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 2, 0, 0, 0})                     // status lost after the first scale-down
	f.Add([]byte{2, 8 | 2, 0, 0, 0, 0, 0})           // lost after the scale-down, then the quiesce list edited
	f.Add([]byte{0, 4, 1, 2, 16 | 8, 4, 2, 1, 2, 0}) // a bit of everything
	original := map[Key]int32{workers: 3, database: 1, build: 1, api2: 2}
	lists := [][]api.QuiesceTarget{
		{{Kind: "Deployment", Name: "workers"}},
		{{Kind: "StatefulSet", Name: "db"}},
		{{Kind: "Deployment", Name: "workers"}, {Kind: "StatefulSet", Name: "db"}},
		nil,
	}
	f.Fuzz(func(t *testing.T, faults []byte) {
		faults = faults[:min(len(faults), 64)]
		c := newCluster()
		r := rollout("", build, api2)
		p := policy()
		clock := now
		list := 0
		var lost []string
		for step := 0; step < len(faults)+60 && !r.Status.Phase.Finished(); step++ {
			var fault byte
			if step < len(faults) {
				fault = faults[step]
			}
			if fault&8 != 0 { // someone edits the policy's quiesce list
				list = (list + 1) % len(lists)
				p.Spec.Quiesce = lists[list]
			}
			res := Next(Input{Now: clock, Rollout: r, Policy: p, Workloads: c.w})
			actions := res.Actions
			switch {
			case fault&1 != 0: // crash before any write
				actions = nil
			case fault&4 != 0: // crash between two writes
				actions = actions[:len(actions)/2]
			}
			for _, a := range actions {
				if a.Type == Restore && a.Replicas != original[a.Key] {
					lost = append(lost, fmt.Sprintf("step %d: %s %s restored to %d, had %d", step, a.Key.Kind, a.Key.Name, a.Replicas, original[a.Key]))
				}
			}
			c.apply(r, actions)
			if fault&(1|2|4) == 0 { // the status write happens only when nothing crashed
				r.Status = res.Status
			}
			c.catchUp()
			if fault&16 != 0 {
				c.catchUp()
			}
			clock = clock.Add(max(res.RequeueAfter, time.Second))
		}
		if len(lost) > 0 {
			t.Fatal(strings.Join(lost, "\n"))
		}
		if !r.Status.Phase.Finished() {
			t.Fatalf("the rollout is stuck in %s: %s", r.Status.Phase, r.Status.Message)
		}
		for k, want := range original {
			if got := c.w[k]; got.Replicas != want || got.QuiescedBy != "" {
				t.Errorf("%s %s ends with %d replicas (quiesced by %q), want %d and no mark", k.Kind, k.Name, got.Replicas, got.QuiescedBy, want)
			}
		}
		for k, n := range c.restarts {
			if n > 1 {
				t.Errorf("%s %s restarted %d times", k.Kind, k.Name, n)
			}
		}
	})
}

// A quiesced workload gets back the count recorded for it, and only that: never a guessed one. The same
// rule serves the rollout's restore, the controller's finalizer and its sweeper (RecordedReplicas).
func TestAQuiescedWorkloadIsNeverGivenAGuessedCount(t *testing.T) {
	for name, tc := range map[string]struct {
		onWorkload, inStatus, want *int32
	}{
		"the count on the workload, written in the patch that scaled it down, wins": {onWorkload: ptr.To[int32](3), inStatus: ptr.To[int32](2), want: ptr.To[int32](3)},
		"the status's count serves when the workload lost its own":                  {inStatus: ptr.To[int32](2), want: ptr.To[int32](2)},
		"a recorded zero is a count like any other":                                 {onWorkload: ptr.To[int32](0), want: ptr.To[int32](0)},
		"no count anywhere is no count, not zero":                                   {},
	} {
		t.Run(name, func(t *testing.T) {
			got := RecordedReplicas(tc.onWorkload, tc.inStatus)
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("RecordedReplicas = %v, want %v", ptrString(got), ptrString(tc.want))
			}
		})
	}

	t.Run("resuming a quiesce whose marks lost their count keeps the count in the status", func(t *testing.T) {
		r := with(rollout(api.PhaseQuiescing, build), quiesced(api.QuiescePending, 3, 0))
		r.Status.Quiesced[0].OriginalReplicas = ptr.To[int32](3)
		res := Next(Input{Now: now, Rollout: r, Policy: policy(), Workloads: world(set(workers, func(w *Workload) {
			w.Replicas, w.Pods, w.QuiescedBy, w.QuiescedReplicas = 0, 2, "ops-1", nil
		}))})
		if q := res.Status.Quiesced[0]; q.OriginalReplicas == nil || *q.OriginalReplicas != 3 || q.State != api.QuiesceDraining {
			t.Fatalf("workers %s with count %s, want Draining with the recorded 3", q.State, ptrString(q.OriginalReplicas))
		}
	})

	t.Run("a workload with no count anywhere keeps its replicas and loses its marks, whatever the phase", func(t *testing.T) {
		for _, phase := range []api.RolloutPhase{api.PhasePending, api.PhaseRestoring} {
			r := with(rollout(phase, build), target(build, api.TargetSucceeded, time.Minute))
			if phase == api.PhaseRestoring {
				r.Status.Quiesced = []api.QuiescedWorkload{{Kind: "Deployment", Name: "workers", State: api.QuiesceDrained}}
			}
			res := Next(Input{Now: now, Rollout: r, Policy: policy(), Workloads: world(set(workers, func(w *Workload) { w.Replicas, w.Pods, w.QuiescedBy = 0, 0, "ops-1" }))})
			released := false
			for _, a := range res.Actions {
				switch {
				case a.Key == workers && a.Type == Restore:
					t.Errorf("%s: workers restored to a guessed %d replicas", phase, a.Replicas)
				case a.Key == workers && a.Type == Release:
					released = true
				}
			}
			if !released || !hasReason(res.Events, api.ReasonNothingRecorded) {
				t.Errorf("%s: actions %+v, events %+v: want a Release and a %s Warning", phase, res.Actions, res.Events, api.ReasonNothingRecorded)
			}
		}
	})
}

func ptrString(p *int32) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(int(*p))
}

func hasReason(events []rolloutstatus.Event, reason string) bool {
	for _, e := range events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func TestTheVerifiedConditionSumsUpTheProbedTargets(t *testing.T) {
	if c := verifiedCondition([]api.TargetStatus{{Kind: "Deployment", Name: "a", State: api.TargetSucceeded}}); c != nil {
		t.Errorf("no target probed: %+v, want no condition", c)
	}
	c := verifiedCondition([]api.TargetStatus{{Kind: "Deployment", Name: "a", Verification: api.TargetVerified}, {Kind: "Deployment", Name: "b", Verification: api.TargetVerified}})
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "2 probed target(s)") {
		t.Errorf("all verified: %+v", c)
	}
	c = verifiedCondition([]api.TargetStatus{{Kind: "Deployment", Name: "a", Verification: api.TargetVerified},
		{Kind: "Deployment", Name: "b", Verification: api.TargetNotVerified, Message: "not verified: b-1 serves 1a2b"}})
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != api.ReasonNotVerified || !strings.Contains(c.Message, "Deployment b (not verified: b-1 serves 1a2b)") {
		t.Errorf("one not verified: %+v", c)
	}
	out := Next(Input{Now: now, Rollout: with(rollout(api.PhaseRestarting, build), target(build, api.TargetRestarting, time.Minute)), Policy: policy(),
		Workloads: world(set(build, func(w *Workload) {
			w.Rollout.Done, w.RolledBy = true, "ops-1"
			w.Verification = &Verification{Probed: true, Answered: true, Verified: true, Message: "all 1 pod(s) serve"}
		}))})
	if c := apimeta.FindStatusCondition(out.Status.Conditions, api.ConditionVerified); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the rollout's Verified condition: %+v", c)
	}
}
