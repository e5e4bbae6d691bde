package decide

import (
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/probe"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	issued := now.Add(-time.Hour)
	current := inventory.Set{Fingerprints: []string{"bb"}, Hash: "newhash", IssuedAt: issued, NotAfter: now.Add(90 * 24 * time.Hour)}
	before, after := issued.Add(-24*time.Hour), issued.Add(time.Minute)
	pods := func(started ...time.Time) []Pod {
		var ps []Pod
		for i, s := range started {
			ps = append(ps, Pod{Name: string(rune('a' + i)), Started: s})
		}
		return ps
	}
	jobPods := func(started ...time.Time) []Pod {
		ps := pods(started...)
		for i := range ps {
			ps[i].Job = "job-" + ps[i].Name
		}
		return ps
	}
	serving := func(v probe.Verdict, started ...time.Time) []Pod {
		ps := pods(started...)
		for i := range ps {
			ps[i].Name, ps[i].Serves = string(v)+"-"+ps[i].Name, v
		}
		return ps
	}
	enabled := map[string]string{api.AnnotationEnabled: "true"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	renewed := with(enabled, api.AnnotationCertificateHash, "oldhash")

	for name, tc := range map[string]struct {
		in         Input
		wantAction Action
		wantReason string
		wantStale  int
		wantAfter  time.Duration
	}{
		"does nothing for a workload that uses no certificates": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: enabled}, Pods: pods(before)},
			wantAction: ActionNone, wantReason: api.ReasonNoCertificates,
		},
		"records, never restarts, a renewal of a workload that reloads its certificates itself": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "true")}, Set: current, Pods: pods(before, before)},
			wantAction: ActionRecord, wantReason: api.ReasonReloadsItself, wantStale: 0,
		},
		"counts no pod of a self-reloading workload as stale even when it did not opt in, and writes nothing": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: map[string]string{api.AnnotationReloadsItself: "True"}}, Set: current, Pods: pods(before)},
			wantAction: ActionNone, wantReason: api.ReasonReloadsItself, wantStale: 0,
		},
		"restarts a workload that says it reloads itself but reads its certificate from an environment variable": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "true")}, Set: current, Pods: pods(before), NeverRefreshed: true},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"records, never restarts, pods that started before the renewal but serve the new certificate": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: serving(probe.Current, before, before)},
			wantAction: ActionRecord, wantReason: api.ReasonReloadedByItself, wantStale: 0,
		},
		"restarts when one pod of two still serves the old certificate": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: append(serving(probe.Current, before), serving(probe.Old, before)...)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"counts a pod probed serving an old certificate stale whatever its start time": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: enabled}, Set: current, Pods: serving(probe.Old, after)},
			wantAction: ActionRestart, wantReason: api.ReasonStalePods, wantStale: 1,
		},
		"restarts a workload that says it reloads itself when a probe shows it did not": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "true")}, Set: current, Pods: serving(probe.Old, before)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"falls back to start times for a pod no probe reached": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: append(serving(probe.Current, before), serving(probe.NotProbed, before)...)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"shows a reloaded workload it may not write to, and writes nothing": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment}, Set: current, Pods: serving(probe.Current, before)},
			wantAction: ActionNone, wantReason: api.ReasonReloadedByItself, wantStale: 0,
		},
		"waits while pods serving an old certificate may still get the renewed files from the kubelet": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "true")},
				Set:  inventory.Set{Fingerprints: current.Fingerprints, Hash: current.Hash, IssuedAt: issued, NotAfter: current.NotAfter, ChangedAt: now.Add(-time.Minute)},
				Pods: serving(probe.Old, before), Probed: true, ProbeGrace: 2 * time.Minute},
			wantAction: ActionWait, wantReason: api.ReasonPropagating, wantStale: 1, wantAfter: 10 * time.Second,
		},
		"restarts a pod still serving an old certificate once the grace is over": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "true")},
				Set:  inventory.Set{Fingerprints: current.Fingerprints, Hash: current.Hash, IssuedAt: issued, NotAfter: current.NotAfter, ChangedAt: now.Add(-3 * time.Minute)},
				Pods: serving(probe.Old, before), Probed: true, ProbeGrace: 2 * time.Minute},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"never records a ledger on a CronJob whose running Job reloaded": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindCronJob, Annotations: enabled}, Set: current, Pods: serving(probe.Current, before)},
			wantAction: ActionNone, wantReason: api.ReasonCronJob, wantStale: 0,
		},
		"takes a reloads-itself annotation that is not true as absent": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationReloadsItself, "sometimes")}, Set: current, Pods: pods(before)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"does nothing when the ledger already names the current certificates": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: with(enabled, api.AnnotationCertificateHash, "newhash")}, Set: current, Pods: pods(before)},
			wantAction: ActionNone, wantReason: api.ReasonUpToDate, wantStale: 1,
		},
		"stops restarting a workload that used its daily budget, until the oldest restart is a day old": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationRestartHistory,
				"2026-11-22T10:00:00Z,2026-11-22T13:00:00Z,2026-11-23T01:00:00Z,2026-11-23T11:00:00Z")}, Set: current, Pods: pods(before), RestartBudget: 3},
			wantAction: ActionBlock, wantReason: api.ReasonRestartBudget, wantStale: 1, wantAfter: time.Hour,
		},
		"restarts a workload whose earlier restarts have left the budget's window": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationRestartHistory,
				"2026-11-21T10:00:00Z,2026-11-22T11:00:00Z,garbage,2026-11-23T11:00:00Z")}, Set: current, Pods: pods(before), RestartBudget: 2},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"waits, rather than rolling twice, while a CA cascade re-issues a leaf it uses": {
			in: Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(before),
				Hold: &Hold{Message: "Certificate api is being re-issued under the new CA", RequeueAfter: 30 * time.Second}},
			wantAction: ActionWait, wantReason: api.ReasonCascadeInProgress, wantStale: 1, wantAfter: 30 * time.Second,
		},
		"a hold does not make a blocked workload restartable": {
			in: Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed, Paused: true}, Set: current, Pods: pods(before),
				Hold: &Hold{Message: "held", RequeueAfter: time.Second}},
			wantAction: ActionBlock, wantReason: api.ReasonDeploymentPaused, wantStale: 1,
		},
		"a hold keeps a governed workload from being handed to its policy yet": {
			in: Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(before), Policy: "p",
				Hold: &Hold{Message: "held", RequeueAfter: time.Second}},
			wantAction: ActionWait, wantReason: api.ReasonCascadeInProgress, wantStale: 1, wantAfter: time.Second,
		},
		"restarts when the certificates changed since the pods started": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(before, before)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 2,
		},
		"only records the ledger on first sight when the pods started after the certificates were issued": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: enabled}, Set: current, Pods: pods(after)},
			wantAction: ActionRecord, wantReason: api.ReasonPodsCurrent,
		},
		"restarts on first sight when the pods predate the certificates": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: enabled}, Set: current, Pods: pods(before, after)},
			wantAction: ActionRestart, wantReason: api.ReasonStalePods, wantStale: 1,
		},
		"records without restarting when someone else already restarted the pods after a renewal": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(after, after)},
			wantAction: ActionRecord, wantReason: api.ReasonPodsCurrent,
		},
		"counts a pod that started in the same second as the issuance as stale: the clock cannot tell": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(issued)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"does not count pods that have not started as stale": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed}, Set: current, Pods: pods(time.Time{})},
			wantAction: ActionRecord, wantReason: api.ReasonPodsCurrent,
		},
		"reports but never writes to a workload that did not opt in": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment}, Set: current, Pods: pods(before)},
			wantAction: ActionNone, wantReason: api.ReasonNotEnabled, wantStale: 1,
		},
		"does not even record the ledger of a workload that did not opt in": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment}, Set: current, Pods: pods(after)},
			wantAction: ActionNone, wantReason: api.ReasonPodsCurrent,
		},
		"restarts every workload under --auto": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment}, Set: current, Pods: pods(before), Auto: true},
			wantAction: ActionRestart, wantReason: api.ReasonStalePods, wantStale: 1,
		},
		"respects an explicit opt-out under --auto": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: map[string]string{api.AnnotationEnabled: "false"}}, Set: current, Pods: pods(before), Auto: true},
			wantAction: ActionNone, wantReason: api.ReasonNotEnabled, wantStale: 1,
		},
		"blocks and says why when the Deployment is paused": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed, Paused: true}, Set: current, Pods: pods(before)},
			wantAction: ActionBlock, wantReason: api.ReasonDeploymentPaused, wantStale: 1,
		},
		"blocks an OnDelete StatefulSet, which a template change would not roll": {
			in:         Input{Workload: Workload{Kind: api.KindStatefulSet, Annotations: renewed, OnDelete: true}, Set: current, Pods: pods(before)},
			wantAction: ActionBlock, wantReason: api.ReasonOnDeleteStrategy, wantStale: 1,
		},
		"blocks a StatefulSet whose partition would leave pods on the old certificate": {
			in:         Input{Workload: Workload{Kind: api.KindStatefulSet, Annotations: renewed, Partition: 2}, Set: current, Pods: pods(before)},
			wantAction: ActionBlock, wantReason: api.ReasonPartitioned, wantStale: 1,
		},
		"blocks a stale bare pod unless it allows deletion": {
			in:         Input{Workload: Workload{Kind: api.KindPod, Annotations: renewed}, Set: current, Pods: pods(before)},
			wantAction: ActionBlock, wantReason: api.ReasonBarePod, wantStale: 1,
		},
		"restarts (deletes) a stale bare pod that allows it": {
			in:         Input{Workload: Workload{Kind: api.KindPod, Annotations: with(renewed, api.AnnotationDeleteStalePods, "true")}, Set: current, Pods: pods(before)},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"reports, never restarts, the running Jobs of a CronJob that started before the renewal": {
			in:         Input{Workload: Workload{Kind: api.KindCronJob, Annotations: enabled}, Set: current, Pods: jobPods(before, after)},
			wantAction: ActionBlock, wantReason: api.ReasonStaleRunningJobs, wantStale: 1,
		},
		"leaves a CronJob alone and writes it no ledger when no running Job is stale": {
			in:         Input{Workload: Workload{Kind: api.KindCronJob, Annotations: enabled}, Set: current, Pods: jobPods(after)},
			wantAction: ActionNone, wantReason: api.ReasonCronJob,
		},
		"counts stale Jobs of a CronJob that did not opt in, without an Event": {
			in:         Input{Workload: Workload{Kind: api.KindCronJob}, Set: current, Pods: jobPods(before)},
			wantAction: ActionNone, wantReason: api.ReasonNotEnabled, wantStale: 1,
		},
		"delegates a due restart of a governed workload to its RolloutPolicy": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: map[string]string{api.AnnotationCertificateHash: "oldhash"}}, Set: current, Pods: pods(before), Policy: "ops"},
			wantAction: ActionDelegate, wantReason: api.ReasonGovernedByPolicy, wantStale: 1,
		},
		"still blocks a governed Deployment that is paused": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: renewed, Paused: true}, Set: current, Pods: pods(before), Policy: "ops"},
			wantAction: ActionBlock, wantReason: api.ReasonDeploymentPaused, wantStale: 1,
		},
		"respects an explicit opt-out of a workload a policy selects": {
			in:         Input{Workload: Workload{Kind: api.KindDeployment, Annotations: map[string]string{api.AnnotationEnabled: "false"}}, Set: current, Pods: pods(before), Policy: "ops"},
			wantAction: ActionNone, wantReason: api.ReasonNotEnabled, wantStale: 1,
		},
		"waits out the minimum restart interval and says when": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationRestartedAt, now.Add(-4*time.Minute).Format(time.RFC3339))},
				Set: current, Pods: pods(before), MinRestartInterval: 10 * time.Minute},
			wantAction: ActionWait, wantReason: api.ReasonCooldown, wantStale: 1, wantAfter: 6 * time.Minute,
		},
		"waits for the settle period after the last change so related changes coalesce": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: renewed},
				Set: withChange(current, now.Add(-2*time.Second)), Pods: pods(before), SettlePeriod: 5 * time.Second},
			wantAction: ActionWait, wantReason: api.ReasonSettling, wantStale: 1, wantAfter: 3 * time.Second,
		},
		"restarts once the sources have been quiet for the settle period": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: renewed},
				Set: withChange(current, now.Add(-6*time.Second)), Pods: pods(before), SettlePeriod: 5 * time.Second},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
		"restarts once the minimum restart interval has passed": {
			in: Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: with(renewed, api.AnnotationRestartedAt, now.Add(-11*time.Minute).Format(time.RFC3339))},
				Set: current, Pods: pods(before), MinRestartInterval: 10 * time.Minute},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantStale: 1,
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := Restart(tc.in)
			if d.Action != tc.wantAction || d.Reason != tc.wantReason {
				t.Fatalf("got %s/%s (%s), want %s/%s", d.Action, d.Reason, d.Message, tc.wantAction, tc.wantReason)
			}
			if len(d.StalePods) != tc.wantStale {
				t.Errorf("stale pods %v, want %d", d.StalePods, tc.wantStale)
			}
			if d.RequeueAfter != tc.wantAfter {
				t.Errorf("requeue after %s, want %s", d.RequeueAfter, tc.wantAfter)
			}
			if d.Message == "" {
				t.Error("every decision explains itself")
			}
			if d.Set.Hash != tc.in.Set.Hash {
				t.Error("the decision carries the set to record")
			}
		})
	}
}

