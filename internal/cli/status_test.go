package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// statusFixtures are three rollouts at fixed times: a finished policy rollout, a failed one and one
// waiting for its window, in two namespaces.
func statusFixtures() []api.CertRollout {
	snaps := opsChainSnapshots()
	done := snaps[len(snaps)-1][0]
	done.CreationTimestamp = metav1.Time{Time: t0}
	done.Labels = map[string]string{api.LabelPolicy: "build"}
	done.Spec.Trigger = api.RolloutTrigger{Type: api.TriggerCertificateRenewed, Message: "1 workload(s) run on certificates older than the ones they use"}
	done.Status.Conditions = []metav1.Condition{{Type: api.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "1 target(s) restarted, 1 quiesced workload(s) restored", LastTransitionTime: *at(41 * time.Second)}}
	fsnaps := failingSnapshots()
	failed := fsnaps[len(fsnaps)-1][0]
	failed.Namespace = "ops"
	failed.CreationTimestamp = metav1.Time{Time: t0.Add(-time.Hour)}
	failed.Spec.Trigger = api.RolloutTrigger{Type: api.TriggerManual, Message: "restarted by hand: certrollout restart deploy/stuck sts/db"}
	failed.Spec.Targets = []api.WorkloadReference{{Kind: "Deployment", Name: "stuck"}, {Kind: "StatefulSet", Name: "db"}}
	waiting := api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "gateway-9fz2q", CreationTimestamp: metav1.Time{Time: t0.Add(2 * time.Minute)}},
		Spec:       api.CertRolloutSpec{Policy: "gateway", Trigger: api.RolloutTrigger{Type: api.TriggerCertificateRenewed}},
		Status: api.CertRolloutStatus{Phase: api.PhaseWaitingForWindow, Message: "waiting for the maintenance window at 2026-11-28T02:00:00Z",
			NextWindow: &metav1.Time{Time: time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)}},
	}
	return []api.CertRollout{waiting, done, failed}
}

func TestStatusTablesAndDetails(t *testing.T) {
	now := t0.Add(5 * time.Minute)
	ros := statusFixtures()
	sortRollouts(ros)
	for name, print := range map[string]func(*bytes.Buffer) error{
		"table": func(b *bytes.Buffer) error { return printRolloutTable(b, ros[:2], now, false, false) },
		"wide":  func(b *bytes.Buffer) error { return printRolloutTable(b, ros, now, true, true) },
		"describe": func(b *bytes.Buffer) error {
			o := &StatusOptions{Now: func() time.Time { return now }}
			return o.printDetails(b, ros[:2])
		},
		"describe-waiting": func(b *bytes.Buffer) error { return describeRollout(b, &ros[2], now) },
		"json": func(b *bytes.Buffer) error {
			o := &StatusOptions{Now: func() time.Time { return now }, OutputFlag: OutputFlag{Output: OutputJSON}}
			return o.printDetails(b, ros[1:2])
		},
		"yaml-list": func(b *bytes.Buffer) error {
			o := &StatusOptions{Now: func() time.Time { return now }, OutputFlag: OutputFlag{Output: OutputYAML}}
			return o.printDetails(b, ros)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := print(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, "status-"+name, b.String())
		})
	}
}

func TestStatusDurationIsUntilNowWhileRunning(t *testing.T) {
	ro := api.CertRollout{Status: api.CertRolloutStatus{Phase: api.PhaseRestarting, StartTime: at(0),
		Targets: []api.TargetStatus{{Kind: "Deployment", Name: "a", State: api.TargetRestarting, StartedAt: at(10 * time.Second)}, {Kind: "Deployment", Name: "b", State: api.TargetPending}}}}
	got := rolloutStatus(&ro, t0.Add(time.Minute), true)
	if got.DurationSeconds == nil || *got.DurationSeconds != 60 || got.Completed != nil || got.Kind != "RolloutStatus" {
		t.Fatalf("rollout: %+v", got)
	}
	if d := got.Targets[0].DurationSeconds; d == nil || *d != 50 {
		t.Errorf("running target: %v", d)
	}
	if d := got.Targets[1].DurationSeconds; d != nil {
		t.Errorf("pending target has a duration: %d", *d)
	}
}

