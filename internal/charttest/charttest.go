// Package charttest renders certrollout's Helm chart (charts/certrollout) with Helm's own Go code, as
// `helm template` does, for tests that check or run what the chart installs.
package charttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/localcluster"
)

// KubeVersion is the cluster version a client-side render presents (Helm would otherwise claim v1.20,
// below the chart's kubeVersion): the local cluster's.
const KubeVersion = "v1.34.4"

// Quiet discards Helm's own logging.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil)).Handler()

// Dir is charts/certrollout of the checkout that holds dir (usually ".").
func Dir(dir string) (string, error) {
	root, err := localcluster.FindRepoRoot(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "certrollout"), nil
}

// Load loads the chart as `helm install ./charts/certrollout` does.
func Load() (*chartv2.Chart, error) {
	dir, err := Dir(".")
	if err != nil {
		return nil, err
	}
	return loader.Load(dir)
}

// Values parses a YAML document of values.
func Values(doc string) (map[string]any, error) {
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return nil, fmt.Errorf("values %q: %w", doc, err)
	}
	return v, nil
}

// Rendered is the chart rendered for one release.
type Rendered struct {
	Objects  []*unstructured.Unstructured
	Notes    string
	Manifest string
}

// Render renders ch client-side (values schema checked) for release name in namespace ns.
func Render(ch *chartv2.Chart, name, ns string, vals map[string]any) (Rendered, error) {
	install := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(Quiet)))
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = name
	install.Namespace = ns
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return Rendered{}, err
	}
	install.KubeVersion = kv
	r, err := install.Run(ch, vals)
	if err != nil {
		return Rendered{}, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return Rendered{}, fmt.Errorf("helm returned a %T, not a release", r)
	}
	objs, err := Decode(rel.Manifest)
	if err != nil {
		return Rendered{}, err
	}
	return Rendered{Objects: objs, Notes: rel.Info.Notes, Manifest: rel.Manifest}, nil
}

// Decode splits a YAML or JSON stream into objects.
func Decode(manifest string) ([]*unstructured.Unstructured, error) {
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

// Key names an object: Kind/namespace/name (namespace empty when cluster-scoped).
func Key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// Keys lists the objects' keys, sorted.
func (r Rendered) Keys() []string {
	out := make([]string, 0, len(r.Objects))
	for _, u := range r.Objects {
		out = append(out, Key(u))
	}
	sort.Strings(out)
	return out
}

// Get returns the object of that kind and name (any namespace).
func (r Rendered) Get(kind, name string) (*unstructured.Unstructured, error) {
	for _, u := range r.Objects {
		if u.GetKind() == kind && u.GetName() == name {
			return u, nil
		}
	}
	return nil, fmt.Errorf("no %s %s among %v", kind, name, r.Keys())
}

// OfKind returns the objects of a kind.
func (r Rendered) OfKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range r.Objects {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// YAML is the objects skip does not reject, as one YAML stream for applying.
func (r Rendered) YAML(skip func(*unstructured.Unstructured) bool) ([]byte, error) {
	var b strings.Builder
	for _, u := range r.Objects {
		if skip != nil && skip(u) {
			continue
		}
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return []byte(b.String()), nil
}
