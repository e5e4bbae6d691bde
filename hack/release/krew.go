package main

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/image"
)

// The krew plugin manifest (krew.sigs.k8s.io, apiVersion krew.googlecontainertools.github.com/v1alpha2):
// only the fields we set.
type krewPlugin struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   krewMetadata   `json:"metadata"`
	Spec       krewPluginSpec `json:"spec"`
}

type krewMetadata struct {
	Name string `json:"name"`
}

type krewPluginSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Caveats          string         `json:"caveats,omitempty"`
	Platforms        []krewPlatform `json:"platforms"`
}

type krewPlatform struct {
	Selector krewSelector `json:"selector"`
	URI      string       `json:"uri"`
	Sha256   string       `json:"sha256"`
	Bin      string       `json:"bin"`
	Files    []krewFile   `json:"files"`
}

type krewSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type krewFile struct {
	From string `json:"from"`
	To   string `json:"to"`
}

const (
	pluginBinary = "kubectl-certrollout"
	// completionShim is what kubectl (1.26 and later) runs to complete `kubectl certrollout <TAB>`.
	completionShim = "kubectl_complete-certrollout"
)

// pluginArchive is one kubectl-certrollout archive: its platform, file name and sha256.
type pluginArchive struct {
	platform, name, sha256 string
}

// krewManifest is certrollout.yaml for the krew index, one platform per plugin archive.
func krewManifest(version string, archives []pluginArchive) ([]byte, error) {
	p := krewPlugin{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2",
		Kind:       "Plugin",
		Metadata:   krewMetadata{Name: "certrollout"},
		Spec: krewPluginSpec{
			Version:          version,
			Homepage:         image.SourceURL,
			ShortDescription: "Restart workloads on renewed certificates",
			Description: "certrollout finds the workloads that use each certificate (Secrets, cert-manager\n" +
				"Certificates, CA bundles) and which of their pods still run on an old one, and restarts them\n" +
				"safely: once per renewal, rate-limited, inside maintenance windows, health-gated.\n" +
				"The plugin runs the same checks as the controller: check, plan, restart, status, renew.\n",
			Caveats: "Shell completion of `kubectl certrollout` (kubectl 1.26 or later) needs\n" +
				completionShim + " on your PATH; it is installed next to the plugin:\n" +
				"  ln -s \"$(dirname \"$(readlink -f \"$(command -v " + pluginBinary + ")\")\")/" + completionShim + "\" \\\n" +
				"    \"$HOME/.krew/bin/" + completionShim + "\"\n",
		},
	}
	for _, a := range archives {
		goos, goarch, ok := strings.Cut(a.platform, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q is not os/arch", a.platform)
		}
		p.Spec.Platforms = append(p.Spec.Platforms, krewPlatform{
			Selector: krewSelector{MatchLabels: map[string]string{"os": goos, "arch": goarch}},
			URI:      fmt.Sprintf("%s/releases/download/%s/%s", image.SourceURL, version, a.name),
			Sha256:   a.sha256,
			Bin:      pluginBinary,
			Files: []krewFile{
				{From: pluginBinary, To: "."},
				{From: completionShim, To: "."},
				{From: "LICENSE", To: "."},
			},
		})
	}
	return yaml.Marshal(p)
}
