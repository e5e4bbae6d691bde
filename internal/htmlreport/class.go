package htmlreport

import "time"

// Class is the colour class of an expiry, by the time left: the one scale every page uses, whatever
// --warn and --critical say (those decide exit codes; the colours must mean the same in every report).
type Class string

// The colour classes, worst first. Their names are the CSS classes of rows, markers and chips.
const (
	ClassExpired  Class = "expired"
	ClassCritical Class = "critical" // under 7 days
	ClassWarning  Class = "warning"  // under 28 days
	ClassOK       Class = "ok"       // 28 days or more
	// ClassNone is for rows without an expiry (a certificate not issued yet).
	ClassNone Class = "none"
)

// The bounds of the classes.
const (
	CriticalWithin = 7 * 24 * time.Hour
	WarningWithin  = 28 * 24 * time.Hour
)

// Classes are the colour classes with an expiry, worst first.
var Classes = []Class{ClassExpired, ClassCritical, ClassWarning, ClassOK}

// ClassOf is the class of a certificate that expires at notAfter, seen at now.
func ClassOf(notAfter, now time.Time) Class {
	if notAfter.IsZero() {
		return ClassNone
	}
	switch left := notAfter.Sub(now); {
	case left <= 0:
		return ClassExpired
	case left < CriticalWithin:
		return ClassCritical
	case left < WarningWithin:
		return ClassWarning
	default:
		return ClassOK
	}
}

// Worse reports whether a is worse than b (expired is the worst, none the least bad).
func Worse(a, b Class) bool { return rank(a) < rank(b) }

func rank(c Class) int {
	for i, k := range Classes {
		if k == c {
			return i
		}
	}
	return len(Classes)
}

// Label is how the legend and the counts name a class.
func (c Class) Label() string {
	switch c {
	case ClassExpired:
		return "Expired"
	case ClassCritical:
		return "Under 7 days"
	case ClassWarning:
		return "Under 28 days"
	case ClassOK:
		return "28 days or more"
	case ClassNone:
		return "No certificate"
	}
	return string(c)
}

// LegendEntry is one class with its label.
type LegendEntry struct {
	Class Class
	Label string
}

// Legend lists the classes with an expiry, worst first.
func Legend() []LegendEntry {
	out := make([]LegendEntry, 0, len(Classes))
	for _, c := range Classes {
		out = append(out, LegendEntry{Class: c, Label: c.Label()})
	}
	return out
}
