package cli

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// sortRollouts orders rollouts as history reads: by namespace, then oldest first, then by name.
func sortRollouts(ros []api.CertRollout) {
	sort.SliceStable(ros, func(i, j int) bool {
		a, b := ros[i], ros[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// rolloutStatus is the documented view of a CertRollout. typed sets apiVersion and kind, for a
// document of its own.
func rolloutStatus(ro *api.CertRollout, now time.Time, typed bool) RolloutStatus {
	st := ro.Status
	out := RolloutStatus{
		Namespace: ro.Namespace, Name: ro.Name, Policy: ro.Spec.Policy,
		Trigger: RolloutTrigger{Type: string(ro.Spec.Trigger.Type), Message: ro.Spec.Trigger.Message},
		Phase:   string(st.Phase), Progress: st.Progress, Message: st.Message,
		Started: timePtr(st.StartTime), Completed: timePtr(st.CompletionTime), NextWindow: timePtr(st.NextWindow),
		DurationSeconds: seconds(st.StartTime, st.CompletionTime, now),
	}
	if typed {
		out.APIVersion, out.Kind = ReportAPIVersion, "RolloutStatus"
	}
	if !ro.CreationTimestamp.IsZero() {
		out.Created = timePtr(&ro.CreationTimestamp)
	}
	for _, t := range ro.Spec.Targets {
		out.RequestedTargets = append(out.RequestedTargets, t.Key())
	}
	if c := ro.Spec.Cascade; c != nil {
		out.Cascade = &CascadeInfo{IssuerKind: c.IssuerRef.Kind, IssuerName: c.IssuerRef.Name, CAFingerprint: c.CAFingerprint, MaxConcurrent: c.MaxConcurrent}
	}
	for _, t := range st.TrustedBy {
		out.TrustedBy = append(out.TrustedBy, TrustStep{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name, State: string(t.State), Message: t.Message})
	}
	for _, c := range st.Certificates {
		step := LeafStep{Namespace: c.Namespace, Name: c.Name, State: string(c.State), PreviousRevision: c.PreviousRevision, Revision: c.Revision,
			StartedAt: timePtr(c.StartedAt), FinishedAt: timePtr(c.FinishedAt), Message: c.Message}
		if c.State != api.LeafPending {
			step.DurationSeconds = seconds(c.StartedAt, c.FinishedAt, now)
		}
		out.Certificates = append(out.Certificates, step)
	}
	for _, q := range st.Quiesced {
		out.Quiesced = append(out.Quiesced, QuiescedStep{
			Kind: q.Kind, Name: q.Name, OriginalReplicas: q.OriginalReplicas, State: string(q.State),
			ScaledDownAt: timePtr(q.ScaledDownAt), DrainedAt: timePtr(q.DrainedAt), RestoredAt: timePtr(q.RestoredAt), Message: q.Message,
		})
	}
	for _, t := range st.Targets {
		step := TargetStep{Kind: t.Kind, Name: t.Name, State: string(t.State), Step: t.Step, StartedAt: timePtr(t.StartedAt), FinishedAt: timePtr(t.FinishedAt), Message: t.Message, Verification: t.Verification}
		if t.State != api.TargetPending && t.State != api.TargetSkipped && t.State != api.TargetUpToDate {
			step.DurationSeconds = seconds(t.StartedAt, t.FinishedAt, now)
		}
		out.Targets = append(out.Targets, step)
	}
	out.Conditions = rolloutConditions(st.Conditions)
	return out
}

// rolloutConditions are conditions as the documents show them.
func rolloutConditions(conds []metav1.Condition) []RolloutCondition {
	var out []RolloutCondition
	for _, c := range conds {
		out = append(out, RolloutCondition{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime.UTC(),
		})
	}
	return out
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func seconds(since, until *metav1.Time, now time.Time) *int64 {
	if since == nil {
		return nil
	}
	end := now
	if until != nil {
		end = until.Time
	}
	s := int64(end.Sub(since.Time).Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	return &s
}

// targetsColumn lists the targets: those in the status once it started, else those requested, else
// "all of <policy>".
func targetsColumn(ro *api.CertRollout) string {
	if len(ro.Status.Targets) > 0 {
		return targetNames(ro.Status.Targets)
	}
	if len(ro.Spec.Targets) > 0 {
		return refsString(ro.Spec.Targets)
	}
	if ro.Spec.Policy != "" {
		return "all of " + ro.Spec.Policy
	}
	return ""
}

// maxConcurrentOf is spec.cascade.maxConcurrent as the controller applies it (the CRD defaults it to 5).
func maxConcurrentOf(c *api.CascadeSpec) int32 {
	if c.MaxConcurrent > 0 {
		return c.MaxConcurrent
	}
	return 5
}

// rolloutTableView is the table of `status` without names: one row per rollout.
type rolloutTableView struct {
	headers []string
	rows    [][]string
}

func newRolloutTableView(ros []api.CertRollout, now time.Time, allNamespaces, wide bool) rolloutTableView {
	v := rolloutTableView{headers: []string{"NAME", "POLICY", "TRIGGER", "PHASE", "PROGRESS", "STARTED", "DURATION", "AGE"}}
	if allNamespaces {
		v.headers = append([]string{"NAMESPACE"}, v.headers...)
	}
	if wide {
		v.headers = append(v.headers, "TARGETS", "MESSAGE")
	}
	for i := range ros {
		ro := &ros[i]
		st := ro.Status
		var started time.Time
		if st.StartTime != nil {
			started = st.StartTime.Time
		}
		row := []string{ro.Name, ro.Spec.Policy, string(ro.Spec.Trigger.Type), string(st.Phase), st.Progress,
			age(started, now), rolloutElapsed(st.StartTime, st.CompletionTime, now), age(ro.CreationTimestamp.Time, now)}
		if allNamespaces {
			row = append([]string{ro.Namespace}, row...)
		}
		if wide {
			row = append(row, targetsColumn(ro), st.Message)
		}
		v.rows = append(v.rows, row)
	}
	return v
}

// rolloutDescription is `status NAME` for one rollout, as kubectl describe reads: its fields, then one
// section per kind of step. Each part renders itself (status_print.go).
type rolloutDescription struct {
	fields   describeFields
	sections []stepSection
}

// describeFields are "Name: value" lines; empty values are left out.
type describeFields []describeField

type describeField struct{ name, value string }

// stepSection is a titled table of steps (trusting workloads, leaves, quiesced workloads, targets,
// conditions).
type stepSection struct {
	title   string
	headers []string
	rows    [][]string
}

// newRolloutDescription maps a CertRollout to its description at now.
func newRolloutDescription(ro *api.CertRollout, now time.Time) rolloutDescription {
	return rolloutDescription{
		fields: rolloutFields(ro, now),
		sections: []stepSection{
			trustSection(ro), leafSection(ro, now), quiescedSection(ro), targetSection(ro, now), conditionSection(ro),
		},
	}
}

func rolloutFields(ro *api.CertRollout, now time.Time) describeFields {
	st := ro.Status
	at := func(t *metav1.Time) string { return timeAgo(t, now) }
	trigger := string(ro.Spec.Trigger.Type)
	if ro.Spec.Trigger.Message != "" {
		trigger += ": " + ro.Spec.Trigger.Message
	}
	f := describeFields{
		{"Name", ro.Name}, {"Namespace", ro.Namespace}, {"Policy", orElse(ro.Spec.Policy, "<none>")}, {"Trigger", trigger},
	}
	if c := ro.Spec.Cascade; c != nil {
		f = append(f, describeField{"Cascade", fmt.Sprintf("%s %s, CA certificate %s, at most %d leaf Certificate(s) re-issued at once",
			c.IssuerRef.Kind, c.IssuerRef.Name, c.CAFingerprint, maxConcurrentOf(c))})
	} else {
		f = append(f, describeField{"Targets", orElse(refsString(ro.Spec.Targets), "all the policy governs")})
	}
	if e := ro.Spec.Emergency; e != nil {
		emergency := "requested by " + orElse(e.RequestedBy, "an unnamed user") + ": " + e.Reason
		if c := emergencyStart(ro); c != nil {
			emergency = c.Message
		}
		f = append(f, describeField{"Emergency", emergency})
	}
	f = append(f,
		describeField{"Phase", orElse(string(st.Phase), "<none> (no controller has picked it up)")},
		describeField{"Progress", st.Progress}, describeField{"Message", st.Message},
		describeField{"Created", at(&ro.CreationTimestamp)})
	if st.NextWindow != nil {
		f = append(f, describeField{"Next window", timestamp(st.NextWindow.Time) + " (in " + residual(st.NextWindow.Time, now) + ")"})
	}
	f = append(f, describeField{"Started", at(st.StartTime)}, describeField{"Completed", at(st.CompletionTime)})
	if st.StartTime != nil {
		d := rolloutElapsed(st.StartTime, st.CompletionTime, now)
		if st.CompletionTime == nil {
			d += " so far"
		}
		f = append(f, describeField{"Duration", d})
	}
	return f
}

// timeAgo is "2026-11-24T01:02:03Z (60s ago)"; "" for none.
func timeAgo(t *metav1.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	return timestamp(t.Time) + " (" + age(t.Time, now) + " ago)"
}

func trustSection(ro *api.CertRollout) stepSection {
	s := stepSection{title: "Trusted by", headers: []string{"WORKLOAD", "STATE", "MESSAGE"}}
	for _, tw := range ro.Status.TrustedBy {
		s.rows = append(s.rows, []string{workloadKey(tw.Kind, tw.Name) + namespaceSuffix(tw.Namespace, ro.Namespace), string(tw.State), tw.Message})
	}
	return s
}

func leafSection(ro *api.CertRollout, now time.Time) stepSection {
	s := stepSection{title: "Certificates", headers: []string{"CERTIFICATE", "STATE", "REVISION", "STARTED", "FINISHED", "DURATION", "MESSAGE"}}
	for _, c := range ro.Status.Certificates {
		d := ""
		if c.State != api.LeafPending {
			d = rolloutElapsed(c.StartedAt, c.FinishedAt, now)
		}
		s.rows = append(s.rows, []string{c.Name + namespaceSuffix(c.Namespace, ro.Namespace), string(c.State), revisionChange(c.PreviousRevision, c.Revision),
			metaTimestamp(c.StartedAt), metaTimestamp(c.FinishedAt), d, c.Message})
	}
	return s
}

func quiescedSection(ro *api.CertRollout) stepSection {
	s := stepSection{title: "Quiesced", headers: []string{"WORKLOAD", "REPLICAS", "STATE", "SCALED DOWN", "DRAINED", "RESTORED", "MESSAGE"}}
	for _, q := range ro.Status.Quiesced {
		s.rows = append(s.rows, []string{workloadKey(q.Kind, q.Name), replicaCount(q.OriginalReplicas), string(q.State),
			metaTimestamp(q.ScaledDownAt), metaTimestamp(q.DrainedAt), metaTimestamp(q.RestoredAt), q.Message})
	}
	return s
}

func targetSection(ro *api.CertRollout, now time.Time) stepSection {
	s := stepSection{title: "Targets", headers: []string{"WORKLOAD", "STATE", "STARTED", "FINISHED", "DURATION", "MESSAGE"}}
	steps := slices.ContainsFunc(ro.Status.Targets, func(t api.TargetStatus) bool { return t.Step > 0 })
	if steps {
		s.headers = append([]string{"STEP"}, s.headers...)
	}
	verified := slices.ContainsFunc(ro.Status.Targets, func(t api.TargetStatus) bool { return t.Verification != "" })
	if verified {
		s.headers = slices.Insert(s.headers, len(s.headers)-1, "VERIFIED")
	}
	for _, tg := range ro.Status.Targets {
		d := ""
		if tg.State != api.TargetPending && tg.State != api.TargetSkipped && tg.State != api.TargetUpToDate {
			d = rolloutElapsed(tg.StartedAt, tg.FinishedAt, now)
		}
		row := []string{workloadKey(tg.Kind, tg.Name), string(tg.State), metaTimestamp(tg.StartedAt), metaTimestamp(tg.FinishedAt), d, tg.Message}
		if verified {
			row = slices.Insert(row, len(row)-1, verificationCell(tg.Verification))
		}
		if steps {
			row = append([]string{strconv.Itoa(int(tg.Step))}, row...)
		}
		s.rows = append(s.rows, row)
	}
	return s
}

// verificationCell is a target's verification in a word: yes, NO, or - when it was not probed.
func verificationCell(v string) string {
	switch v {
	case api.TargetVerified:
		return "yes"
	case api.TargetNotVerified:
		return "NO"
	}
	return "-"
}

func conditionSection(ro *api.CertRollout) stepSection {
	return conditionsSection(ro.Status.Conditions)
}

// conditionsSection is the Conditions table of any of our objects.
func conditionsSection(conds []metav1.Condition) stepSection {
	s := stepSection{title: "Conditions", headers: []string{"TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"}}
	for _, c := range conds {
		s.rows = append(s.rows, []string{c.Type, string(c.Status), c.Reason, timestamp(c.LastTransitionTime.Time), c.Message})
	}
	return s
}
