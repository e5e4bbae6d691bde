package clustertest

import (
	"context"
	"sync"
	"testing"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/config/crd"
)

var (
	crdsOnce sync.Once
	crdsErr  error
)

// InstallCRDs installs certrollout's CRDs in the package's cluster, once: tests then run against the API
// as it is shipped.
func InstallCRDs(t testing.TB) {
	t.Helper()
	c := Cluster(t)
	crdsOnce.Do(func() {
		all, err := crd.All()
		if err != nil {
			crdsErr = err
			return
		}
		crdsErr = c.InstallCRDs(context.Background(), api.GroupVersion.Group, all...)
	})
	if crdsErr != nil {
		t.Fatal(crdsErr)
	}
}
