package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// printRolloutTable prints NAME POLICY TRIGGER PHASE PROGRESS STARTED DURATION AGE (NAMESPACE first
// under -A; wide adds TARGETS and MESSAGE).
func printRolloutTable(w io.Writer, ros []api.CertRollout, now time.Time, allNamespaces, wide bool) error {
	headers := []string{"NAME", "POLICY", "TRIGGER", "PHASE", "PROGRESS", "STARTED", "DURATION", "AGE"}
	if allNamespaces {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	if wide {
		headers = append(headers, "TARGETS", "MESSAGE")
	}
	t := newTable(w, headers...)
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
		t.row(row...)
	}
	return t.flush()
}

// printDetails prints named rollouts: as documents, or step by step.
func (o *StatusOptions) printDetails(w io.Writer, ros []api.CertRollout) error {
	now := o.Now()
	if o.structured() {
		if len(ros) == 1 {
			return o.printDocument(w, rolloutStatus(&ros[0], now, true))
		}
		doc := RolloutStatusList{APIVersion: ReportAPIVersion, Kind: "RolloutStatusList", Items: []RolloutStatus{}}
		for i := range ros {
			doc.Items = append(doc.Items, rolloutStatus(&ros[i], now, false))
		}
		return o.printDocument(w, doc)
	}
	for i := range ros {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := describeRollout(w, &ros[i], now); err != nil {
			return err
		}
	}
	return nil
}

// describeRollout prints one rollout the way kubectl describe reads: fields, then the steps as tables.
func describeRollout(w io.Writer, ro *api.CertRollout, now time.Time) error {
	st := ro.Status
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(w, "%-12s %s\n", name+":", value)
		}
	}
	at := func(t *metav1.Time) string {
		if t == nil {
			return ""
		}
		return timestamp(t.Time) + " (" + age(t.Time, now) + " ago)"
	}
	field("Name", ro.Name)
	field("Namespace", ro.Namespace)
	field("Policy", orElse(ro.Spec.Policy, "<none>"))
	trigger := string(ro.Spec.Trigger.Type)
	if ro.Spec.Trigger.Message != "" {
		trigger += ": " + ro.Spec.Trigger.Message
	}
	field("Trigger", trigger)
	if c := ro.Spec.Cascade; c != nil {
		field("Cascade", fmt.Sprintf("%s %s, CA certificate %s, at most %d leaf Certificate(s) re-issued at once", c.IssuerRef.Kind, c.IssuerRef.Name, c.CAFingerprint, maxConcurrentOf(c)))
	} else {
		field("Targets", orElse(refsString(ro.Spec.Targets), "all the policy governs"))
	}
	field("Phase", orElse(string(st.Phase), "<none> (no controller has picked it up)"))
	field("Progress", st.Progress)
	field("Message", st.Message)
	field("Created", at(&ro.CreationTimestamp))
	if st.NextWindow != nil {
		field("Next window", timestamp(st.NextWindow.Time)+" (in "+residual(st.NextWindow.Time, now)+")")
	}
	field("Started", at(st.StartTime))
	field("Completed", at(st.CompletionTime))
	if st.StartTime != nil {
		d := rolloutElapsed(st.StartTime, st.CompletionTime, now)
		if st.CompletionTime == nil {
			d += " so far"
		}
		field("Duration", d)
	}
	if len(st.TrustedBy) > 0 {
		fmt.Fprintln(w, "Trusted by:")
		t := newTable(indent(w), "WORKLOAD", "STATE", "MESSAGE")
		for _, tw := range st.TrustedBy {
			t.row(workloadKey(tw.Kind, tw.Name)+namespaceSuffix(tw.Namespace, ro.Namespace), string(tw.State), tw.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Certificates) > 0 {
		fmt.Fprintln(w, "Certificates:")
		t := newTable(indent(w), "CERTIFICATE", "STATE", "REVISION", "STARTED", "FINISHED", "DURATION", "MESSAGE")
		for _, c := range st.Certificates {
			d := ""
			if c.State != api.LeafPending {
				d = rolloutElapsed(c.StartedAt, c.FinishedAt, now)
			}
			t.row(c.Name+namespaceSuffix(c.Namespace, ro.Namespace), string(c.State), revisionChange(c.PreviousRevision, c.Revision),
				metaTimestamp(c.StartedAt), metaTimestamp(c.FinishedAt), d, c.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Quiesced) > 0 {
		fmt.Fprintln(w, "Quiesced:")
		t := newTable(indent(w), "WORKLOAD", "REPLICAS", "STATE", "SCALED DOWN", "DRAINED", "RESTORED", "MESSAGE")
		for _, q := range st.Quiesced {
			t.row(workloadKey(q.Kind, q.Name), replicaCount(q.OriginalReplicas), string(q.State),
				metaTimestamp(q.ScaledDownAt), metaTimestamp(q.DrainedAt), metaTimestamp(q.RestoredAt), q.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Targets) > 0 {
		fmt.Fprintln(w, "Targets:")
		t := newTable(indent(w), "WORKLOAD", "STATE", "STARTED", "FINISHED", "DURATION", "MESSAGE")
		for _, tg := range st.Targets {
			d := ""
			if tg.State != api.TargetPending && tg.State != api.TargetSkipped {
				d = rolloutElapsed(tg.StartedAt, tg.FinishedAt, now)
			}
			t.row(workloadKey(tg.Kind, tg.Name), string(tg.State), metaTimestamp(tg.StartedAt), metaTimestamp(tg.FinishedAt), d, tg.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		t := newTable(indent(w), "TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE")
		for _, c := range st.Conditions {
			t.row(c.Type, string(c.Status), c.Reason, timestamp(c.LastTransitionTime.Time), c.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

// namespaceSuffix names the namespace of an object outside the rollout's own (a ClusterIssuer's leaves and
// trusting workloads are anywhere): " -n ns".
func namespaceSuffix(ns, own string) string {
	if ns == "" || ns == own {
		return ""
	}
	return " -n " + ns
}

// revisionChange reads "2 → 3", "2 →" while issuing, or "" before the trigger.
func revisionChange(prev, cur *int32) string {
	switch {
	case prev == nil && cur == nil:
		return ""
	case prev == nil:
		return fmt.Sprintf("→ %d", *cur)
	case cur == nil:
		return fmt.Sprintf("%d →", *prev)
	}
	return fmt.Sprintf("%d → %d", *prev, *cur)
}

func metaTimestamp(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return timestamp(t.Time)
}

// indentWriter prefixes each line with two spaces (tables under a heading).
type indentWriter struct {
	w   io.Writer
	bol bool
}

func indent(w io.Writer) io.Writer { return &indentWriter{w: w, bol: true} }

func (i *indentWriter) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, c := range string(p) {
		if i.bol {
			b.WriteString("  ")
		}
		b.WriteRune(c)
		i.bol = c == '\n'
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
