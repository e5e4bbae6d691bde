// Package schedule answers when a RolloutPolicy's maintenance windows are open. It is pure: every
// function takes the time to ask about, so windows, time zones and daylight-saving changes are tested
// with fixed clocks.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads the standard 5-field cron format (minute hour day-of-month month day-of-week) and the
// descriptors (@daily, @weekly...).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parse is parser.Parse; a variable so a test can stand in a parser that panics.
var parse = parser.Parse

// Window is a recurring maintenance window: it opens at each activation of Schedule, in Location, and
// stays open for Duration.
type Window struct {
	Schedule cron.Schedule
	Duration time.Duration
	Location *time.Location
	// Spec is the cron expression as written, for messages.
	Spec string
}

// Parse validates one window. The errors say what is wrong in the words of the API fields. It never
// panics, whatever the input: robfig/cron does on some malformed time-zone prefixes, and a schedule is
// input from anyone who may write a RolloutPolicy.
func Parse(spec string, duration time.Duration, timeZone string) (w Window, err error) {
	defer func() {
		if p := recover(); p != nil {
			w, err = Window{}, fmt.Errorf("schedule %q cannot be parsed: %v", spec, p)
		}
	}()
	if zonePrefix(spec) {
		return Window{}, fmt.Errorf("schedule %q names a time zone: put it in timeZone and keep schedule to the 5 cron fields", spec)
	}
	loc := time.UTC
	if timeZone != "" {
		l, err := time.LoadLocation(timeZone)
		if err != nil {
			return Window{}, fmt.Errorf("timeZone %q is not an IANA time zone (for example Europe/Berlin): %w", timeZone, err)
		}
		loc = l
	}
	s, err := parse(spec)
	if err != nil {
		return Window{}, fmt.Errorf("schedule %q is not a 5-field cron expression (minute hour day-of-month month day-of-week): %w", spec, err)
	}
	if duration <= 0 {
		return Window{}, errors.New("duration must be positive")
	}
	if !opensAgain(s, loc) {
		return Window{}, fmt.Errorf("schedule %q never opens", spec)
	}
	return Window{Schedule: s, Duration: duration, Location: loc, Spec: spec}, nil
}

// zonePrefix reports whether spec starts with robfig/cron's TZ= or CRON_TZ= prefix. Kubernetes refuses
// it in a CronJob's schedule for the same reason: the zone has its own field, and the prefix is where the
// parser panics.
func zonePrefix(spec string) bool {
	s := strings.TrimSpace(spec)
	return strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")
}

// opensAgain rejects schedules that name an impossible date (30 February): robfig/cron then returns the
// zero time.
func opensAgain(s cron.Schedule, loc *time.Location) bool {
	return !s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero()
}

// openAt returns the opening of w that contains now, if w is open at now.
func (w Window) openAt(now time.Time) (opened time.Time, ok bool) {
	// The first opening after now-Duration is the only candidate: an earlier one has closed, a later one
	// has not begun. Windows are [opened, opened+Duration).
	o := w.Schedule.Next(now.In(w.Location).Add(-w.Duration).Add(-time.Nanosecond))
	if o.IsZero() || o.After(now) || !now.Before(o.Add(w.Duration)) {
		return time.Time{}, false
	}
	// Openings can overlap (every 5 minutes, open for an hour): the latest one up to now closes last.
	for range maxOverlap {
		n := w.Schedule.Next(o)
		if n.IsZero() || n.After(now) {
			break
		}
		o = n
	}
	return o, true
}

// maxOverlap bounds the walk over overlapping openings (a week-long window opening every minute).
const maxOverlap = 20000

// State is what the windows say at one moment.
type State struct {
	// Open is true when some window is open (or there are no windows).
	Open bool
	// ClosesAt is when the open window that stays open longest closes; zero without windows.
	ClosesAt time.Time
	// NextOpen is when the next window opens, when none is open now; zero without windows.
	NextOpen time.Time
}

// At evaluates windows at now. No windows means always open.
func At(windows []Window, now time.Time) State {
	if len(windows) == 0 {
		return State{Open: true}
	}
	var st State
	for _, w := range windows {
		if o, ok := w.openAt(now); ok {
			st.Open = true
			if c := o.Add(w.Duration); c.After(st.ClosesAt) {
				st.ClosesAt = c
			}
		}
	}
	if st.Open {
		return st
	}
	for _, w := range windows {
		if n := w.Schedule.Next(now.In(w.Location)); !n.IsZero() && (st.NextOpen.IsZero() || n.Before(st.NextOpen)) {
			st.NextOpen = n
		}
	}
	return st
}
