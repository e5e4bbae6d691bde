package cli

import (
	"fmt"

	"github.com/certrollout/certrollout/internal/certmanager"
)

// certName is how lines name a Certificate: kubectl's resource/name, with -n under -A so the line can
// be pasted into kubectl.
func (o *RenewOptions) certName(c *certmanager.Certificate) string {
	s := "certificate.cert-manager.io/" + c.Name
	if o.AllNamespaces {
		s += " -n " + c.Namespace
	}
	return s
}

func revisionString(r *int) string {
	if r == nil {
		return "never issued"
	}
	return fmt.Sprintf("revision %d", *r)
}
