package schedule

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func must(t *testing.T, spec string, d time.Duration, tz string) Window {
	t.Helper()
	w, err := Parse(spec, d, tz)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func at(t *testing.T, tz, value string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", value, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWindows(t *testing.T) {
	utc := func(v string) time.Time { return at(t, "UTC", v) }
	berlin := func(v string) time.Time { return at(t, "Europe/Berlin", v) }
	nightly := must(t, "0 2 * * *", time.Hour, "")
	for name, tc := range map[string]struct {
		windows  []Window
		now      time.Time
		open     bool
		closesAt time.Time
		nextOpen time.Time
	}{
		"is always open without windows": {
			now: utc("2026-11-23 12:00"), open: true,
		},
		"is open inside a window and says when it closes": {
			windows: []Window{nightly}, now: utc("2026-11-23 02:30"), open: true, closesAt: utc("2026-11-23 03:00"),
		},
		"opens exactly at the schedule": {
			windows: []Window{nightly}, now: utc("2026-11-23 02:00"), open: true, closesAt: utc("2026-11-23 03:00"),
		},
		"is closed at the end of the window and waits for tomorrow's": {
			windows: []Window{nightly}, now: utc("2026-11-23 03:00"), nextOpen: utc("2026-11-24 02:00"),
		},
		"waits for a window later the same day": {
			windows: []Window{nightly}, now: utc("2026-11-23 01:59"), nextOpen: utc("2026-11-23 02:00"),
		},
		"keeps a window open across midnight": {
			windows: []Window{must(t, "0 23 * * *", 2*time.Hour, "")}, now: utc("2026-11-24 00:30"), open: true, closesAt: utc("2026-11-24 01:00"),
		},
		"closes a window that crossed midnight on time": {
			windows: []Window{must(t, "0 23 * * *", 2*time.Hour, "")}, now: utc("2026-11-24 01:00"), nextOpen: utc("2026-11-24 23:00"),
		},
		"waits for the weekly window on Saturday": {
			windows: []Window{must(t, "0 2 * * 6", 4*time.Hour, "")}, now: utc("2026-11-23 12:00"), nextOpen: utc("2026-11-28 02:00"),
		},
		"reads the schedule in its time zone (Berlin winter: UTC+1)": {
			windows: []Window{must(t, "0 2 * * *", time.Hour, "Europe/Berlin")}, now: utc("2026-11-23 01:30"), open: true, closesAt: utc("2026-11-23 02:00"),
		},
		"reads the schedule in its time zone (Berlin summer: UTC+2)": {
			windows: []Window{must(t, "0 2 * * *", time.Hour, "Europe/Berlin")}, now: utc("2026-07-01 00:30"), open: true, closesAt: utc("2026-07-01 01:00"),
		},
		"takes the earliest of several windows": {
			windows: []Window{nightly, must(t, "0 22 * * *", time.Hour, "")}, now: utc("2026-11-23 12:00"), nextOpen: utc("2026-11-23 22:00"),
		},
		"closes when the longest of overlapping openings closes": {
			windows: []Window{must(t, "*/10 * * * *", 30*time.Minute, "")}, now: utc("2026-11-23 12:25"), open: true, closesAt: utc("2026-11-23 12:50"),
		},
		// Across DST changes windows follow Kubernetes CronJob semantics (the same cron library): a local
		// time the spring change skips does not occur that day; one the autumn change repeats occurs twice.
		// 2026-03-29: Berlin skips from 02:00 to 03:00.
		"skips a window whose local time does not exist on the spring DST day": {
			windows: []Window{must(t, "30 2 * * *", time.Hour, "Europe/Berlin")}, now: berlin("2026-03-29 01:00"), nextOpen: berlin("2026-03-30 02:30"),
		},
		// A window is a duration of real time: opened at 01:00 CET, 3 hours later is 05:00 CEST.
		"keeps a window open for its real duration across the spring DST change": {
			windows: []Window{must(t, "0 1 * * *", 3*time.Hour, "Europe/Berlin")}, now: berlin("2026-03-29 04:30"), open: true, closesAt: berlin("2026-03-29 05:00"),
		},
		"closes a window that spans the spring DST change after its real duration": {
			windows: []Window{must(t, "0 1 * * *", 3*time.Hour, "Europe/Berlin")}, now: berlin("2026-03-29 05:00"), nextOpen: berlin("2026-03-30 01:00"),
		},
		// 2026-10-25: Berlin repeats 02:00–03:00 (00:00–01:00 UTC in CEST, 01:00–02:00 UTC in CET).
		"opens at the first occurrence of a time the autumn DST change repeats": {
			windows: []Window{must(t, "30 2 * * *", 20*time.Minute, "Europe/Berlin")}, now: utc("2026-10-25 00:40"), open: true, closesAt: utc("2026-10-25 00:50"),
		},
		"is closed between the two occurrences": {
			windows: []Window{must(t, "30 2 * * *", 20*time.Minute, "Europe/Berlin")}, now: utc("2026-10-25 01:00"), nextOpen: utc("2026-10-25 01:30"),
		},
		"opens again at the second occurrence": {
			windows: []Window{must(t, "30 2 * * *", 20*time.Minute, "Europe/Berlin")}, now: utc("2026-10-25 01:40"), open: true, closesAt: utc("2026-10-25 01:50"),
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := At(tc.windows, tc.now)
			if st.Open != tc.open {
				t.Fatalf("open = %v, want %v (%+v)", st.Open, tc.open, st)
			}
			if !st.ClosesAt.Equal(tc.closesAt) {
				t.Errorf("closes at %s, want %s", st.ClosesAt, tc.closesAt)
			}
			if !st.NextOpen.Equal(tc.nextOpen) {
				t.Errorf("next open %s, want %s", st.NextOpen, tc.nextOpen)
			}
		})
	}
}

func TestParseExplainsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		spec, tz string
		d        time.Duration
		want     string
	}{
		"a six-field expression":   {spec: "0 0 2 * * *", d: time.Hour, want: "not a 5-field cron expression"},
		"garbage":                  {spec: "sometimes", d: time.Hour, want: "not a 5-field cron expression"},
		"an unknown time zone":     {spec: "0 2 * * *", tz: "Mars/Olympus", d: time.Hour, want: `timeZone "Mars/Olympus" is not an IANA time zone`},
		"a zero duration":          {spec: "0 2 * * *", want: "duration must be positive"},
		"a date that never occurs": {spec: "0 0 30 2 *", d: time.Hour, want: "never opens"},
		// robfig/cron panics on these two (index out of range): they must be an error like any other.
		"TZ= with nothing after it":       {spec: "TZ=", d: time.Hour, want: "put it in timeZone"},
		"CRON_TZ= with nothing after it":  {spec: "CRON_TZ=", d: time.Hour, want: "put it in timeZone"},
		"a zone prefix before the fields": {spec: " TZ=Europe/Berlin 0 2 * * *", d: time.Hour, want: "names a time zone"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.spec, tc.d, tc.tz)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("@weekly", time.Hour, "America/New_York"); err != nil {
		t.Errorf("descriptors are allowed: %v", err)
	}
}

func TestParseTurnsAParserPanicIntoAnError(t *testing.T) {
	defer func(p func(string) (cron.Schedule, error)) { parse = p }(parse)
	parse = func(string) (cron.Schedule, error) { panic("index out of range") }
	_, err := Parse("0 2 * * *", time.Hour, "")
	if err == nil || !strings.Contains(err.Error(), "cannot be parsed: index out of range") {
		t.Fatalf("error %v, want the panic as an error", err)
	}
}

// FuzzParse feeds window specs as anyone who may write a RolloutPolicy could: Parse never panics, and a
// window it accepts can be evaluated at any moment without panicking and answers consistently.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 2 * * 6", "@weekly", "TZ=", "CRON_TZ=", "TZ=UTC 0 2 * * *", "*/5 * * * *", "0 0 30 2 *", "0 0 29 2 *", "1-5/2 3,4 * JAN-MAR MON"} {
		f.Add(s, int64(time.Hour), "", int64(0))
		f.Add(s, int64(time.Minute), "Europe/Berlin", int64(1790000000))
	}
	f.Fuzz(func(t *testing.T, spec string, d int64, tz string, unix int64) {
		w, err := Parse(spec, time.Duration(d), tz)
		if err != nil {
			return
		}
		now := time.Unix(unix%(1<<33), 0)
		st := At([]Window{w}, now)
		switch {
		case st.Open && st.ClosesAt.Before(now):
			t.Fatalf("%q open at %s but closes earlier, at %s", spec, now, st.ClosesAt)
		case !st.Open && !st.NextOpen.After(now):
			t.Fatalf("%q closed at %s but opens next at %s, not later", spec, now, st.NextOpen)
		}
	})
}
