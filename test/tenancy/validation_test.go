package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

func dur(s string) metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return metav1.Duration{Duration: d}
}

// The API server refuses, with a message naming the field, every policy that could hold rollout slots
// for ever or reach the window parser's panic; the same policy within bounds is accepted.
func TestTheAPIRefusesPoliciesThatCouldHoldSlotsForEverOrCrashTheParser(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	valid := func() *api.RolloutPolicy {
		return &api.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "p-"},
			Spec: api.RolloutPolicySpec{
				Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				HealthTimeout: dur("24h"),
				Windows:       []api.MaintenanceWindow{{Schedule: "0 2 * * 6", Duration: dur("168h"), TimeZone: "Europe/Berlin"}},
				Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: dur("24h")}},
			},
		}
	}
	ctx := context.Background()
	if err := cl.Create(ctx, valid()); err != nil {
		t.Fatalf("a policy at every bound is refused: %v", err)
	}
	d := func(s string) *metav1.Duration { v := dur(s); return &v }
	for name, tc := range map[string]struct {
		edit func(*api.RolloutPolicy)
		want string
	}{
		"a year-long health timeout":      {func(p *api.RolloutPolicy) { p.Spec.HealthTimeout = dur("8760h") }, "healthTimeout is at most 24h"},
		"a negative health timeout":       {func(p *api.RolloutPolicy) { p.Spec.HealthTimeout = dur("-1s") }, "healthTimeout is at most 24h"},
		"a 25h drain timeout":             {func(p *api.RolloutPolicy) { p.Spec.Quiesce[0].DrainTimeout = dur("25h") }, "drainTimeout is at most 24h"},
		"a window open for a month":       {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Duration = dur("720h") }, "duration is more than 0 and at most 168h"},
		"a window of no length":           {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Duration = dur("0s") }, "duration is more than 0"},
		"TZ= in the schedule":             {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Schedule = "TZ=" }, "must not name a time zone"},
		"CRON_TZ= in the schedule":        {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Schedule = "CRON_TZ=Europe/Berlin 0 2 * * *" }, "must not name a time zone"},
		"an expiry deadline of ten years": {func(p *api.RolloutPolicy) { p.Spec.ExpiryDeadline = d("87600h") }, "expiryDeadline is between 0 and 8760h"},
		"a minimum interval of a year":    {func(p *api.RolloutPolicy) { p.Spec.MinRestartInterval = d("8760h") }, "minRestartInterval is between 0 and 720h"},
		"a name longer than a label value": {func(p *api.RolloutPolicy) {
			p.GenerateName, p.Name = "", strings.Repeat("p", 64)
		}, "at most 63 characters"},
	} {
		t.Run(name, func(t *testing.T) {
			p := valid()
			tc.edit(p)
			err := cl.Create(ctx, p)
			if err == nil {
				t.Fatalf("created %s; want it refused", p.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %q; want the message to say %q", err, tc.want)
			}
		})
	}
}
