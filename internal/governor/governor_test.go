package governor

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
)

// now is a Monday noon; the nightly window of the tests opens at 02:00 for two hours.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const generation = 3

func rolloutPolicy(mods ...func(*api.RolloutPolicy)) *api.RolloutPolicy {
	p := &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "ops", Generation: generation}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func suspended(p *api.RolloutPolicy) { p.Spec.Suspend = true }

func deadline(d time.Duration) func(*api.RolloutPolicy) {
	return func(p *api.RolloutPolicy) { p.Spec.ExpiryDeadline = &metav1.Duration{Duration: d} }
}

func historyLimit(n int32) func(*api.RolloutPolicy) {
	return func(p *api.RolloutPolicy) { p.Spec.RolloutHistoryLimit = n }
}

// wasInvalid sets the status a previous reconcile wrote for an invalid policy (generation 2).
func wasInvalid(message string) func(*api.RolloutPolicy) {
	return func(p *api.RolloutPolicy) {
		p.Status.Conditions = []metav1.Condition{{Type: api.ConditionValid, Status: metav1.ConditionFalse, Reason: api.ReasonInvalidPolicy,
			Message: message, ObservedGeneration: 2, LastTransitionTime: metav1.Time{Time: now.Add(-time.Hour)}}}
	}
}

func parsed(t *testing.T, invalid string, nightly bool) orchestrate.Policy {
	t.Helper()
	out := orchestrate.Policy{Name: "ops", Invalid: invalid}
	if nightly {
		w, err := schedule.Parse("0 2 * * *", 2*time.Hour, "")
		if err != nil {
			t.Fatal(err)
		}
		out.Windows = append(out.Windows, w)
	}
	return out
}

func deployment(name string) api.WorkloadReference {
	return api.WorkloadReference{Kind: "Deployment", Name: name}
}

// due is a workload whose pods run on old certificates and that the policy must roll onto hash; its pods
// run on a certificate that expires after runsFor.
func due(name, hash string, runsFor time.Duration) Workload {
	return Workload{Ref: deployment(name), RunningNotAfter: now.Add(runsFor), Decision: decide.Decision{
		Action: decide.ActionDelegate, Reason: api.ReasonGovernedByPolicy, Set: inventory.Set{Hash: hash}, StalePods: []string{name + "-1"}}}
}

// waiting is a stale workload in its settle period for another d.
func waiting(name string, d time.Duration) Workload {
	return Workload{Ref: deployment(name), Decision: decide.Decision{
		Action: decide.ActionWait, Reason: api.ReasonSettling, RequeueAfter: d, StalePods: []string{name + "-1"}}}
}

// blocked is a stale workload a restart cannot help (a paused Deployment).
func blocked(name string) Workload {
	return Workload{Ref: deployment(name), Decision: decide.Decision{
		Action: decide.ActionBlock, Reason: api.ReasonDeploymentPaused, StalePods: []string{name + "-1"}}}
}

func upToDate(name string) Workload {
	return Workload{Ref: deployment(name), Decision: decide.Decision{Action: decide.ActionNone, Reason: api.ReasonUpToDate}}
}

// certRollout is a rollout of the policy created ago.
func certRollout(name string, phase api.RolloutPhase, ago time.Duration) api.CertRollout {
	ro := api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: name, UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.Time{Time: now.Add(-ago)}}, Spec: api.CertRolloutSpec{Policy: "ops"}}
	ro.Status.Phase = phase
	ro.Status.Message = "rollout " + strings.ToLower(string(phase))
	if phase == api.PhaseFailed {
		ro.Status.Conditions = []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonTargetFailed}}
	}
	return ro
}

// apiRollout is the name of the rollout of Deployment api onto hash-api.
var apiRollout = RolloutName("ops", map[string]string{"Deployment/api": "hash-api"})

type want struct {
	// create is "name trigger target,target" of the rollout to create; empty for none.
	create string
	// conditions are "Status Reason" by type; a type not listed must be absent.
	conditions map[string]string
	events     []string // reasons, in order
	prune      []string
	requeue    time.Duration
	stale      int
	last       string // status.lastRollout.name
	nextWindow bool
}

