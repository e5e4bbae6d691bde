package controller

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every series the controller exports is in docs/metrics.md's table, and every series the table lists is
// exported: the alert rules and the dashboard are checked against that table.
func TestDocsMetricsListsExactlyTheExportedSeries(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(certrollout_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	var exported []string
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			exported = append(exported, fqName.FindStringSubmatch(d.String())[1])
		}
	}
	slices.Sort(documented)
	slices.Sort(exported)
	if !slices.Equal(documented, exported) {
		t.Errorf("docs/metrics.md lists\n  %v\nthe controller exports\n  %v", documented, exported)
	}
}
