package cli

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
)

// Outcomes of one Certificate in a RenewReport.
const (
	RenewTriggered      = "Triggered"
	RenewAlreadyIssuing = "AlreadyIssuing"
	RenewIssued         = "Issued"
	RenewFailed         = "Failed"
	RenewTimedOut       = "TimedOut"
)

// RenewReport is what `renew -o json|yaml` prints: each Certificate with what happened to it and, with
// --restart, the CertRollouts that rolled its consumers.
type RenewReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// DryRun is true under --dry-run (nothing was triggered), as in a RestartReport; DryRunMode says
	// client or server.
	DryRun         bool              `json:"dryRun,omitempty"`
	DryRunMode     string            `json:"dryRunMode,omitempty"`
	Certificates   []RenewedCert     `json:"certificates"`
	Rollouts       []api.CertRollout `json:"rollouts,omitempty"`
	NotRestartable []WorkloadNote    `json:"notRestartable,omitempty"`
}

// RenewedCert is one Certificate of a RenewReport.
type RenewedCert struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	SecretName string `json:"secretName"`
	// Result: Triggered (no --wait), AlreadyIssuing (not triggered again; with --wait, waited for),
	// Issued, Failed, TimedOut.
	Result string `json:"result"`
	// PreviousRevision is status.revision before; Revision the one at the end (with --wait).
	PreviousRevision *int `json:"previousRevision,omitempty"`
	Revision         *int `json:"revision,omitempty"`
	// PreviousNotAfter is status.notAfter before; NotAfter the one at the end (with --wait).
	PreviousNotAfter *time.Time `json:"previousNotAfter,omitempty"`
	NotAfter         *time.Time `json:"notAfter,omitempty"`
	Ready            bool       `json:"ready"`
	Message          string     `json:"message,omitempty"`

	// datesTellApart is false when the previous certificate was issued in the second the renewal was
	// triggered: certificates have one-second dates, so the new one may carry the very same, and only the
	// revision can say the renewal is done.
	datesTellApart bool
}

// previousNotAfterIfDistinct is PreviousNotAfter when a new certificate's expiry must differ from it.
func (rc *RenewedCert) previousNotAfterIfDistinct() *time.Time {
	if !rc.datesTellApart {
		return nil
	}
	return rc.PreviousNotAfter
}

// certRef names a Certificate.
func certRef(c *certmanager.Certificate) types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
}

// notAfterOf is the expiry of the certificate crt's status describes; nil before the first issuance.
func notAfterOf(crt *certmanager.Certificate) *time.Time {
	if crt.Status.NotAfter == nil {
		return nil
	}
	t := crt.Status.NotAfter.UTC()
	return &t
}

// renewDone reports whether crt has a revision past prevRevision, is Ready, and describes the new
// certificate. cert-manager's issuing controller moves the revision on; its readiness controller updates
// notAfter a moment later, and Ready stays True from the previous certificate meanwhile: until notAfter
// moves past prevNotAfter the status still describes the old certificate.
func renewDone(crt *certmanager.Certificate, prevRevision *int, prevNotAfter *time.Time) bool {
	if crt.Status.Revision == nil || !crt.Ready() {
		return false
	}
	if prevRevision != nil && *crt.Status.Revision <= *prevRevision {
		return false
	}
	na := notAfterOf(crt)
	return prevNotAfter == nil || (na != nil && !na.Equal(*prevNotAfter))
}
