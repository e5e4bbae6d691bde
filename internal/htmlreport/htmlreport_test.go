package htmlreport_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/certrollout/certrollout/internal/htmlreport"
	"github.com/certrollout/certrollout/internal/htmlreport/htmltest"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const hostile = `<script>alert(1)</script>`

func day(n float64) time.Time { return now.Add(time.Duration(n * 24 * float64(time.Hour))) }

// samplePage has one timeline row per class (in a scrambled order) and a table, with a hostile name in
// the places user data reaches.
func samplePage() htmlreport.Page {
	row := func(label string, at time.Time) htmlreport.TimelineRow {
		return htmlreport.TimelineRow{Label: label, Detail: "used by deployment/" + label, Markers: []htmlreport.Marker{{At: at, Text: label, Title: label}}}
	}
	return htmlreport.Page{
		Title: "Certificate check", GeneratedAt: now, Status: "Critical", Reason: "CRITICAL: " + hostile,
		Meta: []htmlreport.Fact{{Name: "Context", Value: hostile}},
		Timeline: &htmlreport.Timeline{Now: now, Rows: []htmlreport.TimelineRow{
			row("later", day(200)), row("expired", day(-2)), row("in-20-days", day(20)), row("in-3-days", day(3)), row(hostile, day(400)),
		}},
		Sections: []htmlreport.Section{{Title: "Cluster certificates", Table: htmlreport.Table{
			Headers: []string{"Name", "Consumers"},
			Rows: []htmlreport.Row{{Class: "expired", Cells: []htmlreport.Cell{
				htmlreport.Text("secret/" + hostile),
				htmlreport.Cell{}.Add(htmlreport.Span{Text: "1 stale pod", Class: "stale", Title: hostile}),
			}}},
		}}},
	}
}

