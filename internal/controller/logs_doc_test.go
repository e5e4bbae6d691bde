package controller

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/certrollout/certrollout/internal/logs"
)

// documentedLogKeys are the keys docs/logging.md's "The JSON format" describes: the first column of its
// tables, and the keys its prose names for reconcile lines and the start-up line (not the example values
// in parentheses).
func documentedLogKeys(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../docs/logging.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start, end := strings.Index(doc, "## The JSON format"), strings.Index(doc, "## Secret data")
	if start < 0 || end < start {
		t.Fatal("docs/logging.md has no section \"The JSON format\" before \"Secret data\"")
	}
	key := regexp.MustCompile("`([A-Za-z]+)`")
	parens := regexp.MustCompile(`\([^)]*\)`)
	keys := map[string]bool{}
	for _, para := range strings.Split(doc[start:end], "\n\n") {
		switch {
		case strings.HasPrefix(para, "| "):
			for _, row := range strings.Split(para, "\n") {
				if cells := strings.Split(row, "|"); len(cells) > 2 {
					for _, m := range key.FindAllStringSubmatch(cells[1], -1) {
						keys[m[1]] = true
					}
				}
			}
		case strings.HasPrefix(para, "Lines from a reconcile"), strings.HasPrefix(para, "The start-up line"):
			for _, m := range key.FindAllStringSubmatch(parens.ReplaceAllString(para, ""), -1) {
				keys[m[1]] = true
			}
		}
	}
	return keys
}

// checkDocumentedKeys fails the test for a key docs/logging.md does not describe on a line of a
// reconcile or of certrollout's own code (client-go's lines carry client-go's keys). A reconcile line
// names its object under its kind (`"Deployment": {...}`): that key is its controllerKind.
func checkDocumentedKeys(t *testing.T, lines []map[string]any) {
	t.Helper()
	documented := documentedLogKeys(t)
	if len(documented) < 30 {
		t.Fatalf("read %d keys from docs/logging.md: the test reads too little to prove anything", len(documented))
	}
	ours, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, l := range lines {
		caller, _ := l[logs.KeyCaller].(string)
		file, _, _ := strings.Cut(strings.TrimPrefix(caller, "controller/"), ":")
		_, reconcile := l["reconcileID"]
		if !reconcile && (!strings.HasPrefix(caller, "controller/") || !slices.Contains(ours, file)) {
			continue
		}
		checked++
		for k := range l {
			if !documented[k] && k != l["controllerKind"] {
				t.Errorf("key %q is not in docs/logging.md's tables: %v", k, l)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked the keys of %d lines only", checked)
	}
}

// decisions sums certrollout_decisions_total over its series.
func decisions(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == "certrollout_decisions_total" {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// checkOneLinePerDecision fails the test unless the workload decisions since before (a sum of
// certrollout_decisions_total, read while no controller ran) were each logged once as "Decided": as
// many lines as decisions, never two in one reconcile, one in every workload reconcile that restarted. The
// controller must be stopped.
func checkOneLinePerDecision(t *testing.T, lines []map[string]any, before float64) {
	t.Helper()
	decided, restarted := map[any]int{}, map[any]bool{}
	n := 0
	for _, l := range lines {
		switch l[logs.KeyMessage] {
		case "Decided":
			n++
			decided[l["reconcileID"]]++
		case "Restarted Deployment":
			if l["controller"] == "deployment" { // not a CertRollout's restart
				restarted[l["reconcileID"]] = true
			}
		}
	}
	if made := decisions(t) - before; float64(n) != made || n == 0 {
		t.Errorf("%d Decided lines for %g decisions", n, made)
	}
	for id, c := range decided {
		if c != 1 {
			t.Errorf("reconcile %v logged %d Decided lines", id, c)
		}
	}
	for id := range restarted {
		if decided[id] != 1 {
			t.Errorf("reconcile %v restarted without a Decided line", id)
		}
	}
	if len(restarted) == 0 {
		t.Errorf("no restart logged among %d lines", len(lines))
	}
}
