package htmlreport

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Timeline is the expiry timeline: one row per certificate (or workload), a marker at each expiry.
type Timeline struct {
	// Now is marked on the axis; every class is computed against it.
	Now  time.Time
	Rows []TimelineRow
	// Note is said under the timeline (rows left out, what the markers mean).
	Note string
}

// TimelineRow is one certificate or workload.
type TimelineRow struct {
	// Label names it; Detail is a second, smaller line (its consumers).
	Label, Detail string
	// Class is the row's class: the worst of its markers when empty.
	Class Class
	// Markers are its expiries; a bar joins now and the first.
	Markers []Marker
}

// Marker is one expiry on a row.
type Marker struct {
	At time.Time
	// Hollow draws a ring instead of a dot (an expiry the row is not on any more, or not yet).
	Hollow bool
	// Title is the tooltip; Text is written after the row's last marker.
	Title, Text string
}

// Counts is how many rows fall in each class, worst first.
func (t *Timeline) Counts() []Count {
	out := make([]Count, 0, len(Classes))
	for _, c := range Classes {
		n := 0
		for _, r := range t.Rows {
			if t.rowClass(r) == c {
				n++
			}
		}
		out = append(out, Count{Class: c, N: n})
	}
	return out
}

func (t *Timeline) rowClass(r TimelineRow) Class {
	if r.Class != "" {
		return r.Class
	}
	worst := ClassNone
	for _, m := range r.Markers {
		if c := ClassOf(m.At, t.Now); Worse(c, worst) {
			worst = c
		}
	}
	return worst
}

// The geometry of the drawing, in SVG user units (the SVG scales to the page's width).
const (
	svgWidth   = 1200.0
	plotLeft   = 360.0
	plotRight  = 1070.0
	rowsTop    = 48.0
	rowHeight  = 34.0
	labelRunes = 42
	// minTickGap keeps tick labels from overlapping.
	minTickGap = 58.0
)

// tickDays are the candidate ticks, in days from now.
var tickDays = []float64{-3650, -1825, -730, -365, -180, -90, -28, -7, -1, 0, 1, 7, 28, 90, 180, 365, 730, 1825, 3650, 7300, 18250}

// svgTimeline is the timeline laid out: every number the template writes, as a string.
type svgTimeline struct {
	ViewBox, Height   string
	PlotTop, PlotBot  string
	PlotH             string
	NowX              string
	Bands             []svgBand
	Ticks             []svgTick
	Rows              []svgRow
	PlotLeft, AxisEnd string
	Note              string
}

type svgBand struct {
	X, W  string
	Class Class
}

type svgTick struct {
	X, Label, Date string
	Now            bool
}

type svgRow struct {
	Class, BarClass       Class
	Even, HasBar          bool
	Y, H, TextY, DetailY  string
	Label, Detail         string
	RowTitle, DetailTitle string
	BarX, BarW, BarY      string
	MarkerY               string
	Markers               []svgMarker
	TextX, TextY2, Text   string
}

type svgMarker struct {
	X      string
	Class  Class
	Hollow bool
	Title  string
}

