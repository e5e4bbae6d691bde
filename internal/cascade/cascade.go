// Package cascade decides the next step of a CA cascade CertRollout (spec.cascade): wait for the
// workloads that trust the rotated CA to roll onto it, then re-issue the leaf Certificates the CA issuer
// signed under its previous certificate, a few at a time (design/2026-11-24-ca-rotation.md).
//
// Like package orchestrate it is pure: the controller observes the issuer, its leaves (through package
// cagraph) and the trusting workloads, Next returns the new status, the writes and the Events. Each step
// is derived from what the cluster shows, not only from the status, so a controller stopped between a
// write and its status update resumes without re-issuing a leaf twice:
//   - a leaf the status still calls Pending whose Certificate already shows Issuing=True is only waited
//     for (this cascade triggered it before a crash, or someone else did: either issuance serves);
//   - a leaf the status calls Pending that is already current under the new CA (its issuance finished
//     meanwhile) is recorded as Issued without a write.
package cascade

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
)

// DefaultTrustTimeout bounds the RefreshingTrust step when the rollout names no policy (a policy's
// healthTimeout applies otherwise): the design note waits for trusting workloads "up to the health
// timeout", the time one workload is given to roll. After it the leaves are re-issued anyway, with a
// Warning, because the old CA certificate expires whether or not every trusting workload rolled.
const DefaultTrustTimeout = api.DefaultHealthTimeout

// pollInterval bounds how long a waiting cascade sleeps when no watch event is due to wake it.
const pollInterval = 5 * time.Second

// Issuer is what the controller observed of the cascade's issuer.
type Issuer struct {
	Exists bool
	// Problem says why its CA certificate cannot be read (no CA Secret, not a CA issuer); empty when it
	// can.
	Problem string
	// CAFingerprint is the SHA-256 fingerprint of its current CA certificate.
	CAFingerprint string
}

// Leaf is what the controller observed of one leaf Certificate of the issuer.
type Leaf struct {
	Exists bool
	// Current is cagraph's verdict: its certificate chains to the issuer's current CA certificate and was
	// issued after it.
	Current bool
	// NeedsReissue is cagraph's Status.NeedsReissue: the leaves the first step selects.
	NeedsReissue bool
	// Revision is status.revision; nil before the first issuance.
	Revision *int32
	// Issuing is set while its Issuing condition is True.
	Issuing bool
	// Failed is set when cert-manager reports Issuing=False with reason Failed, since FailedAt, with its
	// message.
	Failed        bool
	FailedAt      time.Time
	FailedMessage string
	// Message is cagraph's explanation of why it is not current.
	Message string
}

// Trust is what the controller observed of one trusting workload.
type Trust struct {
	State   api.TrustState
	Message string
}

// TrustKey names a trusting workload.
type TrustKey struct{ Kind, Namespace, Name string }

