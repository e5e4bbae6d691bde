package cli

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/reissue"
)

func TestObserveRenewalPrintsOnlyWhatChanged(t *testing.T) {
	one, two := 1, 2
	oldExpiry := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	newExpiry := metav1.NewTime(oldExpiry.Add(90 * 24 * time.Hour))
	cond := func(typ, status, reason, msg string) certmanager.Condition {
		return certmanager.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
	}
	issuing := cond(certmanager.ConditionIssuing, "True", "ManuallyTriggered", "Re-issuance triggered")
	ready := cond(certmanager.ConditionReady, "True", "Ready", "up to date")
	cases := map[string]struct {
		status    certmanager.CertificateStatus
		shown     string
		wantState string // "" for no line
		wantText  string
		result    string
	}{
		"says Issuing with cert-manager's message the first time": {
			status:    certmanager.CertificateStatus{Revision: &one, Conditions: []certmanager.Condition{issuing, ready}},
			wantState: "Issuing", wantText: "Re-issuance triggered", result: RenewTriggered,
		},
		"says nothing when the message did not change": {
			status: certmanager.CertificateStatus{Revision: &one, Conditions: []certmanager.Condition{issuing, ready}},
			shown:  "Re-issuance triggered", result: RenewTriggered,
		},
		"waits on Ready while the revision moved but the expiry has not": {
			status:    certmanager.CertificateStatus{Revision: &two, Conditions: []certmanager.Condition{ready}},
			wantState: "Waiting", wantText: "Ready=True: up to date", result: RenewTriggered,
		},
		"is Issued once the revision and the expiry moved and it is Ready": {
			status:    certmanager.CertificateStatus{Revision: &two, NotAfter: &newExpiry, Conditions: []certmanager.Condition{ready}},
			wantState: "Issued", wantText: "revision 2, Ready, valid until 2027-04-01T00:00:00Z", result: RenewIssued,
		},
		"is Failed when cert-manager says the issuance failed": {
			status:    certmanager.CertificateStatus{Revision: &one, Conditions: []certmanager.Condition{cond(certmanager.ConditionIssuing, "False", reissue.ReasonFailed, "issuer not ready"), ready}},
			wantState: "Failed", wantText: "issuer not ready", result: RenewFailed,
		},
	}
	for sentence, c := range cases {
		rc := &RenewedCert{Result: RenewTriggered, PreviousRevision: &one, PreviousNotAfter: &oldExpiry, datesTellApart: true}
		s := &certProgress{message: c.shown}
		line := observeRenewal(rc, s, &certmanager.Certificate{Status: c.status})
		switch {
		case c.wantState == "" && line != nil:
			t.Errorf("%s: printed %+v", sentence, *line)
		case c.wantState != "" && (line == nil || line.state != c.wantState || line.text != c.wantText):
			t.Errorf("%s: got %+v, want %s %q", sentence, line, c.wantState, c.wantText)
		}
		if rc.Result != c.result {
			t.Errorf("%s: result %s, want %s", sentence, rc.Result, c.result)
		}
	}
}