// scale maps times to x: days from now on a signed logarithmic axis, so a certificate that expires in
// three days and a CA that expires in ten years both read at a glance.
type scale struct {
	now    time.Time
	lo, hi float64
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

func logDays(d float64) float64 {
	if d < 0 {
		return -math.Log1p(-d)
	}
	return math.Log1p(d)
}

func (s scale) xDays(d float64) float64 {
	return plotLeft + (logDays(d)-s.lo)/(s.hi-s.lo)*(plotRight-plotLeft)
}

func (s scale) x(t time.Time) float64 { return s.xDays(days(t.Sub(s.now))) }

// newScale spans every marker, a little of the past, and at least the 28 days the colours are about.
func (t *Timeline) newScale() scale {
	lo, hi := logDays(-0.5), logDays(days(WarningWithin)+7)
	for _, r := range t.Rows {
		for _, m := range r.Markers {
			f := logDays(days(m.At.Sub(t.Now)))
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
	}
	pad := (hi - lo) * 0.04
	return scale{now: t.Now, lo: lo - pad, hi: hi + pad}
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// layout computes the drawing.
func (t *Timeline) layout() *svgTimeline {
	s := t.newScale()
	bottom := rowsTop + rowHeight*float64(len(t.Rows))
	v := &svgTimeline{
		ViewBox: "0 0 " + num(svgWidth) + " " + num(bottom+8),
		Height:  num(bottom + 8),
		PlotTop: num(rowsTop), PlotBot: num(bottom), PlotH: num(bottom - rowsTop),
		NowX:     num(s.xDays(0)),
		PlotLeft: num(plotLeft), AxisEnd: num(plotRight),
		Note:  t.Note,
		Bands: s.bands(),
		Ticks: s.ticks(),
	}
	for i, r := range t.Rows {
		v.Rows = append(v.Rows, t.layoutRow(s, i, r))
	}
	return v
}

// bands are the class zones behind the rows.
func (s scale) bands() []svgBand {
	edges := []struct {
		from, to float64
		class    Class
	}{
		{math.Inf(-1), 0, ClassExpired},
		{0, days(CriticalWithin), ClassCritical},
		{days(CriticalWithin), days(WarningWithin), ClassWarning},
		{days(WarningWithin), math.Inf(1), ClassOK},
	}
	var out []svgBand
	for _, e := range edges {
		x0, x1 := math.Max(plotLeft, s.xDays(e.from)), math.Min(plotRight, s.xDays(e.to))
		if x1-x0 < 0.5 {
			continue
		}
		out = append(out, svgBand{X: num(x0), W: num(x1 - x0), Class: e.class})
	}
	return out
}

// ticks are the labelled times on the axis that fit without overlapping; now always.
func (s scale) ticks() []svgTick {
	var out []svgTick
	last := math.Inf(-1)
	for _, d := range tickDays {
		x := s.xDays(d)
		if x < plotLeft-0.5 || x > plotRight+0.5 {
			continue
		}
		tk := svgTick{X: num(x), Label: tickLabel(d), Date: s.now.Add(time.Duration(d * 24 * float64(time.Hour))).UTC().Format("2 Jan 2006"), Now: d == 0}
		switch {
		case x-last >= minTickGap:
			out = append(out, tk)
			last = x
		case tk.Now && len(out) > 0:
			out[len(out)-1] = tk // now wins over a neighbour it would overlap
			last = x
		}
	}
	return out
}

func tickLabel(d float64) string {
	if d == 0 {
		return "now"
	}
	a := math.Abs(d)
	var s string
	if a >= 365 {
		s = strconv.Itoa(int(math.Round(a/365))) + "y"
	} else {
		s = strconv.Itoa(int(a)) + "d"
	}
	if d < 0 {
		return s + " ago"
	}
	return "+" + s
}

// layoutRow places one row: its labels, the bar from now to its first marker, the markers, the text.
func (t *Timeline) layoutRow(s scale, i int, r TimelineRow) svgRow {
	y := rowsTop + rowHeight*float64(i)
	mid := y + rowHeight/2
	out := svgRow{
		Class: t.rowClass(r), Even: i%2 == 1,
		Y: num(y), H: num(rowHeight), TextY: num(y + 15), DetailY: num(y + 28),
		Label: truncate(r.Label, labelRunes), Detail: truncate(r.Detail, labelRunes+8),
		RowTitle: r.Label, DetailTitle: r.Detail,
		MarkerY: num(mid), BarY: num(mid - 4), TextY2: num(mid + 4),
	}
	right := math.Inf(-1)
	for j, m := range r.Markers {
		x := s.x(m.At)
		if j == 0 {
			now := s.xDays(0)
			out.HasBar, out.BarClass = true, ClassOf(m.At, t.Now)
			out.BarX, out.BarW = num(math.Min(now, x)), num(math.Max(math.Abs(x-now), 1))
		}
		out.Markers = append(out.Markers, svgMarker{X: num(x), Class: ClassOf(m.At, t.Now), Hollow: m.Hollow, Title: m.Title})
		if x > right {
			right = x
		}
		if m.Text != "" {
			out.Text = m.Text
		}
	}
	// The text goes right of the bar too: an expired row's bar ends at now.
	out.TextX = num(math.Max(right, s.xDays(0)) + 11)
	return out
}

// truncate shortens s to n runes with an ellipsis; the full text is the tooltip.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