func TestStaleRunningJobsAreNamedOnce(t *testing.T) {
	issued := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	set := inventory.Set{Fingerprints: []string{"b"}, Hash: "new", IssuedAt: issued}
	before := issued.Add(-time.Minute)
	d := Restart(Input{
		Workload: Workload{Kind: api.KindCronJob, Annotations: map[string]string{api.AnnotationEnabled: "true"}}, Set: set,
		Pods: []Pod{{Name: "b-1", Started: before, Job: "nightly-2"}, {Name: "a-1", Started: before, Job: "nightly-1"}, {Name: "a-2", Started: before, Job: "nightly-1"}},
	})
	if want := "3 pod(s) of running Job(s) nightly-1, nightly-2 started"; !strings.HasPrefix(d.Message, want) {
		t.Errorf("message %q, want it to start with %q", d.Message, want)
	}
}

func withChange(s inventory.Set, at time.Time) inventory.Set {
	s.ChangedAt = at
	return s
}

func TestReadLedgerToleratesGarbage(t *testing.T) {
	l := ReadLedger(map[string]string{api.AnnotationCertificateHash: "abc", api.AnnotationRestartedAt: "yesterday"})
	if l.Hash != "abc" || !l.RestartedAt.IsZero() {
		t.Fatalf("%+v", l)
	}
}

func TestRestartHistoryKeepsTheLastDayOnly(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	got := RestartHistory(map[string]string{api.AnnotationRestartHistory: "2026-11-22T11:59:59Z,2026-11-23T11:00:00Z,not a time,2026-11-23T13:00:00Z"}, now)
	if want := "2026-11-23T11:00:00Z,2026-11-23T12:00:00Z"; got != want {
		t.Fatalf("history %q, want %q (older than a day, malformed and future entries dropped)", got, want)
	}
	long := map[string]string{}
	for i := range 100 {
		long[api.AnnotationRestartHistory] = RestartHistory(long, now.Add(time.Duration(i)*time.Second))
	}
	if n := len(strings.Split(long[api.AnnotationRestartHistory], ",")); n != maxHistory {
		t.Fatalf("%d entries kept, want at most %d", n, maxHistory)
	}
}