func TestDecide(t *testing.T) {
	valid := "True Valid"
	for name, tc := range map[string]struct {
		in   Input
		want want
	}{
		"is Ready and asks for nothing when every workload runs on current certificates": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{upToDate("api"), upToDate("web")}},
			want: want{conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "False UpToDate",
				api.ConditionReady: "True UpToDate"}},
		},
		"creates the rollout for the due workloads, named after their certificates, in their order": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false),
				Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour), upToDate("web"), due("build", "hash-build", 30*24*time.Hour)}},
			want: want{create: "ops-e6352ea771 CertificateRenewed Deployment/api,Deployment/build", stale: 2, last: "ops-e6352ea771",
				events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"creates the rollout outside the window, for the rollout to wait for it, when the deadline is far": {
			in: Input{Policy: rolloutPolicy(deadline(72 * time.Hour)), Parsed: parsed(t, "", true), Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour)}},
			want: want{create: apiRollout + " CertificateRenewed Deployment/api", stale: 1, last: apiRollout, nextWindow: true,
				events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"triggers by Deadline outside the windows when the certificate the pods run on expires within the expiry deadline": {
			in: Input{Policy: rolloutPolicy(deadline(72 * time.Hour)), Parsed: parsed(t, "", true), Workloads: []Workload{due("api", "hash-api", 48*time.Hour)}},
			want: want{create: apiRollout + " Deadline Deployment/api", stale: 1, last: apiRollout, nextWindow: true,
				events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"triggers by Deadline exactly at the deadline": {
			in: Input{Policy: rolloutPolicy(deadline(72 * time.Hour)), Parsed: parsed(t, "", true), Workloads: []Workload{due("api", "hash-api", 72*time.Hour)}},
			want: want{create: apiRollout + " Deadline Deployment/api", stale: 1, last: apiRollout, nextWindow: true,
				events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"keeps the CertificateRenewed trigger past the deadline when no window is set (any time is a window)": {
			in: Input{Policy: rolloutPolicy(deadline(72 * time.Hour)), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", time.Hour)}},
			want: want{create: apiRollout + " CertificateRenewed Deployment/api", stale: 1, last: apiRollout,
				events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"starts nothing while one of its rollouts runs, and reports it": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour)},
				Rollouts: []api.CertRollout{certRollout("ops-by-hand", api.PhaseQuiescing, time.Minute), certRollout("ops-old", api.PhaseSucceeded, time.Hour)}},
			want: want{stale: 1, last: "ops-by-hand",
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress",
					api.ConditionLastRolloutSucceeded: "True Succeeded"}},
		},
		"starts nothing for an invalid policy, is Stalled and warns once": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "windows[0]: bad cron", false), Workloads: []Workload{due("api", "hash-api", time.Hour)}},
			want: want{stale: 1, events: []string{api.ReasonInvalidPolicy},
				conditions: map[string]string{api.ConditionValid: "False InvalidPolicy", api.ConditionPending: "True InvalidPolicy",
					api.ConditionStalled: "True InvalidPolicy", api.ConditionReady: "False InvalidPolicy"}},
		},
		"an invalid policy whose rollout still runs is both Reconciling and Stalled": {
			in: Input{Policy: rolloutPolicy(wasInvalid("windows[0]: bad cron")), Parsed: parsed(t, "windows[0]: bad cron", false),
				Workloads: []Workload{due("api", "hash-api", time.Hour)}, Rollouts: []api.CertRollout{certRollout("ops-1", api.PhaseRestarting, time.Minute)}},
			want: want{stale: 1, last: "ops-1",
				conditions: map[string]string{api.ConditionValid: "False InvalidPolicy", api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionStalled: "True InvalidPolicy", api.ConditionReady: "False InvalidPolicy"}},
		},
		"does not warn again about the same problem": {
			in: Input{Policy: rolloutPolicy(wasInvalid("windows[0]: bad cron")), Parsed: parsed(t, "windows[0]: bad cron", false), Workloads: []Workload{upToDate("api")}},
			want: want{conditions: map[string]string{api.ConditionValid: "False InvalidPolicy", api.ConditionPending: "False UpToDate",
				api.ConditionStalled: "True InvalidPolicy", api.ConditionReady: "False InvalidPolicy"}},
		},
		"warns again when the problem changes": {
			in: Input{Policy: rolloutPolicy(wasInvalid("windows[0]: bad cron")), Parsed: parsed(t, "quiesce[0]: missing", false), Workloads: []Workload{upToDate("api")}},
			want: want{events: []string{api.ReasonInvalidPolicy}, conditions: map[string]string{api.ConditionValid: "False InvalidPolicy",
				api.ConditionPending: "False UpToDate", api.ConditionStalled: "True InvalidPolicy", api.ConditionReady: "False InvalidPolicy"}},
		},
		"is Ready again once fixed, without Stalled": {
			in:   Input{Policy: rolloutPolicy(wasInvalid("windows[0]: bad cron")), Parsed: parsed(t, "", false), Workloads: []Workload{upToDate("api")}},
			want: want{conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "False UpToDate", api.ConditionReady: "True UpToDate"}},
		},
		"starts nothing while suspended, and neither reconciles nor stalls": {
			in:   Input{Policy: rolloutPolicy(suspended), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", time.Hour)}},
			want: want{stale: 1, conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True Suspended", api.ConditionReady: "False Suspended"}},
		},
		"a suspended policy whose workloads are current is Ready": {
			in:   Input{Policy: rolloutPolicy(suspended), Parsed: parsed(t, "", false), Workloads: []Workload{upToDate("api")}},
			want: want{conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "False UpToDate", api.ConditionReady: "True UpToDate"}},
		},
		"does not start again the rollout of the same certificates that failed, and stalls": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour)},
				Rollouts: []api.CertRollout{certRollout(apiRollout, api.PhaseFailed, time.Hour)}},
			want: want{stale: 1, last: apiRollout,
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True LastRolloutFailed",
					api.ConditionStalled: "True LastRolloutFailed", api.ConditionReady: "False LastRolloutFailed",
					api.ConditionLastRolloutSucceeded: "False TargetFailed"}},
		},
		"learns of the same-named failed rollout from a create that found it (a cache that lags)": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour)},
				Existing: ptrTo(certRollout(apiRollout, api.PhaseFailed, time.Hour))},
			want: want{stale: 1, last: apiRollout,
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True LastRolloutFailed",
					api.ConditionStalled: "True LastRolloutFailed", api.ConditionReady: "False LastRolloutFailed"}},
		},
		"reports the same-named rollout a create found still running, without an Event": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api", 30*24*time.Hour)},
				Existing: ptrTo(certRollout(apiRollout, "", 0))},
			want: want{stale: 1, last: apiRollout,
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress"}},
		},
		"creates the rollout for new certificates after one for older certificates failed": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{due("api", "hash-api-2", 30*24*time.Hour)},
				Rollouts: []api.CertRollout{certRollout(apiRollout, api.PhaseFailed, time.Hour)}},
			want: want{create: RolloutName("ops", map[string]string{"Deployment/api": "hash-api-2"}) + " CertificateRenewed Deployment/api", stale: 1,
				last: RolloutName("ops", map[string]string{"Deployment/api": "hash-api-2"}), events: []string{api.ReasonRolloutCreated},
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress",
					api.ConditionLastRolloutSucceeded: "False TargetFailed"}},
		},
		"waits for the settle period and comes back when the soonest one ends": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{waiting("api", 20*time.Second), waiting("web", 5*time.Second), upToDate("db")}},
			want: want{stale: 2, requeue: 5 * time.Second,
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True Waiting",
					api.ConditionReconciling: "True Waiting", api.ConditionReady: "False Waiting"}},
		},
		"does not reconcile for a stale workload that is only blocked": {
			in:   Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{blocked("api")}},
			want: want{stale: 1, conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True Waiting", api.ConditionReady: "False Waiting"}},
		},
		"prunes the oldest finished rollouts beyond the history limit, never a running one": {
			in: Input{Policy: rolloutPolicy(historyLimit(2)), Parsed: parsed(t, "", false), Workloads: []Workload{upToDate("api")},
				Rollouts: []api.CertRollout{
					certRollout("ops-3", api.PhaseSucceeded, 3*time.Hour), certRollout("ops-1", api.PhaseFailed, 1*time.Hour),
					certRollout("ops-5", api.PhaseSucceeded, 5*time.Hour), certRollout("ops-4", api.PhaseSucceeded, 4*time.Hour),
					certRollout("ops-2", api.PhaseSucceeded, 2*time.Hour), certRollout("ops-6", api.PhaseRestarting, 6*time.Hour),
				}},
			want: want{prune: []string{"ops-3", "ops-4", "ops-5"}, last: "ops-1",
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "True RolloutInProgress",
					api.ConditionReconciling: "True RolloutInProgress", api.ConditionReady: "False RolloutInProgress",
					api.ConditionLastRolloutSucceeded: "False TargetFailed"}},
		},
		"keeps ten finished rollouts by default": {
			in: Input{Policy: rolloutPolicy(), Parsed: parsed(t, "", false), Workloads: []Workload{upToDate("api")},
				Rollouts: finishedRollouts(11)},
			want: want{prune: []string{"ops-11"}, last: "ops-01",
				conditions: map[string]string{api.ConditionValid: valid, api.ConditionPending: "False UpToDate",
					api.ConditionReady: "True UpToDate", api.ConditionLastRolloutSucceeded: "True Succeeded"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			tc.in.Now = now
			res := Decide(tc.in)
			if got := describeCreate(res.Create); got != tc.want.create {
				t.Errorf("create %q, want %q", got, tc.want.create)
			}
			if got := conditions(t, res.Status); !maps.Equal(got, tc.want.conditions) {
				t.Errorf("conditions\n got %v\nwant %v", got, tc.want.conditions)
			}
			var events []string
			for _, e := range res.Events {
				events = append(events, e.Reason)
			}
			if !slices.Equal(events, tc.want.events) {
				t.Errorf("events %v, want %v", events, tc.want.events)
			}
			var pruned []string
			for _, ro := range res.Prune {
				pruned = append(pruned, ro.Name)
			}
			if !slices.Equal(pruned, tc.want.prune) {
				t.Errorf("prune %v, want %v", pruned, tc.want.prune)
			}
			if res.RequeueAfter != tc.want.requeue {
				t.Errorf("requeue after %s, want %s", res.RequeueAfter, tc.want.requeue)
			}
			s := res.Status
			if s.ObservedGeneration != generation || int(s.Workloads) != len(tc.in.Workloads) || int(s.StaleWorkloadCount) != tc.want.stale || len(s.StaleWorkloads) != tc.want.stale {
				t.Errorf("status generation %d, %d workloads, %d stale %v; want %d, %d, %d", s.ObservedGeneration, s.Workloads,
					s.StaleWorkloadCount, s.StaleWorkloads, generation, len(tc.in.Workloads), tc.want.stale)
			}
			if got := ""; s.LastRollout != nil {
				got = s.LastRollout.Name
				if got != tc.want.last {
					t.Errorf("last rollout %q, want %q", got, tc.want.last)
				}
			} else if tc.want.last != "" {
				t.Errorf("no last rollout, want %q", tc.want.last)
			}
			if wantNext := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC); tc.want.nextWindow != (s.NextWindow != nil) ||
				(s.NextWindow != nil && !s.NextWindow.Time.Equal(wantNext)) {
				t.Errorf("next window %v, want one at %s: %t", s.NextWindow, wantNext, tc.want.nextWindow)
			}
		})
	}
}

