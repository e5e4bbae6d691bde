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
	return newRolloutTableView(ros, now, allNamespaces, wide).render(w)
}

// render prints the table the way kubectl does.
func (v rolloutTableView) render(w io.Writer) error {
	t := newTable(w, v.headers...)
	for _, r := range v.rows {
		t.row(r...)
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
	return newRolloutDescription(ro, now).render(w)
}

// render prints the fields, then each section that has rows.
func (d rolloutDescription) render(w io.Writer) error {
	if err := d.fields.render(w); err != nil {
		return err
	}
	for _, s := range d.sections {
		if err := s.render(w); err != nil {
			return err
		}
	}
	return nil
}

// render prints "Name:        value" lines, aligned, leaving out empty values.
func (f describeFields) render(w io.Writer) error {
	for _, field := range f {
		if field.value == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "%-12s %s\n", field.name+":", field.value); err != nil {
			return err
		}
	}
	return nil
}

// render prints the title and, indented under it, the table; nothing for a section without rows.
func (s stepSection) render(w io.Writer) error {
	if len(s.rows) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, s.title+":"); err != nil {
		return err
	}
	t := newTable(indent(w), s.headers...)
	for _, r := range s.rows {
		t.row(r...)
	}
	return t.flush()
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
