package cli

import (
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/orchestrate"
)

func TestPlanOffersTheEmergencyRestartOnlyForAHeldWorkloadWhoseCertificateNearsItsExpiry(t *testing.T) {
	now := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	in := func(d time.Duration) *time.Time { at := now.Add(d); return &at }
	closed := orchestrate.Gate{Reason: api.ReasonWaitingForWindow, At: now.Add(96 * time.Hour), Window: now.Add(96 * time.Hour)}
	delegate := decide.Decision{Action: decide.ActionDelegate, Reason: api.ReasonGovernedByPolicy}
	policy := func(mods ...func(*PlanPolicy)) *PlanPolicy {
		pp := &PlanPolicy{Name: "portal"}
		for _, m := range mods {
			m(pp)
		}
		return pp
	}
	want := `certrollout restart deployment/portal -n shop --now --reason "the certificate its pods run on expires at 2026-11-30T04:00:00Z"`
	for name, c := range map[string]struct {
		kind      string
		notAfter  *time.Time
		policy    *PlanPolicy
		decision  decide.Decision
		gate      orchestrate.Gate
		emergency bool
	}{
		"waiting for a window, its certificate expiring in 2 days (no deadline: 7 days)": {api.KindDeployment, in(48 * time.Hour), policy(), delegate, closed, true},
		"waiting for a window, its certificate expiring in 30 days":                      {api.KindDeployment, in(30 * 24 * time.Hour), policy(), delegate, closed, false},
		"waiting for a window, within the policy's 3-day expiryDeadline":                 {api.KindDeployment, in(48 * time.Hour), policy(func(p *PlanPolicy) { p.ExpiryDeadline = "72h0m0s" }), delegate, closed, true},
		"waiting for a window, outside the policy's 1-day expiryDeadline":                {api.KindDeployment, in(48 * time.Hour), policy(func(p *PlanPolicy) { p.ExpiryDeadline = "24h0m0s" }), delegate, closed, false},
		"on a suspended policy": {api.KindDeployment, in(48 * time.Hour), policy(func(p *PlanPolicy) { p.Suspended, p.PendingReason = true, api.ReasonSuspended }), delegate,
			orchestrate.Gate{Reason: api.ReasonPolicySuspended}, true},
		"its policy's rollout waits for the window":     {api.KindDeployment, in(48 * time.Hour), policy(func(p *PlanPolicy) { p.ActiveRollout, p.ActiveRolloutPhase = "portal-x", "WaitingForWindow" }), delegate, closed, true},
		"its policy's rollout is already restarting":    {api.KindDeployment, in(48 * time.Hour), policy(func(p *PlanPolicy) { p.ActiveRollout, p.ActiveRolloutPhase = "portal-x", "Restarting" }), delegate, closed, false},
		"a window is open: the rollout starts anyway":   {api.KindDeployment, in(48 * time.Hour), policy(), delegate, orchestrate.Gate{Open: true}, false},
		"the restart budget is spent":                   {api.KindDeployment, in(48 * time.Hour), nil, decide.Decision{Action: decide.ActionBlock, Reason: api.ReasonRestartBudget}, orchestrate.Gate{}, true},
		"a paused Deployment: a restart would not roll": {api.KindDeployment, in(48 * time.Hour), nil, decide.Decision{Action: decide.ActionBlock, Reason: api.ReasonDeploymentPaused}, orchestrate.Gate{}, false},
		"restarted now anyway":                          {api.KindDeployment, in(48 * time.Hour), nil, decide.Decision{Action: decide.ActionRestart}, orchestrate.Gate{}, false},
		"what the pods run on is not recorded":          {api.KindDeployment, nil, policy(), delegate, closed, false},
		"a CronJob, which restart cannot restart":       {api.KindCronJob, in(48 * time.Hour), nil, decide.Decision{Action: decide.ActionWait, Reason: api.ReasonSettling}, orchestrate.Gate{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			p := &WorkloadPlan{Namespace: "shop", Kind: c.kind, Name: "portal", Policy: c.policy, Certificates: PlanCertificates{RunningNotAfter: c.notAfter}}
			got := emergencyCommand(p, c.decision, c.gate, now)
			switch {
			case c.emergency && got != want:
				t.Errorf("got %q, want %q", got, want)
			case !c.emergency && got != "":
				t.Errorf("offered %q, want nothing", got)
			}
		})
	}
}

func TestPlanTablePrintsTheEmergencyCommandUnderTheTable(t *testing.T) {
	var b strings.Builder
	cmd := `certrollout restart deployment/portal -n shop --now --reason "x"`
	items := []WorkloadPlan{{Namespace: "shop", Kind: api.KindDeployment, Name: "portal", Action: "Delegate", Emergency: cmd}, {Namespace: "shop", Kind: api.KindDeployment, Name: "web", Action: "None"}}
	if err := planTable(&b, items, false, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\ndeployment/portal is held while the certificate its pods run on nears its expiry; to restart it now:\n  "+cmd+"\n") ||
		strings.Contains(b.String(), "deployment/web is held") {
		t.Errorf("table:\n%s", b.String())
	}
}