func ptrTo(ro api.CertRollout) *api.CertRollout { return &ro }

// finishedRollouts are n succeeded rollouts ops-01 (newest) to ops-n (oldest).
func finishedRollouts(n int) []api.CertRollout {
	var out []api.CertRollout
	for i := 1; i <= n; i++ {
		out = append(out, certRollout(fmt.Sprintf("ops-%02d", i), api.PhaseSucceeded, time.Duration(i)*time.Hour))
	}
	return out
}

func describeCreate(ro *api.CertRollout) string {
	if ro == nil {
		return ""
	}
	var targets []string
	for _, t := range ro.Spec.Targets {
		targets = append(targets, t.Key())
	}
	return fmt.Sprintf("%s %s %s", ro.Name, ro.Spec.Trigger.Type, strings.Join(targets, ","))
}

// conditions are the status's conditions as "Status Reason" by type; each must carry the policy's
// generation and a transition time.
func conditions(t *testing.T, s api.RolloutPolicyStatus) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range s.Conditions {
		out[c.Type] = string(c.Status) + " " + c.Reason
		if c.ObservedGeneration != generation {
			t.Errorf("condition %s observed generation %d, want %d", c.Type, c.ObservedGeneration, generation)
		}
		if c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s has no transition time", c.Type)
		}
	}
	return out
}