func (k TrustKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Input is everything Next looks at.
type Input struct {
	Now     time.Time
	Rollout *api.CertRollout
	Issuer  Issuer
	// Leaves are the Certificates that name the issuer (and those of status.certificates, deleted ones
	// with Exists false).
	Leaves map[types.NamespacedName]Leaf
	// Trusting are the workloads that use the CA's certificate and none of its leaves; a workload of
	// status.trustedBy that no longer does (or no longer exists) is absent.
	Trusting map[TrustKey]Trust
	// TrustTimeout bounds RefreshingTrust; zero means DefaultTrustTimeout.
	TrustTimeout time.Duration
	// Refused says why this rollout may not run its cascade at all; nothing else is observed then.
	Refused string
}

// Action is a write for the controller to make.
type Action struct {
	Type ActionType
	// Certificate is the leaf to re-issue.
	Certificate types.NamespacedName
	// Reason and Message are those of the Issuing condition TriggerIssuance sets.
	Reason, Message string
}

// ActionType is what an Action does.
type ActionType string

// TriggerIssuance sets Issuing=True on the Certificate (package reissue).
const TriggerIssuance ActionType = "TriggerIssuance"

// Result is Next's answer: the writes to make, then the status and Events to record.
type Result struct {
	rolloutstatus.Outcome
	Actions []Action
}

// Next decides the cascade's next step.
func Next(in Input) Result {
	s := &stepper{Recorder: rolloutstatus.New(in.Rollout, in.Now), in: in}
	s.step()
	s.Status.Progress = Progress(s.Status)
	s.SetKstatus()
	return Result{Outcome: s.Outcome, Actions: s.actions}
}

type stepper struct {
	*rolloutstatus.Recorder
	in      Input
	actions []Action
}

func (s *stepper) step() {
	// Each phase hands over to the next as soon as it can, so one call goes as far as it can without
	// waiting for the cluster to react to its own writes.
	for range 4 {
		before := s.Status.Phase
		if !before.Finished() && !s.issuerValid() {
			return
		}
		switch before {
		case "", api.PhasePending:
			s.initialize()
		case api.PhaseRefreshingTrust:
			s.refreshTrust()
		case api.PhaseReissuing:
			s.reissue()
		default:
			return // finished, or a phase cascades do not use
		}
		if s.Status.Phase == before {
			return
		}
	}
}

func (s *stepper) issuerName() string {
	ref := s.in.Rollout.Spec.Cascade.IssuerRef
	if ref.Kind == "ClusterIssuer" {
		return "ClusterIssuer " + ref.Name
	}
	return "Issuer " + s.in.Rollout.Namespace + "/" + ref.Name
}

// issuerValid fails the rollout when its issuer is gone or signs with another CA certificate than the one
// the rollout re-issues under: re-issuing now would sign the leaves with a certificate the rollout was not
// made for (a later rotation gets its own cascade). Leaves being issued are left to cert-manager: their
// issuance cannot be taken back.
func (s *stepper) issuerValid() bool {
	c := s.in.Rollout.Spec.Cascade
	switch {
	case c == nil:
		s.Fail(api.ReasonInvalid, "spec.cascade is not set: not a cascade rollout")
	case s.in.Refused != "":
		s.Fail(api.ReasonRefused, s.in.Refused)
	case !s.in.Issuer.Exists:
		s.Fail(api.ReasonIssuerNotFound, s.issuerName()+" does not exist")
	case s.in.Issuer.Problem != "":
		s.Fail(api.ReasonIssuerNotReady, fmt.Sprintf("the CA certificate of %s cannot be read: %s", s.issuerName(), s.in.Issuer.Problem))
	case s.in.Issuer.CAFingerprint != c.CAFingerprint:
		s.Fail(api.ReasonCAChanged, fmt.Sprintf("the CA certificate of %s is %s, not %s as spec.caFingerprint says: it rotated again or the spec is wrong; no further leaf is re-issued under this rollout",
			s.issuerName(), short(s.in.Issuer.CAFingerprint), short(c.CAFingerprint)))
	default:
		return true
	}
	return false
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

// initialize fixes the leaves to re-issue and the workloads to wait for: what happens later (a new leaf,
// a new consumer) belongs to the next cascade, and a fixed list is what makes the rollout resumable.
// Only leaves that need re-issuing are taken: a Certificate that was never issued gets its first
// certificate from cert-manager anyway, under the current CA.
func (s *stepper) initialize() {
	for _, name := range sortedNames(s.in.Leaves) {
		if l := s.in.Leaves[name]; l.Exists && l.NeedsReissue {
			s.Status.Certificates = append(s.Status.Certificates, api.LeafStatus{Namespace: name.Namespace, Name: name.Name, State: api.LeafPending, Message: l.Message})
		}
	}
	keys := make([]TrustKey, 0, len(s.in.Trusting))
	for k := range s.in.Trusting {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b TrustKey) int {
		return strings.Compare(a.Namespace+"/"+a.Kind+"/"+a.Name, b.Namespace+"/"+b.Kind+"/"+b.Name)
	})
	for _, k := range keys {
		t := s.in.Trusting[k]
		s.Status.TrustedBy = append(s.Status.TrustedBy, api.TrustingWorkload{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, State: t.State, Message: t.Message})
	}
	s.Status.StartTime = s.Now()
	s.Status.Phase = api.PhaseRefreshingTrust
	s.Event(rolloutstatus.Normal, api.ReasonRefreshingTrust, "Started: %d leaf Certificate(s) of %s to re-issue under CA %s, after %d trusting workload(s)",
		len(s.Status.Certificates), s.issuerName(), short(s.in.Rollout.Spec.Cascade.CAFingerprint), len(s.Status.TrustedBy))
}

func (s *stepper) trustTimeout() time.Duration {
	if s.in.TrustTimeout > 0 {
		return s.in.TrustTimeout
	}
	return DefaultTrustTimeout
}

// refreshTrust waits until every trusting workload it waits for runs on the new CA.
func (s *stepper) refreshTrust() {
	var pending []string
	for i := range s.Status.TrustedBy {
		t := &s.Status.TrustedBy[i]
		if t.State != api.TrustPending {
			continue // Current stays current; NotWaitedFor is not waited for
		}
		k := TrustKey{t.Kind, t.Namespace, t.Name}
		o, ok := s.in.Trusting[k]
		switch {
		case !ok:
			t.State, t.Message = api.TrustNotWaitedFor, "no longer uses the CA's certificate, or was deleted"
		case o.State == api.TrustCurrent:
			t.State, t.Message = api.TrustCurrent, ""
		case o.State == api.TrustNotWaitedFor:
			t.State, t.Message = api.TrustNotWaitedFor, o.Message
		default:
			t.Message = o.Message
			pending = append(pending, k.String())
		}
	}
	timeout := s.trustTimeout()
	deadline := s.Status.StartTime.Add(timeout)
	switch {
	case len(pending) == 0:
		s.Event(rolloutstatus.Normal, api.ReasonTrustRefreshed, "Every trusting workload runs on the new CA certificate; re-issuing the leaves")
	case !s.in.Now.Before(deadline):
		s.Event(rolloutstatus.Warning, api.ReasonTrustTimedOut, "Re-issuing the leaves although %d trusting workload(s) did not roll onto the new CA certificate within %s: %s",
			len(pending), timeout, strings.Join(pending, ", "))
	default:
		s.Status.Message = fmt.Sprintf("waiting for %d trusting workload(s) to roll onto the new CA certificate: %s", len(pending), strings.Join(pending, ", "))
		s.Wait(min(pollInterval, deadline.Sub(s.in.Now)))
		return
	}
	s.Status.Phase = api.PhaseReissuing
	s.Status.Message = "re-issuing"
}

func (s *stepper) maxConcurrent() int { return s.in.Rollout.Spec.Cascade.EffectiveMaxConcurrent() }

// IssuingMessage is the message of the Issuing condition a cascade sets: cert-manager shows it, and
// people reading the Certificate learn why it is being issued again.
func IssuingMessage(issuer, fingerprint, rollout string) string {
	return fmt.Sprintf("Re-issuance triggered by certrollout: %s rotated its CA certificate to %s (CertRollout %s)", issuer, fingerprint, rollout)
}

func (s *stepper) reissue() {
	cs := s.Status.Certificates
	active := rolloutstatus.SettleThenStart(len(cs), s.maxConcurrent(),
		func(i int) bool { return s.settleLeaf(&cs[i]) },
		func(i int) (bool, bool) { return s.startLeaf(&cs[i]), false })
	if active > 0 {
		s.Status.Message = "re-issuing: " + Progress(s.Status)
		return
	}
	s.finish()
}

// settleLeaf judges a leaf being issued and reports whether it still is.
func (s *stepper) settleLeaf(c *api.LeafStatus) bool {
	if c.State != api.LeafIssuing {
		return false
	}
	l := s.in.Leaves[types.NamespacedName{Namespace: c.Namespace, Name: c.Name}]
	switch {
	case !l.Exists:
		s.leafFailed(c, "the Certificate was deleted during its re-issuance")
	case moved(l.Revision, c.PreviousRevision) && l.Current:
		s.leafIssued(c, l)
	case l.Failed && !l.FailedAt.Before(c.StartedAt.Truncate(time.Second)):
		// Only a failure reported since the trigger: a cache that lags behind our own patch still
		// shows an earlier one (condition times are whole seconds).
		s.leafFailed(c, "cert-manager failed to issue it: "+l.FailedMessage)
	default:
		if moved(l.Revision, c.PreviousRevision) && !l.Issuing {
			c.Message = "issued, waiting for its Secret to show a certificate of the new CA: " + l.Message
		}
		s.Wait(pollInterval)
		return true
	}
	return false
}

// startLeaf triggers the re-issuance of a pending leaf, unless it needs none, and reports whether it is
// now being issued.
func (s *stepper) startLeaf(c *api.LeafStatus) bool {
	if c.State != api.LeafPending {
		return false
	}
	name := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	l := s.in.Leaves[name]
	switch {
	case !l.Exists:
		s.leafFailed(c, "the Certificate was deleted before its re-issuance")
		return false
	case l.Current:
		// Re-issued meanwhile: by this rollout before a crash lost the status, or by someone else.
		// Either way it needs no second issuance.
		c.StartedAt = s.Now()
		s.leafIssued(c, l)
		return false
	}
	c.State, c.StartedAt, c.PreviousRevision, c.Message = api.LeafIssuing, s.Now(), l.Revision, ""
	if !l.Issuing { // else already being issued (this rollout before a crash, or someone else): wait for it
		s.actions = append(s.actions, Action{Type: TriggerIssuance, Certificate: name, Reason: api.ReasonCARotatedTrigger,
			Message: IssuingMessage(s.issuerName(), s.in.Rollout.Spec.Cascade.CAFingerprint, s.in.Rollout.Name)})
		s.Event(rolloutstatus.Normal, api.ReasonReissuing, "Re-issuing Certificate %s", name)
	}
	s.Wait(pollInterval)
	return true
}

// moved reports whether rev is past prev (any revision is past none).
func moved(rev, prev *int32) bool {
	return rev != nil && (prev == nil || *rev > *prev)
}

func (s *stepper) leafIssued(c *api.LeafStatus, l Leaf) {
	c.State, c.FinishedAt, c.Revision, c.Message = api.LeafIssued, s.Now(), l.Revision, ""
	s.Event(rolloutstatus.Normal, api.ReasonLeafIssued, "Certificate %s/%s re-issued under the new CA certificate%s", c.Namespace, c.Name, revisionSuffix(l.Revision))
}

func revisionSuffix(r *int32) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(" (revision %d)", *r)
}

