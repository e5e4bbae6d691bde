package v1alpha1

import "time"

// Defaults of the fields a RolloutPolicy leaves empty or zero. The CRD defaults most of them on the way
// in; these are what the controller and the CLI use for objects written before a default existed, and
// for a zero duration ("0s", which the API accepts and means "the default").
const (
	DefaultHealthTimeout       = 10 * time.Minute
	DefaultDrainTimeout        = time.Hour
	DefaultRolloutHistoryLimit = 10
	DefaultMaxConcurrent       = 1
	// DefaultCascadeMaxConcurrent is how many leaves a cascade re-issues at once (spec.cascade.maxConcurrent).
	DefaultCascadeMaxConcurrent = 5
)

// EffectiveHealthTimeout is spec.healthTimeout, or DefaultHealthTimeout when it is zero.
func (s *RolloutPolicySpec) EffectiveHealthTimeout() time.Duration {
	if s.HealthTimeout.Duration > 0 {
		return s.HealthTimeout.Duration
	}
	return DefaultHealthTimeout
}

// EffectiveDrainTimeout is the target's drainTimeout, or DefaultDrainTimeout when it is zero.
func (q *QuiesceTarget) EffectiveDrainTimeout() time.Duration {
	if q.DrainTimeout.Duration > 0 {
		return q.DrainTimeout.Duration
	}
	return DefaultDrainTimeout
}

// EffectiveRolloutHistoryLimit is spec.rolloutHistoryLimit, or DefaultRolloutHistoryLimit when unset.
func (s *RolloutPolicySpec) EffectiveRolloutHistoryLimit() int {
	if s.RolloutHistoryLimit > 0 {
		return int(s.RolloutHistoryLimit)
	}
	return DefaultRolloutHistoryLimit
}

// EffectiveMaxConcurrent is how many targets restart at once: 1 with order Serial, spec.maxConcurrent
// (at least 1) with Parallel.
func (s *RolloutPolicySpec) EffectiveMaxConcurrent() int {
	if s.Order != OrderParallel || s.MaxConcurrent < 1 {
		return DefaultMaxConcurrent
	}
	return int(s.MaxConcurrent)
}

// EffectiveMaxConcurrent is how many leaves the cascade re-issues at once: spec.cascade.maxConcurrent, or
// DefaultCascadeMaxConcurrent when unset.
func (c *CascadeSpec) EffectiveMaxConcurrent() int {
	if c.MaxConcurrent > 0 {
		return int(c.MaxConcurrent)
	}
	return DefaultCascadeMaxConcurrent
}

// DeadlineFor is the one expiry-deadline rule: when a workload whose pods run on a certificate expiring
// at notAfter may be rolled outside the policy's windows (notAfter minus spec.expiryDeadline). Zero when
// the policy sets no deadline or notAfter is unknown.
func (s *RolloutPolicySpec) DeadlineFor(notAfter time.Time) time.Time {
	if s.ExpiryDeadline == nil || notAfter.IsZero() {
		return time.Time{}
	}
	return notAfter.Add(-s.ExpiryDeadline.Duration)
}

// PastDeadline reports whether, at now, a certificate expiring at notAfter is within the policy's
// expiry deadline: a rollout for it starts whatever the windows, other namespaces' rollouts or an
// invalid policy would say.
func (s *RolloutPolicySpec) PastDeadline(notAfter, now time.Time) bool {
	at := s.DeadlineFor(notAfter)
	return !at.IsZero() && !now.Before(at)
}
