package cli

import (
	"sort"
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
		step := TargetStep{Kind: t.Kind, Name: t.Name, State: string(t.State), StartedAt: timePtr(t.StartedAt), FinishedAt: timePtr(t.FinishedAt), Message: t.Message}
		if t.State != api.TargetPending && t.State != api.TargetSkipped {
			step.DurationSeconds = seconds(t.StartedAt, t.FinishedAt, now)
		}
		out.Targets = append(out.Targets, step)
	}
	for _, c := range st.Conditions {
		out.Conditions = append(out.Conditions, RolloutCondition{
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