func TestTheCreatedRolloutNamesThePolicyItsCertificatesAndWhy(t *testing.T) {
	in := Input{Now: now, Policy: rolloutPolicy(deadline(72 * time.Hour)), Parsed: parsed(t, "", true),
		Workloads: []Workload{due("api", "hash-api", 48*time.Hour), due("web", "hash-web", 24*time.Hour)}}
	ro := Decide(in).Create
	if ro == nil {
		t.Fatal("no rollout to create")
	}
	if ro.Namespace != "ops" || ro.Labels[api.LabelPolicy] != "ops" || ro.Spec.Policy != "ops" {
		t.Errorf("rollout %s/%s labels %v policy %q", ro.Namespace, ro.Name, ro.Labels, ro.Spec.Policy)
	}
	if want := map[string]string{"Deployment/api": "hash-api", "Deployment/web": "hash-web"}; !maps.Equal(ro.Spec.Trigger.Certificates, want) {
		t.Errorf("certificates %v, want %v", ro.Spec.Trigger.Certificates, want)
	}
	for _, want := range []string{"2 workload(s)", "expires at " + now.Add(24*time.Hour).Format(time.RFC3339)} {
		if !strings.Contains(ro.Spec.Trigger.Message, want) {
			t.Errorf("trigger message %q lacks %q", ro.Spec.Trigger.Message, want)
		}
	}
}

