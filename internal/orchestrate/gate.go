package orchestrate

import (
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/schedule"
)

// Gate is what a policy says about starting a rollout now: the start gate, one rule for the rollout
// state machine (start) and for `certrollout plan`. The controller's slot limits
// (--max-concurrent-rollouts and its per-namespace share) come on top of it.
type Gate struct {
	// Open: the rollout may start now.
	Open bool
	// Reason is why it is closed (api.ReasonPolicyInvalid, api.ReasonPolicySuspended, api.ReasonWaitingForWindow), or
	// api.ReasonDeadlineOverride when the expiry deadline opened it; "" when it is simply open.
	Reason string
	// At is when a closed gate opens by itself: the next window, or the expiry deadline if that comes
	// first. Zero when only a person can open it (an invalid or suspended policy), or it is open.
	At time.Time
	// ByDeadline: At is the expiry deadline, not a window.
	ByDeadline bool
	// Window is when the next maintenance window opens, for a gate its windows close.
	Window time.Time
}

// StartGate judges p at now for targets whose pods run on a certificate expiring at notAfter (zero when
// unknown). An invalid policy holds its rollouts unless the deadline has come; a suspended one holds them
// whatever the deadline; closed windows hold them until the next window or the deadline, whichever comes
// first. A nil policy (a CertRollout naming none) is always open.
func StartGate(p *Policy, notAfter, now time.Time) Gate {
	if p == nil {
		return Gate{Open: true}
	}
	past := p.Spec.PastDeadline(notAfter, now)
	switch {
	case p.Invalid != "" && !past:
		return Gate{Reason: api.ReasonPolicyInvalid}
	case p.Spec.Suspend:
		return Gate{Reason: api.ReasonPolicySuspended}
	}
	st := schedule.At(p.Windows, now)
	switch {
	case past && (!st.Open || p.Invalid != ""):
		return Gate{Open: true, Reason: api.ReasonDeadlineOverride}
	case st.Open:
		return Gate{Open: true}
	}
	g := Gate{Reason: api.ReasonWaitingForWindow, At: st.NextOpen, Window: st.NextOpen}
	if dl := p.Spec.DeadlineFor(notAfter); !dl.IsZero() && (g.At.IsZero() || dl.Before(g.At)) {
		g.At, g.ByDeadline = dl, true
	}
	return g
}
