package metricsdoc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTableReadsNamesAndExpandsHistograms(t *testing.T) {
	doc := []byte("intro `certrollout_not_a_row`\n\n| series | type | labels | meaning |\n|---|---|---|---|\n" +
		"| `certrollout_a` | gauge (1) | namespace | a \\| b |\n" +
		"| `certrollout_b_seconds` | histogram | | b |\n" +
		"| `go_goroutines` | gauge | | not ours |\n" +
		"| flag | `--x` | | another table |\n")
	got, err := Table(doc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"certrollout_a", "certrollout_b_seconds_bucket", "certrollout_b_seconds_count", "certrollout_b_seconds_sum"}
	if !slices.Equal(names, want) {
		t.Errorf("Table = %v, want %v", names, want)
	}
	if _, err := Table([]byte("no table here")); err == nil {
		t.Error("a document without a table was read as an empty list")
	}
}

func TestSelectedNamesEveryMetricAQueryReads(t *testing.T) {
	for expr, want := range map[string][]string{
		`certrollout_a > 0 and on(namespace) certrollout_b`:                                  {"certrollout_a", "certrollout_b"},
		`histogram_quantile(0.5, sum by (le) (rate(certrollout_c_bucket[5m])))`:              {"certrollout_c_bucket"},
		`{__name__="certrollout_d", x="y"} - time()`:                                         {"certrollout_d"},
		`absent(certrollout_a) or vector(0) or certrollout_a offset 1h unless certrollout_a`: {"certrollout_a"},
	} {
		got, err := Selected(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Selected(%q) = %v, %v; want %v", expr, got, err, want)
		}
	}
	for _, expr := range []string{`{__name__=~"certrollout_.*"}`, `sum(`, `{job="x"}`} {
		if got, err := Selected(expr); err == nil {
			t.Errorf("Selected(%q) = %v without an error", expr, got)
		}
	}
}

func TestExportedPrefersTheCompleteTable(t *testing.T) {
	root := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(Documents[0], "| `certrollout_old` | gauge | | |\n")
	write(Documents[1], "| `certrollout_build_info` | gauge | | |\n| `certrollout_new` | gauge | | |\n")
	got, doc, err := Exported(root)
	if err != nil || doc != Documents[1] || !got["certrollout_new"] || got["certrollout_old"] || !got["up"] {
		t.Fatalf("Exported = %v from %s, %v; want the design note's series and up", got, doc, err)
	}
	write(Documents[0], "| `certrollout_build_info` | gauge | | |\n| `certrollout_doc` | counter | | |\n")
	if got, doc, err := Exported(root); err != nil || doc != Documents[0] || !got["certrollout_doc"] {
		t.Errorf("Exported = %v from %s, %v; want docs/metrics.md's once it is complete", got, doc, err)
	}
}

func TestTheRepositorysTableListsTheSeriesTheAlertsNeed(t *testing.T) {
	got, doc, err := Exported("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"certrollout_build_info", "certrollout_workload_stale_pods", "certrollout_restart_to_ready_seconds_bucket"} {
		if !got[n] {
			t.Errorf("%s does not list %s", doc, n)
		}
	}
}
