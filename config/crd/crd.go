// Package crd embeds certrollout's CustomResourceDefinitions (generated into bases/ by `make generate`)
// so tests, the demo and tools install exactly what `kubectl apply -k config/default` would.
package crd

import (
	"embed"
	"io/fs"
	"path"
	"sort"
)

//go:embed bases/*.yaml
var bases embed.FS

// Manifests returns each CRD manifest, by file name.
func Manifests() (map[string][]byte, error) {
	entries, err := fs.ReadDir(bases, "bases")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := bases.ReadFile(path.Join("bases", e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = data
	}
	return out, nil
}

// All returns every CRD manifest, in file name order.
func All() ([][]byte, error) {
	m, err := Manifests()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	all := make([][]byte, 0, len(names))
	for _, n := range names {
		all = append(all, m[n])
	}
	return all, nil
}
