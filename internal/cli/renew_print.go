package cli

import (
	"fmt"
	"io"
	"time"
)

// certName is how lines name a Certificate: kubectl's resource/name, with -n under -A so the line can
// be pasted into kubectl.
func (o *RenewOptions) certName(namespace, name string) string {
	s := "certificate.cert-manager.io/" + name
	if o.AllNamespaces {
		s += " -n " + namespace
	}
	return s
}

func revisionString(r *int) string {
	if r == nil {
		return "never issued"
	}
	return fmt.Sprintf("revision %d", *r)
}

// renewLine is one change of a Certificate under renew --wait: its state (Issuing, Waiting, Issued,
// Failed) and what cert-manager says.
type renewLine struct {
	state, text string
}

// renewLines prints renewLines with a timestamp and the Certificate's name, the names aligned:
//
//	2026-11-27T16:06:48Z  certificate.cert-manager.io/api  Issued    revision 3, Ready, valid until ...
type renewLines struct {
	w     io.Writer
	width int
}

func newRenewLines(w io.Writer, names []string) *renewLines {
	l := &renewLines{w: w}
	for _, n := range names {
		l.width = max(l.width, len(n))
	}
	return l
}

func (l *renewLines) print(at time.Time, name string, line renewLine) {
	fmt.Fprintf(l.w, "%s  %-*s  %-8s  %s\n", timestamp(at), l.width, name, line.state, line.text)
}
