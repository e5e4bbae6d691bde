package orchestrate

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/schedule"
)

func TestStartGate(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) // a Tuesday
	saturday, err := schedule.Parse("0 2 * * 6", time.Hour, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	nextWindow := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	morning, err := schedule.Parse("0 9 * * *", 2*time.Hour, "UTC") // open 09:00 to 11:00
	if err != nil {
		t.Fatal(err)
	}
	deadline := &metav1.Duration{Duration: 72 * time.Hour}
	policy := func(invalid string, suspend bool, windows []schedule.Window, dl *metav1.Duration) *Policy {
		return &Policy{Name: "p", Invalid: invalid, Windows: windows, Spec: api.RolloutPolicySpec{Suspend: suspend, ExpiryDeadline: dl}}
	}
	far, soon := now.Add(30*24*time.Hour), now.Add(24*time.Hour)
	for name, c := range map[string]struct {
		p         *Policy
		notAfter  time.Time
		want      Gate
		emergency bool
	}{
		"no policy":                               {nil, far, Gate{Open: true}, false},
		"no windows":                              {policy("", false, nil, nil), far, Gate{Open: true}, false},
		"a window open":                           {policy("", false, []schedule.Window{morning}, nil), far, Gate{Open: true}, false},
		"windows closed: the next one":            {policy("", false, []schedule.Window{saturday}, deadline), far, Gate{Reason: api.ReasonWaitingForWindow, At: nextWindow, Window: nextWindow}, false},
		"the deadline comes before the window":    {policy("", false, []schedule.Window{saturday}, deadline), now.Add(96 * time.Hour), Gate{Reason: api.ReasonWaitingForWindow, At: now.Add(24 * time.Hour), ByDeadline: true, Window: nextWindow}, false},
		"past the deadline, windows closed":       {policy("", false, []schedule.Window{saturday}, deadline), soon, Gate{Open: true, Reason: api.ReasonDeadlineOverride}, false},
		"past the deadline, the window open":      {policy("", false, []schedule.Window{morning}, deadline), soon, Gate{Open: true}, false},
		"an unknown expiry has no deadline":       {policy("", false, []schedule.Window{saturday}, deadline), time.Time{}, Gate{Reason: api.ReasonWaitingForWindow, At: nextWindow, Window: nextWindow}, false},
		"invalid holds":                           {policy("bad cron", false, nil, deadline), far, Gate{Reason: api.ReasonPolicyInvalid}, false},
		"invalid, past the deadline":              {policy("bad cron", false, nil, deadline), soon, Gate{Open: true, Reason: api.ReasonDeadlineOverride}, false},
		"suspended holds, even past the deadline": {policy("", true, nil, deadline), soon, Gate{Reason: api.ReasonPolicySuspended}, false},

		"starts an emergency rollout at once in a closed window":        {policy("", false, []schedule.Window{saturday}, deadline), far, Gate{Open: true, Reason: api.ReasonEmergencyStart}, true},
		"starts an emergency rollout at once on a suspended policy":     {policy("", true, nil, nil), far, Gate{Open: true, Reason: api.ReasonEmergencyStart}, true},
		"starts an emergency rollout at once on an invalid policy":      {policy("bad cron", false, nil, nil), far, Gate{Open: true, Reason: api.ReasonEmergencyStart}, true},
		"starts an emergency rollout past the deadline as an emergency": {policy("", false, []schedule.Window{saturday}, deadline), soon, Gate{Open: true, Reason: api.ReasonEmergencyStart}, true},
		"an emergency in an open window overrides nothing":              {policy("", false, []schedule.Window{morning}, nil), far, Gate{Open: true}, true},
		"an emergency without a policy overrides nothing":               {nil, far, Gate{Open: true}, true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := StartGate(Start{Policy: c.p, NotAfter: c.notAfter, Now: now, Emergency: c.emergency}); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
