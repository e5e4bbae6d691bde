// Package tenancy tests what a tenant — someone who may only create certrollout.io objects in their own
// namespace — can and cannot do to the rest of the cluster, and the faults that must not lose state, on
// the real API server with certrollout's shipped CRDs, RBAC and admission policy.
package tenancy

import (
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	clustertest.Main(m)
}

// admin is a direct client with the cluster's admin credentials that knows certrollout's types.
func admin(t testing.TB) client.Client {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	cl, err := client.New(c.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func scheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := api.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}
