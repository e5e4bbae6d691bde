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
	// api.ReasonDeadlineOverride when the expiry deadline opened it, api.ReasonEmergencyStart when an
	// emergency did; "" when it is simply open.
	Reason string
	// At is when a closed gate opens by itself: the next window, or the expiry deadline if that comes
	// first. Zero when only a person can open it (an invalid or suspended policy), or it is open.
	At time.Time
	// ByDeadline: At is the expiry deadline, not a window.
	ByDeadline bool
	// Window is when the next maintenance window opens, for a gate its windows close.
	Window time.Time
}

// Start is what the start gate judges: the policy (nil when the rollout names none), when the earliest
// certificate the targets' pods run on expires (zero when unknown), the time, and whether the rollout is
// an emergency (spec.emergency).
type Start struct {
	Policy    *Policy
	NotAfter  time.Time
	Now       time.Time
	Emergency bool
}

// StartGate judges a start. An invalid policy holds its rollouts unless the deadline has come; a
// suspended one holds them whatever the deadline; closed windows hold them until the next window or the
// deadline, whichever comes first. An emergency opens it whatever the policy says (Reason
// api.ReasonEmergencyStart when the policy would have held it). A nil policy (a CertRollout naming none)
// is always open.
func StartGate(in Start) Gate {
	p, notAfter, now := in.Policy, in.NotAfter, in.Now
	if p == nil {
		return Gate{Open: true}
	}
	if in.Emergency {
		if g := StartGate(Start{Policy: p, NotAfter: notAfter, Now: now}); g.Open && g.Reason == "" {
			return g
		}
		return Gate{Open: true, Reason: api.ReasonEmergencyStart}
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
