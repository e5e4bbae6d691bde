package chart

import (
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/certrollout/certrollout/internal/charttest"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	clustertest.Main(m)
}

// kubeVersion and quiet are charttest's: the local cluster's version, and Helm's logging discarded.
const kubeVersion = charttest.KubeVersion

var quiet = charttest.Quiet

// repoRoot is the checkout's root.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// chartDir is charts/certrollout.
func chartDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "charts", "certrollout")
}

// loadChart loads the chart from its folder, as `helm install ./charts/certrollout` does.
func loadChart(t testing.TB) *chartv2.Chart {
	t.Helper()
	ch, err := charttest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// values parses a YAML document of values.
func values(t testing.TB, doc string) map[string]any {
	t.Helper()
	v, err := charttest.Values(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rendered is a chart rendered for one release.
type rendered struct{ charttest.Rendered }

// render renders the chart client-side, as `helm template` does (schema validation included), for
// release "certrollout" in namespace ns.
func render(t testing.TB, ns string, vals map[string]any) rendered {
	t.Helper()
	r, err := tryRender(t, ns, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// renderRelease is render for a release of another name.
func renderRelease(t testing.TB, name, ns string, vals map[string]any) rendered {
	t.Helper()
	r, err := tryRenderRelease(t, name, ns, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryRender is render, returning the error instead of failing the test.
func tryRender(t testing.TB, ns string, vals map[string]any) (rendered, error) {
	t.Helper()
	return tryRenderRelease(t, "certrollout", ns, vals)
}

func tryRenderRelease(t testing.TB, name, ns string, vals map[string]any) (rendered, error) {
	t.Helper()
	r, err := charttest.Render(loadChart(t), name, ns, vals)
	return rendered{r}, err
}

// decode splits a manifest stream into objects.
func decode(manifest string) ([]*unstructured.Unstructured, error) { return charttest.Decode(manifest) }

// key names an object: Kind/namespace/name (namespace empty for cluster-scoped ones).
func key(u *unstructured.Unstructured) string { return charttest.Key(u) }

// keys lists the objects' keys, sorted.
func (r rendered) keys() []string { return r.Keys() }

// get returns the object of that kind and name (any namespace), failing the test when there is none.
func (r rendered) get(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := r.Get(kind, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// ofKind returns the objects of a kind.
func (r rendered) ofKind(kind string) []*unstructured.Unstructured { return r.OfKind(kind) }

// manifest is the objects as one YAML stream, for applying.
func (r rendered) manifest(t testing.TB, skip func(*unstructured.Unstructured) bool) []byte {
	t.Helper()
	data, err := r.YAML(skip)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
