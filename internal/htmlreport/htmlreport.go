// Package htmlreport renders a report as one self-contained HTML page: inline CSS, an inline SVG
// expiry timeline, no scripts and no external assets, so the file can be mailed, attached to a ticket or
// opened offline. It knows pages, tables and timelines, not certificates: internal/cli maps its reports
// (CheckReport, PlanReport) onto a Page, and every string reaches the page through html/template.
package htmlreport

import (
	"embed"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed templates/page.html.tmpl templates/style.css
var files embed.FS

var page = template.Must(template.New("page.html.tmpl").ParseFS(files, "templates/page.html.tmpl"))

// style is the page's stylesheet, inlined into <style>.
var style = func() template.CSS {
	b, err := files.ReadFile("templates/style.css")
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return template.CSS(b) //nolint:gosec // our own embedded stylesheet, not input
}()

// Page is one report.
type Page struct {
	// Title is the page's heading ("Certificate check"); Kind names the report in <title>.
	Title string
	// Meta are the facts under the title: context, server, namespace, thresholds.
	Meta []Fact
	// GeneratedAt is the time every residual on the page was computed against.
	GeneratedAt time.Time
	// Status is the report's verdict (OK, Warning, Critical), with Reason; empty when it has none.
	Status, Reason string
	// Counts is how many rows of the timeline (certificates, workloads) fall in each colour class; the
	// renderer fills it from Timeline when nil.
	Counts []Count
	// CountNoun says what Counts count ("certificates", "workloads").
	CountNoun string
	// Timeline is drawn first; nil for none.
	Timeline *Timeline
	// Sections are the tables, in order.
	Sections []Section
	// Footer is a line at the bottom (the program and its version).
	Footer string
}

// Fact is a name and a value shown in the header.
type Fact struct {
	Name, Value string
}

// Count is how many things fall in one class.
type Count struct {
	Class Class
	N     int
}

// Section is a heading, an optional note and a table.
type Section struct {
	// ID is the HTML id, for links; derived from Title when empty.
	ID    string
	Title string
	Note  string
	Table Table
	// Empty is said instead of an empty table.
	Empty string
}

// Table is a header row and rows.
type Table struct {
	Headers []string
	Rows    []Row
}

// Row is one table row; Class colours its first cell's edge (a Class, or "stale").
type Row struct {
	Class string
	Cells []Cell
}

// Cell is one or more lines of spans.
type Cell struct {
	Class string
	Lines []Line
}

// Line is spans shown on one line.
type Line []Span

// Span is a piece of text with an optional CSS class and tooltip.
type Span struct {
	Text, Class, Title string
}

// Text is a cell of one plain line; "" is an empty cell.
func Text(s string) Cell {
	if s == "" {
		return Cell{}
	}
	return Cell{Lines: []Line{{{Text: s}}}}
}

// Muted is a cell of one line in grey.
func Muted(s string) Cell {
	return Cell{Lines: []Line{{{Text: s, Class: "muted"}}}}
}

// Add appends a line of spans to c.
func (c Cell) Add(spans ...Span) Cell {
	c.Lines = append(c.Lines, Line(spans))
	return c
}

// Render writes p as an HTML page.
func Render(w io.Writer, p Page) error {
	v := view{Page: p, CSS: style, Legend: Legend()}
	if v.Counts == nil && p.Timeline != nil {
		v.Counts = p.Timeline.Counts()
	}
	if p.Timeline != nil && len(p.Timeline.Rows) > 0 {
		v.SVG = p.Timeline.layout()
	}
	for i := range v.Sections {
		if v.Sections[i].ID == "" {
			v.Sections[i].ID = slug(v.Sections[i].Title)
		}
	}
	return page.Execute(w, v)
}

// view is what the template reads.
type view struct {
	Page
	CSS    template.CSS
	Legend []LegendEntry
	SVG    *svgTimeline
}

// slug makes an HTML id of a title: lower-case letters and digits, dashes between words.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
