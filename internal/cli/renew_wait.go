package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/reissue"
)

// certProgress is what the renewal printer last showed of a Certificate.
type certProgress struct {
	message string
	done    bool
	failed  bool
}

// wait watches the Certificates until each is issued (or failed), printing a line per change.
func (o *RenewOptions) wait(ctx context.Context, c client.WithWatch, info io.Writer, report *RenewReport) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := map[types.NamespacedName]int{}
	namespaces := map[string]bool{}
	events := make(chan watchEvent)
	names := make([]string, len(report.Certificates))
	for i, rc := range report.Certificates {
		idx[types.NamespacedName{Namespace: rc.Namespace, Name: rc.Name}] = i
		names[i] = o.certName(rc.Namespace, rc.Name)
		if !namespaces[rc.Namespace] {
			namespaces[rc.Namespace] = true
			go watchNamespace(wctx, c, rc.Namespace, func() client.ObjectList { return &certmanager.CertificateList{} }, events)
		}
	}
	lines := newRenewLines(info, names)
	seen := make([]certProgress, len(report.Certificates))
	for pending := len(report.Certificates); pending > 0; {
		var ev watchEvent
		select {
		case <-wctx.Done():
			return o.waitFailed(ctx.Err(), report)
		case ev = <-events:
		}
		if ev.err != nil {
			return explain(ev.err, o.Config())
		}
		if ev.listed != nil {
			for _, rc := range report.Certificates {
				if rc.Namespace == ev.ns && !ev.listed[rc.Name] && rc.Result != RenewIssued {
					return errCertificateDeleted(rc.Namespace, rc.Name)
				}
			}
			continue
		}
		crt, ok := ev.obj.(*certmanager.Certificate)
		if !ok {
			continue
		}
		i, followed := idx[certRef(crt)]
		if !followed || seen[i].done || seen[i].failed {
			continue
		}
		if ev.deleted {
			return errCertificateDeleted(crt.Namespace, crt.Name)
		}
		if line := observeRenewal(&report.Certificates[i], &seen[i], crt); line != nil {
			lines.print(o.Now(), names[i], *line)
		}
		if seen[i].done || seen[i].failed {
			pending--
		}
	}
	return issuanceFailures(report)
}

func errCertificateDeleted(ns, name string) error {
	return fmt.Errorf("Certificate %s/%s was deleted while waiting for its renewal", ns, name) //nolint:staticcheck // a kind name starts the sentence
}

// observeRenewal records what crt now says about rc's renewal, and returns the line to print: Issued,
// Failed, or the Issuing/Waiting message when it changed; nil when there is nothing new.
func observeRenewal(rc *RenewedCert, s *certProgress, crt *certmanager.Certificate) *renewLine {
	rc.Revision, rc.NotAfter, rc.Ready = crt.Status.Revision, notAfterOf(crt), crt.Ready()
	msg, failed := reissue.Failed(crt)
	switch {
	case renewDone(crt, rc.PreviousRevision, rc.previousNotAfterIfDistinct()):
		s.done, rc.Result, rc.Message = true, RenewIssued, ""
		text := fmt.Sprintf("%s, Ready", revisionString(crt.Status.Revision))
		if crt.Status.NotAfter != nil {
			text += ", valid until " + timestamp(crt.Status.NotAfter.Time)
		}
		return &renewLine{state: "Issued", text: text}
	case failed:
		s.failed, rc.Result, rc.Message = true, RenewFailed, msg
		return &renewLine{state: "Failed", text: msg}
	}
	line := renewLine{state: "Issuing"}
	if cnd := crt.Condition(certmanager.ConditionIssuing); cnd != nil {
		line.text = cnd.Message
	} else if r := crt.Condition(certmanager.ConditionReady); r != nil {
		line.state, line.text = "Waiting", "Ready="+r.Status+": "+r.Message
	}
	if line.text == s.message {
		return nil
	}
	s.message = line.text
	return &line
}

// issuanceFailures is the error naming every Certificate whose issuance failed; nil when none did.
func issuanceFailures(report *RenewReport) error {
	var failed []string
	for _, rc := range report.Certificates {
		if rc.Result == RenewFailed {
			failed = append(failed, fmt.Sprintf("Certificate %s/%s: %s", rc.Namespace, rc.Name, rc.Message))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &exitError{code: ExitFailed, err: fmt.Errorf("issuance failed: %s (cert-manager retries with a back-off; `kubectl describe certificaterequests -n %s` says more)",
		strings.Join(failed, "; "), report.Certificates[0].Namespace)}
}

// waitFailed is the error for a wait that ctx ended (--timeout or an interrupt).
func (o *RenewOptions) waitFailed(err error, report *RenewReport) error {
	var waiting []string
	for i := range report.Certificates {
		rc := &report.Certificates[i]
		if rc.Result == RenewTriggered || rc.Result == RenewAlreadyIssuing {
			rc.Result = RenewTimedOut
			waiting = append(waiting, rc.Namespace+"/"+rc.Name)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopped waiting for %s; cert-manager goes on issuing: %w", strings.Join(waiting, ", "), err)
	}
	return &exitError{code: ExitTimedOut, err: fmt.Errorf("%w: %s passed and %s not issued yet; cert-manager goes on (watch with `kubectl get certificates -w -n %s`)",
		ErrWaitTimedOut, o.Timeout, strings.Join(waiting, ", "), report.Certificates[0].Namespace)}
}
