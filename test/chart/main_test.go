package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	clustertest.Main(m)
}

// kubeVersion is what client-only renders and lint present as the cluster's version: Helm's test builds
// otherwise claim v1.20, below the chart's kubeVersion. It is the local cluster's.
const kubeVersion = "v1.34.4"

// quiet discards Helm's own logging.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil)).Handler()

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
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// values parses a YAML document of values.
func values(t testing.TB, doc string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("values %q: %v", doc, err)
	}
	return v
}

// rendered is a chart rendered for one release.
type rendered struct {
	objects []*unstructured.Unstructured
	notes   string
}

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
	install := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(quiet)))
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = name
	install.Namespace = ns
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	r, err := install.Run(loadChart(t), vals)
	if err != nil {
		return rendered{}, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("install returned a %T", r)
	}
	objs, err := decode(rel.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return rendered{objects: objs, notes: rel.Info.Notes}, nil
}

// decode splits a manifest stream into objects.
func decode(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// UnmarshalJSON keeps whole numbers as int64, as the API machinery does.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
}

// key names an object: Kind/namespace/name (namespace empty for cluster-scoped ones).
func key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// keys lists the objects' keys, sorted.
func (r rendered) keys() []string {
	var out []string
	for _, u := range r.objects {
		out = append(out, key(u))
	}
	sort.Strings(out)
	return out
}

// get returns the object of that kind and name (any namespace), failing the test when there is none.
func (r rendered) get(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range r.objects {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, r.keys())
	return nil
}

// ofKind returns the objects of a kind.
func (r rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range r.objects {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// manifest is the objects as one YAML stream, for applying.
func (r rendered) manifest(t testing.TB, skip func(*unstructured.Unstructured) bool) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, u := range r.objects {
		if skip != nil && skip(u) {
			continue
		}
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes()
}