func TestRolloutName(t *testing.T) {
	// The names of rollouts already on clusters: a changed name would start a second rollout for them.
	if got := RolloutName("ops", map[string]string{"Deployment/api": "hash-api", "Deployment/build": "hash-build"}); got != "ops-e6352ea771" {
		t.Errorf("got %s", got)
	}
	if got := RolloutName("ops", map[string]string{"Deployment/api": "hash-api"}); got != "ops-f3248af64d" {
		t.Errorf("got %s", got)
	}
	long := RolloutName(strings.Repeat("p", 260), map[string]string{"Deployment/api": "hash-api"})
	if len(long) != 253 || !strings.HasSuffix(long, "-f3248af64d") {
		t.Errorf("a long policy name gives %d characters: %s", len(long), long)
	}
}

func TestDecidingAgainOnItsOwnStatusChangesNothing(t *testing.T) {
	in := Input{Now: now, Policy: rolloutPolicy(), Parsed: parsed(t, "bad", true),
		Workloads: []Workload{due("api", "hash-api", time.Hour), waiting("web", time.Second)},
		Rollouts:  []api.CertRollout{certRollout("ops-1", api.PhaseFailed, time.Hour)}}
	first := Decide(in)
	in.Policy = rolloutPolicy(func(p *api.RolloutPolicy) { p.Status = first.Status })
	in.Now = now.Add(time.Minute)
	second := Decide(in)
	if !equality.Semantic.DeepEqual(first.Status, second.Status) {
		t.Errorf("the status changed:\n%+v\n%+v", first.Status, second.Status)
	}
	if len(second.Events) != 0 {
		t.Errorf("events again: %+v", second.Events)
	}
}

func TestAConditionKeepsItsTransitionTimeUntilItsStatusChanges(t *testing.T) {
	in := Input{Now: now, Policy: rolloutPolicy(wasInvalid("bad")), Parsed: parsed(t, "worse", false)}
	c := apimeta.FindStatusCondition(Decide(in).Status.Conditions, api.ConditionValid)
	if c == nil || !c.LastTransitionTime.Time.Equal(now.Add(-time.Hour)) || c.Message != "worse" || c.ObservedGeneration != generation {
		t.Errorf("Valid %+v: want its transition an hour ago, the new message and generation", c)
	}
	in.Parsed.Invalid = ""
	c = apimeta.FindStatusCondition(Decide(in).Status.Conditions, api.ConditionValid)
	if c == nil || !c.LastTransitionTime.Time.Equal(now) {
		t.Errorf("Valid %+v: want its transition now", c)
	}
}