func (s *stepper) leafFailed(c *api.LeafStatus, msg string) {
	c.State, c.FinishedAt, c.Message = api.LeafFailed, s.Now(), msg
	s.Event(rolloutstatus.Warning, api.ReasonLeafFailed, "Certificate %s/%s: %s", c.Namespace, c.Name, msg)
}

func (s *stepper) finish() {
	var failed []string
	for _, c := range s.Status.Certificates {
		if c.State == api.LeafFailed {
			failed = append(failed, c.Namespace+"/"+c.Name)
		}
	}
	if len(failed) > 0 {
		s.Fail(api.ReasonLeavesFailed, fmt.Sprintf("%d of %d leaf Certificate(s) failed to re-issue: %s", len(failed), len(s.Status.Certificates), strings.Join(failed, ", ")))
		return
	}
	s.Succeed(fmt.Sprintf("%d leaf Certificate(s) re-issued under the new CA certificate", len(s.Status.Certificates)))
}

// Progress reads like "3/5 re-issued", with the failures: the CertRollout's progress column.
func Progress(st api.CertRolloutStatus) string {
	issued, failed := 0, 0
	for _, c := range st.Certificates {
		switch c.State {
		case api.LeafIssued:
			issued++
		case api.LeafFailed:
			failed++
		case api.LeafPending, api.LeafIssuing:
		}
	}
	p := fmt.Sprintf("%d/%d re-issued", issued, len(st.Certificates))
	if failed > 0 {
		p += fmt.Sprintf(", %d failed", failed)
	}
	return p
}

func sortedNames(m map[types.NamespacedName]Leaf) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	return out
}