func TestStatusListsAndDescribesRolloutsOnTheCluster(t *testing.T) {
	e := newRestartEnv(t)
	ctx := context.Background()
	// No controller runs here: the statuses stay as written.
	ros := statusFixtures()
	for i := range ros[1:] {
		ro := ros[1+i].DeepCopy()
		ro.Namespace, ro.ResourceVersion, ro.CreationTimestamp = e.ns, "", metav1.Time{}
		status := ro.Status
		if err := e.cl.Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
		ro.Status = status
		if err := e.cl.Status().Update(ctx, ro); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := e.run("status")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[0], "DURATION") {
		t.Fatalf("want a header and two rows:\n%s", out)
	}
	if !strings.Contains(out, "build-x7k2p") || !strings.Contains(out, "Succeeded") || !strings.Contains(out, "stuck-abcde") || !strings.Contains(out, "Failed") {
		t.Errorf("table:\n%s", out)
	}

	out, _, err = e.run("status", "-l", api.LabelPolicy+"=build", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list RolloutStatusList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not a RolloutStatusList: %v\n%s", err, out)
	}
	if list.Kind != "RolloutStatusList" || list.APIVersion != ReportAPIVersion || len(list.Items) != 1 || list.Items[0].Name != "build-x7k2p" {
		t.Fatalf("selected list: %+v", list)
	}
	if q := list.Items[0].Quiesced; len(q) != 1 || q[0].OriginalReplicas == nil || *q[0].OriginalReplicas != 3 || q[0].State != "Restored" ||
		list.Items[0].DurationSeconds == nil || *list.Items[0].DurationSeconds != 40 {
		t.Errorf("item: %+v", list.Items[0])
	}

	out, _, err = e.run("status", "build-x7k2p")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Policy:      build", "Trigger:     CertificateRenewed", "Quiesced:", "Deployment/workers   3          Restored", "Targets:", "Deployment/build   Succeeded", "Duration:    40s"} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}

	out, _, err = e.run("status", "stuck-abcde", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var one RolloutStatus
	if err := yaml.Unmarshal([]byte(out), &one); err != nil {
		t.Fatal(err)
	}
	if one.Kind != "RolloutStatus" || one.Phase != "Failed" || len(one.Targets) != 2 || one.Targets[1].State != "Skipped" || one.Conditions[0].Type != "Failed" {
		t.Errorf("one: %+v", one)
	}

	// --watch on a finished rollout returns at once, with its result as the exit status.
	_, _, err = e.run("status", "stuck-abcde", "--watch")
	if !errors.Is(err, ErrRolloutFailed) {
		t.Errorf("watching a failed rollout: %v", err)
	}

	_, _, err = e.run("status", "nope")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`CertRollout "nope" not found in namespace %q`, e.ns)) {
		t.Errorf("unknown name: %v", err)
	}
	_, stderr, err = e.run("status", "-l", "x=y")
	if err != nil || !strings.Contains(stderr, "No CertRollouts found in namespace "+e.ns) {
		t.Errorf("empty list: %v, %q", err, stderr)
	}
}

func TestStatusShowsEachTargetsStepOnlyWhenTheRolloutHasSteps(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ro := &api.CertRollout{}
	ro.Status.Targets = []api.TargetStatus{{Kind: "Deployment", Name: "management", State: api.TargetSucceeded, Step: 1}, {Kind: "Deployment", Name: "gateway", State: api.TargetPending, Step: 2}}
	s := targetSection(ro, now)
	if s.headers[0] != "STEP" || s.rows[0][0] != "1" || s.rows[1][0] != "2" || s.rows[1][1] != "Deployment/gateway" {
		t.Errorf("headers %v rows %v: want a STEP column first", s.headers, s.rows)
	}
	ro.Status.Targets[0].Step, ro.Status.Targets[1].Step = 0, 0
	if s := targetSection(ro, now); s.headers[0] != "WORKLOAD" {
		t.Errorf("headers %v: no STEP column without steps", s.headers)
	}
}

func TestStatusShowsWhetherEachTargetWasVerifiedOnlyWhenOneWasProbed(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ro := &api.CertRollout{}
	ro.Status.Targets = []api.TargetStatus{
		{Kind: "Deployment", Name: "api", State: api.TargetSucceeded, Verification: api.TargetVerified},
		{Kind: "Deployment", Name: "stuck", State: api.TargetFailed, Verification: api.TargetNotVerified, Message: "not verified: stuck-1 serves 1a2b3c4d5e6f"},
		{Kind: "Deployment", Name: "batch", State: api.TargetSucceeded},
	}
	s := targetSection(ro, now)
	col := slices.Index(s.headers, "VERIFIED")
	if col < 0 || s.headers[len(s.headers)-1] != "MESSAGE" {
		t.Fatalf("headers %v: want VERIFIED before MESSAGE", s.headers)
	}
	if got := []string{s.rows[0][col], s.rows[1][col], s.rows[2][col]}; !slices.Equal(got, []string{"yes", "NO", "-"}) {
		t.Errorf("VERIFIED column %v", got)
	}
	for i := range ro.Status.Targets {
		ro.Status.Targets[i].Verification = ""
	}
	if s := targetSection(ro, now); slices.Contains(s.headers, "VERIFIED") {
		t.Errorf("headers %v: no VERIFIED column when nothing was probed", s.headers)
	}
}