func TestStaleWorkloadsAreNamedUpToFifty(t *testing.T) {
	in := Input{Now: now, Policy: rolloutPolicy(), Parsed: parsed(t, "", false)}
	for i := range 60 {
		in.Workloads = append(in.Workloads, blocked(fmt.Sprintf("w%02d", i)))
	}
	s := Decide(in).Status
	if s.StaleWorkloadCount != 60 || len(s.StaleWorkloads) != 50 || s.StaleWorkloads[49].Name != "w49" {
		t.Errorf("%d stale, %d named, last %v", s.StaleWorkloadCount, len(s.StaleWorkloads), s.StaleWorkloads[len(s.StaleWorkloads)-1])
	}
}

func TestDecideDoesNotModifyItsInput(t *testing.T) {
	in := Input{Now: now, Policy: rolloutPolicy(wasInvalid("bad"), historyLimit(1)), Parsed: parsed(t, "", false),
		Workloads: []Workload{due("api", "hash-api", time.Hour)}, Rollouts: finishedRollouts(3)}
	before := *in.Policy.DeepCopy()
	rollouts := slices.Clone(in.Rollouts)
	Decide(in)
	if !equality.Semantic.DeepEqual(before, *in.Policy) || !equality.Semantic.DeepEqual(rollouts, in.Rollouts) {
		t.Error("Decide modified its input")
	}
}

func TestAQuiescedWorkerWhoseGraceOutlastsTheDrainLeavesThePolicyValidWithAWarningOnce(t *testing.T) {
	q := api.QuiesceTarget{Kind: api.KindDeployment, Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Hour}}
	warn := orchestrate.DrainWarning(0, q, 2*time.Hour, api.DrainTimeoutAbort)
	if !strings.Contains(warn, "Deployment workers lets its pods take up to 2h0m0s to stop") || !strings.Contains(warn, "onDrainTimeout: Abort") ||
		!strings.Contains(warn, "raise drainTimeout to at least 2h0m0s") {
		t.Errorf("warning %q: want the workload, both durations, what happens and what to do", warn)
	}
	if w := orchestrate.DrainWarning(0, q, 2*time.Hour, api.DrainTimeoutProceed); !strings.Contains(w, "the targets restart while its pods may still be finishing") {
		t.Errorf("under Proceed: %q", w)
	}
	if w := orchestrate.DrainWarning(0, q, time.Hour, api.DrainTimeoutAbort); w != "" {
		t.Errorf("a grace period equal to the drain timeout is no warning: %q", w)
	}
	if w := orchestrate.DrainWarning(0, api.QuiesceTarget{Kind: api.KindDeployment, Name: "w"}, 30*time.Second, ""); w != "" {
		t.Errorf("the defaults (30s grace, 1h drain) are no warning: %q", w)
	}

	p := parsed(t, "", false)
	p.Warnings = []string{warn}
	in := Input{Now: now, Policy: rolloutPolicy(), Parsed: p}
	first := Decide(in)
	c := apimeta.FindStatusCondition(first.Status.Conditions, api.ConditionValid)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != api.ReasonDrainShorterThanGrace || !strings.Contains(c.Message, warn) {
		t.Fatalf("Valid %+v: want True, DrainShorterThanGrace, with the warning", c)
	}
	if len(first.Events) != 1 || first.Events[0].Reason != api.ReasonDrainShorterThanGrace || !first.Events[0].Warning {
		t.Errorf("events %+v: want one DrainShorterThanGrace Warning", first.Events)
	}
	if r := apimeta.FindStatusCondition(first.Status.Conditions, api.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v: a warning does not keep a policy with nothing due from being Ready", r)
	}
	in.Policy = rolloutPolicy(func(p *api.RolloutPolicy) { p.Status = first.Status })
	if again := Decide(in); len(again.Events) != 0 {
		t.Errorf("the warning is repeated on every reconcile: %+v", again.Events)
	}
}