func render(t *testing.T, p htmlreport.Page) string {
	t.Helper()
	var b bytes.Buffer
	if err := htmlreport.Render(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestThePageParsesAndLoadsNothing(t *testing.T) {
	page := render(t, samplePage())
	doc := htmltest.Parse(t, page)
	if refs := htmltest.ExternalRefs(doc); len(refs) > 0 {
		t.Errorf("a self-contained page references nothing, got %v", refs)
	}
	for _, s := range []string{"http://", "https://"} {
		if strings.Contains(page, s) {
			t.Errorf("the page contains %q", s)
		}
	}
	if len(htmltest.All(doc, "style")) != 1 || !strings.Contains(htmltest.Text(htmltest.All(doc, "style")[0]), ".marker.expired") {
		t.Error("want one inline <style> with the stylesheet")
	}
	if len(htmltest.All(doc, "svg", "timeline")) != 1 || len(htmltest.All(doc, "table")) != 1 {
		t.Error("want the timeline and one table")
	}
}

func TestHostileNamesAreText(t *testing.T) {
	page := render(t, samplePage())
	if strings.Contains(page, hostile) {
		t.Fatalf("%s reached the page unescaped", hostile)
	}
	doc := htmltest.Parse(t, page)
	if s := htmltest.All(doc, "script"); len(s) > 0 {
		t.Fatalf("the page has %d <script> elements", len(s))
	}
	// The name is still shown, as text, wherever it was put.
	for what, n := range map[string]int{
		"table cell":      countText(htmltest.All(doc, "td"), "secret/"+hostile),
		"timeline label":  countText(htmltest.All(doc, "text", "label"), hostile),
		"header fact":     countText(htmltest.All(doc, "dd"), hostile),
		"status tooltip":  countAttr(htmltest.All(doc, "span", "status"), "title", "CRITICAL: "+hostile),
		"span tooltip":    countAttr(htmltest.All(doc, "span", "stale"), "title", hostile),
		"reason sentence": countText(htmltest.All(doc, "p", "reason"), "CRITICAL: "+hostile),
	} {
		if n != 1 {
			t.Errorf("%s: want the hostile name once as text, found it %d times", what, n)
		}
	}
}

func countText(nodes []*html.Node, want string) int {
	n := 0
	for _, e := range nodes {
		if htmltest.Text(e) == want {
			n++
		}
	}
	return n
}

func countAttr(nodes []*html.Node, key, want string) int {
	n := 0
	for _, e := range nodes {
		if htmltest.Attr(e, key) == want {
			n++
		}
	}
	return n
}

func TestEachRowIsColouredByTimeLeft(t *testing.T) {
	doc := htmltest.Parse(t, render(t, samplePage()))
	rows := htmltest.All(doc, "g", "tl-row")
	want := map[string]htmlreport.Class{
		"later": htmlreport.ClassOK, "expired": htmlreport.ClassExpired, "in-20-days": htmlreport.ClassWarning,
		"in-3-days": htmlreport.ClassCritical, hostile: htmlreport.ClassOK,
	}
	if len(rows) != len(want) {
		t.Fatalf("want %d timeline rows, got %d", len(want), len(rows))
	}
	for _, r := range rows {
		label := htmltest.Text(htmltest.All(r, "text", "label")[0])
		class, ok := want[label]
		if !ok {
			t.Errorf("unexpected row %q", label)
			continue
		}
		if !htmltest.HasClass(r, string(class)) {
			t.Errorf("row %q: want class %s, got %q", label, class, htmltest.Attr(r, "class"))
		}
		if m := htmltest.All(r, "circle", "marker", string(class)); len(m) != 1 {
			t.Errorf("row %q: want one %s marker, got %d", label, class, len(m))
		}
	}
	counts := map[string]string{}
	for _, li := range htmltest.All(doc, "li", "count") {
		counts[htmltest.Attr(li, "class")] = htmltest.Text(htmltest.All(li, "strong")[0])
	}
	for class, n := range map[string]string{"count expired": "1", "count critical": "1", "count warning": "1", "count ok": "2"} {
		if counts[class] != n {
			t.Errorf("header count %q: want %s, got %q", class, n, counts[class])
		}
	}
}

func TestTheAxisMarksNowAndRunsForwardWithoutOverlappingTicks(t *testing.T) {
	doc := htmltest.Parse(t, render(t, samplePage()))
	ticks := htmltest.All(doc, "g", "tick")
	var nowTicks int
	last := -1.0
	for _, tk := range ticks {
		x, err := strconv.ParseFloat(htmltest.Attr(htmltest.All(tk, "line")[0], "x1"), 64)
		if err != nil {
			t.Fatal(err)
		}
		if x-last < 50 {
			t.Errorf("tick %q at %.1f is %.1f from the previous one: labels overlap", htmltest.Text(tk), x, x-last)
		}
		last = x
		if htmltest.HasClass(tk, "now") {
			nowTicks++
			if label := htmltest.Text(htmltest.All(tk, "text", "tick-label")[0]); label != "now" {
				t.Errorf("the now tick reads %q", label)
			}
		}
	}
	if nowTicks != 1 || len(ticks) < 4 {
		t.Errorf("want a now tick among several, got %d now of %d", nowTicks, len(ticks))
	}
	// Later expiries sit further right.
	x := map[string]float64{}
	for _, r := range htmltest.All(doc, "g", "tl-row") {
		label := htmltest.Text(htmltest.All(r, "text", "label")[0])
		x[label], _ = strconv.ParseFloat(htmltest.Attr(htmltest.All(r, "circle", "marker")[0], "cx"), 64)
	}
	order := []string{"expired", "in-3-days", "in-20-days", "later", hostile}
	for i := 1; i < len(order); i++ {
		if x[order[i]] <= x[order[i-1]] {
			t.Errorf("%s (x=%.1f) is not right of %s (x=%.1f)", order[i], x[order[i]], order[i-1], x[order[i-1]])
		}
	}
}

func TestClassOf(t *testing.T) {
	for name, tc := range map[string]struct {
		at   time.Time
		want htmlreport.Class
	}{
		"expired a second ago":                 {now.Add(-time.Second), htmlreport.ClassExpired},
		"expiring this very second is expired": {now, htmlreport.ClassExpired},
		"a second left is under 7 days":        {now.Add(time.Second), htmlreport.ClassCritical},
		"6 days 23 hours is under 7 days":      {now.Add(7*24*time.Hour - time.Hour), htmlreport.ClassCritical},
		"7 days is under 28 days":              {day(7), htmlreport.ClassWarning},
		"27 days is under 28 days":             {day(27), htmlreport.ClassWarning},
		"28 days is later":                     {day(28), htmlreport.ClassOK},
		"10 years is later":                    {day(3650), htmlreport.ClassOK},
		"no expiry is none":                    {time.Time{}, htmlreport.ClassNone},
	} {
		if got := htmlreport.ClassOf(tc.at, now); got != tc.want {
			t.Errorf("%s: got %s, want %s", name, got, tc.want)
		}
	}
}

func TestAnEmptyTimelineAndEmptySectionsStillRender(t *testing.T) {
	doc := htmltest.Parse(t, render(t, htmlreport.Page{Title: "Restart plan", GeneratedAt: now, Timeline: &htmlreport.Timeline{Now: now},
		Sections: []htmlreport.Section{{Title: "Workloads", Empty: "No workloads using certificates found."}}}))
	if svg := htmltest.All(doc, "svg"); len(svg) != 0 {
		t.Errorf("nothing to draw: want no timeline, got %d", len(svg))
	}
	if p := htmltest.All(doc, "p", "empty"); len(p) != 1 || htmltest.Text(p[0]) != "No workloads using certificates found." {
		t.Error("an empty section says so")
	}
}
