package cascade

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
	"github.com/certrollout/certrollout/internal/rolloutstatus/rolloutstatustest"
)

var (
	t0     = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	fp     = strings.Repeat("ab", 32)
	otherF = strings.Repeat("cd", 32)
	web    = types.NamespacedName{Namespace: "shop", Name: "web"}
	api1   = types.NamespacedName{Namespace: "shop", Name: "api"}
	db     = types.NamespacedName{Namespace: "shop", Name: "db"}
	front  = TrustKey{"Deployment", "shop", "front"}
	batch  = TrustKey{"Deployment", "shop", "batch"}
)

func rev(n int32) *int32 { return &n }

func at(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }

func rollout(phase api.RolloutPhase, certs []api.LeafStatus, trusted []api.TrustingWorkload, maxConcurrent int32) *api.CertRollout {
	return &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca-rotated", Generation: 1},
		Spec: api.CertRolloutSpec{
			Trigger: api.RolloutTrigger{Type: api.TriggerCARotated},
			Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}, CAFingerprint: fp, MaxConcurrent: maxConcurrent},
		},
		Status: api.CertRolloutStatus{Phase: phase, Certificates: certs, TrustedBy: trusted, StartTime: at(0)},
	}
}

func stale(r int32) Leaf {
	return Leaf{Exists: true, NeedsReissue: true, Revision: rev(r), Message: "issued under the previous CA"}
}
func current(r int32) Leaf { return Leaf{Exists: true, Current: true, Revision: rev(r)} }
func issuing(r int32) Leaf { l := stale(r); l.Issuing = true; return l }
func pendingLeaf(n types.NamespacedName) api.LeafStatus {
	return api.LeafStatus{Namespace: n.Namespace, Name: n.Name, State: api.LeafPending}
}
func issuingLeaf(n types.NamespacedName, prev int32) api.LeafStatus {
	return api.LeafStatus{Namespace: n.Namespace, Name: n.Name, State: api.LeafIssuing, PreviousRevision: rev(prev), StartedAt: at(time.Minute)}
}

func triggered(res Result) []types.NamespacedName {
	var out []types.NamespacedName
	for _, a := range res.Actions {
		if a.Type == TriggerIssuance {
			out = append(out, a.Certificate)
		}
	}
	return out
}

func leafState(res Result, n types.NamespacedName) api.LeafStatus {
	for _, c := range res.Status.Certificates {
		if c.Namespace == n.Namespace && c.Name == n.Name {
			return c
		}
	}
	return api.LeafStatus{}
}

func hasEvent(res Result, reason string, warning bool) bool {
	for _, e := range res.Events {
		if e.Reason == reason && (e.Type == rolloutstatus.Warning) == warning {
			return true
		}
	}
	return false
}

