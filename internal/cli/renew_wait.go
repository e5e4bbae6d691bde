package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	for i, rc := range report.Certificates {
		idx[types.NamespacedName{Namespace: rc.Namespace, Name: rc.Name}] = i
		if !namespaces[rc.Namespace] {
			namespaces[rc.Namespace] = true
			go watchNamespace(wctx, c, rc.Namespace, func() client.ObjectList { return &certmanager.CertificateList{} }, events)
		}
	}
	seen := make([]certProgress, len(report.Certificates))
	pending := len(report.Certificates)
	width := 0
	for _, rc := range report.Certificates {
		width = max(width, len(o.certName(&certmanager.Certificate{ObjectMeta: metav1.ObjectMeta{Name: rc.Name, Namespace: rc.Namespace}})))
	}
	line := func(crt *certmanager.Certificate, state, text string) {
		fmt.Fprintf(info, "%s  %-*s  %-8s  %s\n", timestamp(o.Now()), width, o.certName(crt), state, text)
	}
	for pending > 0 {
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
					return fmt.Errorf("Certificate %s/%s was deleted while waiting for its renewal", rc.Namespace, rc.Name) //nolint:staticcheck // a kind name starts the sentence
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
		rc := &report.Certificates[i]
		if ev.deleted {
			return fmt.Errorf("Certificate %s/%s was deleted while waiting for its renewal", crt.Namespace, crt.Name) //nolint:staticcheck // a kind name starts the sentence
		}
		s := &seen[i]
		rc.Revision, rc.NotAfter, rc.Ready = crt.Status.Revision, notAfterOf(crt), crt.Ready()
		switch msg, failed := reissue.Failed(crt); {
		case renewDone(crt, rc.PreviousRevision, rc.previousNotAfterIfDistinct()):
			s.done, rc.Result, rc.Message = true, RenewIssued, ""
			pending--
			text := fmt.Sprintf("%s, Ready", revisionString(crt.Status.Revision))
			if crt.Status.NotAfter != nil {
				text += ", valid until " + timestamp(crt.Status.NotAfter.Time)
			}
			line(crt, "Issued", text)
		case failed:
			s.failed, rc.Result, rc.Message = true, RenewFailed, msg
			pending--
			line(crt, "Failed", msg)
		default:
			st := "Issuing"
			var msgNow string
			if cnd := crt.Condition(certmanager.ConditionIssuing); cnd != nil {
				msgNow = cnd.Message
			} else if r := crt.Condition(certmanager.ConditionReady); r != nil {
				st, msgNow = "Waiting", "Ready="+r.Status+": "+r.Message
			}
			if msgNow != s.message {
				line(crt, st, msgNow)
			}
			s.message = msgNow
		}
	}
	var failed []string
	for _, rc := range report.Certificates {
		if rc.Result == RenewFailed {
			failed = append(failed, fmt.Sprintf("Certificate %s/%s: %s", rc.Namespace, rc.Name, rc.Message))
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("issuance failed: %s (cert-manager retries with a back-off; `kubectl describe certificaterequests -n %s` says more)",
			strings.Join(failed, "; "), report.Certificates[0].Namespace)}
	}
	return nil
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
