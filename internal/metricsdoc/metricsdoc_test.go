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

func TestExportedReadsTheTableAndPrometheusOwnSeries(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, Document), []byte("| `certrollout_doc` | counter | | |\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, doc, err := Exported(root)
	if err != nil || doc != Document || !got["certrollout_doc"] || !got["up"] || got["certrollout_other"] {
		t.Fatalf("Exported = %v from %s, %v; want the table's series and up", got, doc, err)
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