func condition(st api.CertRolloutStatus, t string) *metav1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// TestNext is one map-keyed table of named cases (STYLE.md: "Test the composed chain with one map-keyed
// table"); its length is its cases, the code that runs them is short.
func TestNext(t *testing.T) {
	issuer := Issuer{Exists: true, CAFingerprint: fp}
	cases := map[string]struct {
		in    Input
		check func(t *testing.T, res Result)
	}{
		"fixes the stale leaves and the trusting workloads, then waits for the pending trusting workload": {
			in: Input{Now: t0, Rollout: rollout("", nil, nil, 0), Issuer: issuer,
				Leaves:   map[types.NamespacedName]Leaf{web: stale(1), api1: current(3), db: {Exists: true}},
				Trusting: map[TrustKey]Trust{front: {State: api.TrustPending}, batch: {State: api.TrustNotWaitedFor, Message: "not enabled"}}},
			check: func(t *testing.T, res Result) {
				if len(res.Status.Certificates) != 1 || res.Status.Certificates[0].Name != "web" {
					t.Fatalf("certificates = %+v, want only the stale leaf web", res.Status.Certificates)
				}
				if len(res.Status.TrustedBy) != 2 || res.Status.Phase != api.PhaseRefreshingTrust {
					t.Fatalf("phase %s, trustedBy %+v", res.Status.Phase, res.Status.TrustedBy)
				}
				if len(res.Actions) != 0 || res.RequeueAfter == 0 {
					t.Fatalf("actions %+v, requeue %s: must wait for front before any leaf", res.Actions, res.RequeueAfter)
				}
				if res.Status.Progress != "0/1 re-issued" {
					t.Errorf("progress = %q", res.Status.Progress)
				}
			},
		},
		"fails at once when the issuer's CA is not the one the spec names": {
			in: Input{Now: t0, Rollout: rollout("", nil, nil, 0), Issuer: Issuer{Exists: true, CAFingerprint: otherF},
				Leaves: map[types.NamespacedName]Leaf{web: stale(1)}},
			check: func(t *testing.T, res Result) {
				c := condition(res.Status, api.ConditionFailed)
				if res.Status.Phase != api.PhaseFailed || c == nil || c.Reason != api.ReasonCAChanged || len(res.Actions) != 0 {
					t.Fatalf("phase %s, condition %+v, actions %+v", res.Status.Phase, c, res.Actions)
				}
				if !strings.Contains(res.Status.Message, "rotated again") {
					t.Errorf("message = %q", res.Status.Message)
				}
			},
		},
		"fails a refused cascade at once, touching nothing and showing nothing of other namespaces": {
			in: Input{Now: t0, Rollout: rollout("", nil, nil, 0), Refused: "a cascade of ClusterIssuer root reaches every namespace, so it runs only in namespace cert-manager"},
			check: func(t *testing.T, res Result) {
				if c := condition(res.Status, api.ConditionFailed); res.Status.Phase != api.PhaseFailed || c == nil || c.Reason != api.ReasonRefused {
					t.Fatalf("phase %s, condition %+v", res.Status.Phase, c)
				}
				if len(res.Actions) != 0 || len(res.Status.Certificates) != 0 || len(res.Status.TrustedBy) != 0 {
					t.Fatalf("actions %+v, certificates %+v, trustedBy %+v: want none", res.Actions, res.Status.Certificates, res.Status.TrustedBy)
				}
			},
		},
		"fails when the issuer does not exist": {
			in: Input{Now: t0, Rollout: rollout("", nil, nil, 0)},
			check: func(t *testing.T, res Result) {
				if c := condition(res.Status, api.ConditionFailed); c == nil || c.Reason != api.ReasonIssuerNotFound || res.Status.Message != "Issuer shop/ca does not exist" {
					t.Fatalf("condition %+v, message %q", c, res.Status.Message)
				}
			},
		},
		"stops re-issuing when the CA rotates again mid-way": {
			in: Input{Now: t0.Add(time.Hour), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1), pendingLeaf(api1)}, nil, 1),
				Issuer: Issuer{Exists: true, CAFingerprint: otherF}, Leaves: map[types.NamespacedName]Leaf{web: issuing(1), api1: stale(1)}},
			check: func(t *testing.T, res Result) {
				if res.Status.Phase != api.PhaseFailed || len(res.Actions) != 0 {
					t.Fatalf("phase %s, actions %+v", res.Status.Phase, res.Actions)
				}
			},
		},
		"goes straight to re-issuing when every trusting workload is current, at most maxConcurrent at once": {
			in: Input{Now: t0.Add(time.Minute), Rollout: rollout(api.PhaseRefreshingTrust, []api.LeafStatus{pendingLeaf(api1), pendingLeaf(db), pendingLeaf(web)},
				[]api.TrustingWorkload{{Kind: "Deployment", Namespace: "shop", Name: "front", State: api.TrustPending}}, 2),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: stale(1), api1: stale(4), db: stale(2)},
				Trusting: map[TrustKey]Trust{front: {State: api.TrustCurrent}}},
			check: func(t *testing.T, res Result) {
				if got := triggered(res); len(got) != 2 || got[0] != api1 || got[1] != db {
					t.Fatalf("triggered %v, want api and db in order", got)
				}
				if l := leafState(res, api1); l.State != api.LeafIssuing || *l.PreviousRevision != 4 || l.StartedAt == nil {
					t.Errorf("api = %+v", l)
				}
				if l := leafState(res, web); l.State != api.LeafPending {
					t.Errorf("web = %+v, want Pending behind the limit", l)
				}
				if res.Status.TrustedBy[0].State != api.TrustCurrent || !hasEvent(res, api.ReasonTrustRefreshed, false) {
					t.Errorf("trustedBy %+v, events %+v", res.Status.TrustedBy, res.Events)
				}
				if res.Actions[0].Reason != "CARotated" || !strings.Contains(res.Actions[0].Message, fp) || !strings.Contains(res.Actions[0].Message, "Issuer shop/ca") {
					t.Errorf("condition reason %q, message %q", res.Actions[0].Reason, res.Actions[0].Message)
				}
			},
		},
		"keeps waiting for a pending trusting workload before the timeout": {
			in: Input{Now: t0.Add(9 * time.Minute), Rollout: rollout(api.PhaseRefreshingTrust, []api.LeafStatus{pendingLeaf(web)},
				[]api.TrustingWorkload{{Kind: "Deployment", Namespace: "shop", Name: "front", State: api.TrustPending}}, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: stale(1)}, Trusting: map[TrustKey]Trust{front: {State: api.TrustPending}}},
			check: func(t *testing.T, res Result) {
				if res.Status.Phase != api.PhaseRefreshingTrust || len(res.Actions) != 0 || !strings.Contains(res.Status.Message, "Deployment shop/front") {
					t.Fatalf("phase %s, actions %+v, message %q", res.Status.Phase, res.Actions, res.Status.Message)
				}
				if res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute {
					t.Errorf("requeue %s", res.RequeueAfter)
				}
			},
		},
		"re-issues anyway after the trust timeout, warning about the workloads still pending": {
			in: Input{Now: t0.Add(10 * time.Minute), Rollout: rollout(api.PhaseRefreshingTrust, []api.LeafStatus{pendingLeaf(web)},
				[]api.TrustingWorkload{{Kind: "Deployment", Namespace: "shop", Name: "front", State: api.TrustPending}}, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: stale(1)}, Trusting: map[TrustKey]Trust{front: {State: api.TrustPending}}},
			check: func(t *testing.T, res Result) {
				if got := triggered(res); len(got) != 1 || !hasEvent(res, api.ReasonTrustTimedOut, true) {
					t.Fatalf("triggered %v, events %+v", got, res.Events)
				}
				for _, e := range res.Events {
					if e.Reason == api.ReasonTrustTimedOut && !strings.Contains(e.Message, "Deployment shop/front") {
						t.Errorf("timeout event %q does not name front", e.Message)
					}
				}
			},
		},
		"does not trigger a leaf again that already shows Issuing=True after a crash lost the status": {
			in: Input{Now: t0.Add(time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{pendingLeaf(web)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: issuing(2)}},
			check: func(t *testing.T, res Result) {
				if len(res.Actions) != 0 {
					t.Fatalf("actions %+v, want none", res.Actions)
				}
				if l := leafState(res, web); l.State != api.LeafIssuing || *l.PreviousRevision != 2 {
					t.Errorf("web = %+v", l)
				}
			},
		},
		"records as issued, without a trigger, a leaf whose issuance finished before the status recorded the trigger": {
			in: Input{Now: t0.Add(time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{pendingLeaf(web)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: current(3)}},
			check: func(t *testing.T, res Result) {
				if len(res.Actions) != 0 || res.Status.Phase != api.PhaseSucceeded || *leafState(res, web).Revision != 3 {
					t.Fatalf("actions %+v, phase %s, web %+v", res.Actions, res.Status.Phase, leafState(res, web))
				}
			},
		},
		"waits for an issuing leaf whose revision has not moved": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1), pendingLeaf(api1)}, nil, 1),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: issuing(1), api1: stale(1)}},
			check: func(t *testing.T, res Result) {
				if len(res.Actions) != 0 || res.Status.Phase != api.PhaseReissuing || res.RequeueAfter == 0 {
					t.Fatalf("actions %+v, phase %s, requeue %s", res.Actions, res.Status.Phase, res.RequeueAfter)
				}
			},
		},
		"does not call a leaf issued while its new revision is not yet current": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: stale(2)}},
			check: func(t *testing.T, res Result) {
				if l := leafState(res, web); l.State != api.LeafIssuing {
					t.Fatalf("web = %+v", l)
				}
			},
		},
		"calls a leaf issued when its revision moved and it is current, and starts the next": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1), pendingLeaf(api1)}, nil, 1),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: current(2), api1: stale(5)}},
			check: func(t *testing.T, res Result) {
				if l := leafState(res, web); l.State != api.LeafIssued || *l.Revision != 2 || l.FinishedAt == nil {
					t.Errorf("web = %+v", l)
				}
				if got := triggered(res); len(got) != 1 || got[0] != api1 || !hasEvent(res, api.ReasonLeafIssued, false) {
					t.Errorf("triggered %v, events %+v", got, res.Events)
				}
				if res.Status.Progress != "1/2 re-issued" {
					t.Errorf("progress = %q", res.Status.Progress)
				}
			},
		},
		"fails a leaf cert-manager failed to issue, goes on with the others and ends Failed naming it": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1), issuingLeaf(api1, 1)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{
					web:  {Exists: true, NeedsReissue: true, Revision: rev(1), Failed: true, FailedAt: t0.Add(90 * time.Second), FailedMessage: "the issuer refused"},
					api1: current(2)}},
			check: func(t *testing.T, res Result) {
				if l := leafState(res, web); l.State != api.LeafFailed || !strings.Contains(l.Message, "the issuer refused") {
					t.Errorf("web = %+v", l)
				}
				if l := leafState(res, api1); l.State != api.LeafIssued {
					t.Errorf("api = %+v", l)
				}
				c := condition(res.Status, api.ConditionFailed)
				if res.Status.Phase != api.PhaseFailed || c == nil || c.Reason != api.ReasonLeavesFailed || !strings.Contains(c.Message, "shop/web") {
					t.Fatalf("phase %s, condition %+v", res.Status.Phase, c)
				}
				if !hasEvent(res, api.ReasonLeafFailed, true) || res.Status.Progress != "1/2 re-issued, 1 failed" {
					t.Errorf("events %+v, progress %q", res.Events, res.Status.Progress)
				}
			},
		},
		"ignores a failure cert-manager reported before the trigger, which a lagging cache still shows": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{
					web: {Exists: true, NeedsReissue: true, Revision: rev(1), Failed: true, FailedAt: t0.Add(-time.Hour), FailedMessage: "old failure"}}},
			check: func(t *testing.T, res Result) {
				if l := leafState(res, web); l.State != api.LeafIssuing {
					t.Fatalf("web = %+v", l)
				}
			},
		},
		"fails a leaf whose Certificate was deleted": {
			in: Input{Now: t0.Add(2 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{}},
			check: func(t *testing.T, res Result) {
				if l := leafState(res, web); l.State != api.LeafFailed || !strings.Contains(l.Message, "deleted") || res.Status.Phase != api.PhaseFailed {
					t.Fatalf("web = %+v, phase %s", l, res.Status.Phase)
				}
			},
		},
		"succeeds when every leaf is issued": {
			in: Input{Now: t0.Add(3 * time.Minute), Rollout: rollout(api.PhaseReissuing, []api.LeafStatus{issuingLeaf(web, 1)}, nil, 0),
				Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: current(2)}},
			check: func(t *testing.T, res Result) {
				c := condition(res.Status, api.ConditionComplete)
				if res.Status.Phase != api.PhaseSucceeded || c == nil || c.Status != metav1.ConditionTrue || res.Status.CompletionTime == nil {
					t.Fatalf("phase %s, condition %+v", res.Status.Phase, c)
				}
			},
		},
		"succeeds at once when no leaf needs re-issuing and nothing trusts the CA": {
			in: Input{Now: t0, Rollout: rollout("", nil, nil, 0), Issuer: issuer, Leaves: map[types.NamespacedName]Leaf{web: current(2)}},
			check: func(t *testing.T, res Result) {
				if res.Status.Phase != api.PhaseSucceeded || res.Status.Progress != "0/0 re-issued" {
					t.Fatalf("phase %s, progress %q", res.Status.Phase, res.Status.Progress)
				}
			},
		},
		"stops waiting for a trusting workload that was deleted": {
			in: Input{Now: t0.Add(time.Minute), Rollout: rollout(api.PhaseRefreshingTrust, nil,
				[]api.TrustingWorkload{{Kind: "Deployment", Namespace: "shop", Name: "front", State: api.TrustPending}}, 0),
				Issuer: issuer},
			check: func(t *testing.T, res Result) {
				if res.Status.TrustedBy[0].State != api.TrustNotWaitedFor || res.Status.Phase != api.PhaseSucceeded {
					t.Fatalf("trustedBy %+v, phase %s", res.Status.TrustedBy, res.Status.Phase)
				}
			},
		},
		"leaves a finished rollout alone": {
			in: Input{Now: t0, Rollout: rollout(api.PhaseSucceeded, []api.LeafStatus{{Namespace: "shop", Name: "web", State: api.LeafIssued}}, nil, 0)},
			check: func(t *testing.T, res Result) {
				if res.Status.Phase != api.PhaseSucceeded || len(res.Actions)+len(res.Events) != 0 {
					t.Fatalf("phase %s, actions %+v, events %+v", res.Status.Phase, res.Actions, res.Events)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.in.Rollout.DeepCopy()
			res := Next(tc.in)
			tc.check(t, res)
			rolloutstatustest.CheckKstatus(t, before.Generation, res.Status)
			if tc.in.Rollout.Status.Phase != before.Status.Phase || len(tc.in.Rollout.Status.Certificates) != len(before.Status.Certificates) {
				t.Error("Next changed its input")
			}
		})
	}
}

