package repo

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// The two ways to install name the same release: the chart's appVersion (its default image tag) and the
// image tag config/default sets for `kubectl apply -k`.
func TestTheChartAndTheKustomizeTreeInstallTheSameVersion(t *testing.T) {
	root := repoRoot(t)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, filepath.Join(root, "charts", "certrollout", "Chart.yaml"), &chart)
	var kustomization struct {
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	readYAML(t, filepath.Join(root, "config", "default", "kustomization.yaml"), &kustomization)
	if len(kustomization.Images) != 1 {
		t.Fatalf("config/default should set one image, sets %d", len(kustomization.Images))
	}
	img := kustomization.Images[0]
	if chart.AppVersion == "" || img.NewTag != chart.AppVersion {
		t.Errorf("config/default installs %s:%s but the chart's appVersion is %q: release both together", img.NewName, img.NewTag, chart.AppVersion)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path) //nolint:gosec // the repository's own files
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