// TestNextNeverTriggersALeafTwice replays a cascade where every status update after a write is lost
// (the controller crashes each time): each leaf is triggered once, because its Certificate shows
// Issuing=True from the first trigger on.
func TestNextNeverTriggersALeafTwice(t *testing.T) {
	ro := rollout(api.PhaseReissuing, []api.LeafStatus{pendingLeaf(web), pendingLeaf(api1)}, nil, 1)
	leaves := map[types.NamespacedName]Leaf{web: stale(1), api1: stale(1)}
	count := map[types.NamespacedName]int{}
	for range 5 {
		res := Next(Input{Now: t0, Rollout: ro, Issuer: Issuer{Exists: true, CAFingerprint: fp}, Leaves: leaves})
		for _, n := range triggered(res) {
			count[n]++
			leaves[n] = issuing(1)
		}
		// The status update is lost: ro keeps its old status.
	}
	if count[web] != 1 || count[api1] != 0 {
		t.Fatalf("triggers = %v, want web once and api not before web finished (maxConcurrent 1)", count)
	}
}

// FuzzNextSurvivesCrashesAndLostWrites drives a cascade over three leaves while the fuzzer decides, step
// by step, whether the status write is lost, whether cert-manager finishes an issuance and whether
// time jumps. Whatever the faults, no leaf is triggered twice for one issuance, and once the faults
// stop the cascade finishes with every leaf issued.
func FuzzNextSurvivesCrashesAndLostWrites(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 2, 2, 2})
	f.Add([]byte{0, 3, 1, 7, 2, 4, 5, 6})
	f.Fuzz(func(t *testing.T, faults []byte) {
		faults = faults[:min(len(faults), 64)]
		names := []types.NamespacedName{web, api1, db}
		ro := rollout("", nil, nil, 2)
		leaves := map[types.NamespacedName]Leaf{}
		for _, n := range names {
			leaves[n] = stale(1)
		}
		triggers := map[types.NamespacedName]int{}
		clock := t0
		for step := 0; step < len(faults)+40 && !ro.Status.Phase.Finished(); step++ {
			var fault byte
			if step < len(faults) {
				fault = faults[step]
			}
			res := Next(Input{Now: clock, Rollout: ro, Issuer: Issuer{Exists: true, CAFingerprint: fp}, Leaves: leaves})
			for _, n := range triggered(res) {
				if leaves[n].Issuing || leaves[n].Current {
					t.Fatalf("step %d: %s triggered while it is issuing or already current", step, n)
				}
				triggers[n]++
				leaves[n] = issuing(*leaves[n].Revision)
			}
			if fault&1 == 0 { // the status write lands unless the controller crashed
				ro.Status = res.Status
			}
			// cert-manager finishes the issuances in flight, unless the fuzzer holds them back.
			if fault&2 == 0 {
				for n, l := range leaves {
					if l.Issuing {
						leaves[n] = current(*l.Revision + 1)
					}
				}
			}
			clock = clock.Add(time.Second + time.Duration(fault>>2)*time.Minute)
		}
		if ro.Status.Phase != api.PhaseSucceeded {
			t.Fatalf("the cascade ended %s: %s", ro.Status.Phase, ro.Status.Message)
		}
		for _, n := range names {
			if triggers[n] != 1 || !leaves[n].Current {
				t.Errorf("%s triggered %d times, current %v: want once and current", n, triggers[n], leaves[n].Current)
			}
		}
	})
}
