package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var testCreated = time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)

// fakeBinaries writes one distinct stand-in binary per platform: most tests need bytes to find again in
// the layer, not a program.
func fakeBinaries(t *testing.T, platforms ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, p := range platforms {
		path := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		body := "#!/bin/false\n# stand-in certrollout for " + p + "\n" + strings.Repeat(p, 1000)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil { // the layer sets 0755 whatever the source
			t.Fatal(err)
		}
		out[p] = path
	}
	return out
}

func testOptions(t *testing.T) Options {
	return Options{
		Version:  "v0.1.0",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Created:  testCreated,
		License:  []byte("Apache License\nVersion 2.0, January 2004\n"),
		Binaries: fakeBinaries(t, Platforms...),
	}
}

func mustBuild(t *testing.T, o Options) v1.ImageIndex {
	t.Helper()
	idx, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func wantAnnotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.version":     "v0.1.0",
		"org.opencontainers.image.revision":    "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.source":      "https://github.com/certrollout/certrollout",
		"org.opencontainers.image.url":         "https://github.com/certrollout/certrollout",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.title":       "certrollout",
		"org.opencontainers.image.description": Description,
		"org.opencontainers.image.created":     "2026-11-27T12:30:00Z",
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestTheIndexHasOneOCIImagePerPlatformWithOCIMediaTypesThroughout(t *testing.T) {
	idx := mustBuild(t, testOptions(t))
	if err := validate.Index(idx); err != nil {
		t.Fatalf("go-containerregistry's validation: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", m.MediaType, types.OCIImageIndex)
	}
	if !sameMap(m.Annotations, wantAnnotations()) {
		t.Errorf("index annotations\n%v\nwant\n%v", m.Annotations, wantAnnotations())
	}
	var platforms []string
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		platforms = append(platforms, desc.Platform.String())
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", desc.Platform, desc.MediaType)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		man, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if man.Config.MediaType != types.OCIConfigJSON {
			t.Errorf("%s: config media type %s", desc.Platform, man.Config.MediaType)
		}
		if len(man.Layers) != 1 || man.Layers[0].MediaType != types.OCILayer {
			t.Errorf("%s: layers %+v, want one %s", desc.Platform, man.Layers, types.OCILayer)
		}
		if !sameMap(man.Annotations, wantAnnotations()) {
			t.Errorf("%s: manifest annotations %v", desc.Platform, man.Annotations)
		}
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
}

func TestTheConfigRunsTheControllerAsNonRoot(t *testing.T) {
	idx := mustBuild(t, testOptions(t))
	for _, p := range Platforms {
		want, _ := v1.ParsePlatform(p)
		img, err := findImage(idx, *want)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != want.OS || cfg.Architecture != want.Architecture {
			t.Errorf("%s: config says %s/%s", p, cfg.OS, cfg.Architecture)
		}
		if !cfg.Created.Equal(testCreated) {
			t.Errorf("%s: created %s, want %s", p, cfg.Created, testCreated)
		}
		if len(cfg.History) != 1 || !cfg.History[0].Created.Equal(testCreated) {
			t.Errorf("%s: history %+v, want one entry created %s", p, cfg.History, testCreated)
		}
		c := cfg.Config
		if c.User != "65532:65532" {
			t.Errorf("%s: user %q", p, c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/certrollout"}) || !slices.Equal(c.Cmd, []string{"controller"}) {
			t.Errorf("%s: entrypoint %q cmd %q", p, c.Entrypoint, c.Cmd)
		}
		if c.WorkingDir != "/" || !slices.Equal(c.Env, []string{"PATH=/"}) {
			t.Errorf("%s: working dir %q env %q", p, c.WorkingDir, c.Env)
		}
		if !sameMap(c.Labels, wantAnnotations()) {
			t.Errorf("%s: labels\n%v\nwant\n%v", p, c.Labels, wantAnnotations())
		}
	}
}

// layerEntry is what a test checks of one tar entry.
type layerEntry struct {
	name     string
	typeflag byte
	mode     int64
	uid, gid int
	body     string
}

func readLayer(t *testing.T, img v1.Image) []layerEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var out []layerEntry
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(testCreated) {
			t.Errorf("%s: mtime %s, want %s", hdr.Name, hdr.ModTime, testCreated)
		}
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: owner names %q:%q, want none (numeric only)", hdr.Name, hdr.Uname, hdr.Gname)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerEntry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, string(body)})
	}
}

func TestTheLayerHoldsTheBinaryUsersTmpAndLicenseWithFixedOwnersAndModes(t *testing.T) {
	o := testOptions(t)
	idx := mustBuild(t, o)
	for _, p := range Platforms {
		want, _ := v1.ParsePlatform(p)
		img, err := findImage(idx, *want)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := os.ReadFile(o.Binaries[p])
		if err != nil {
			t.Fatal(err)
		}
		got := readLayer(t, img)
		wantEntries := []layerEntry{
			{"certrollout", tar.TypeReg, 0o755, 0, 0, string(bin)},
			{"etc/", tar.TypeDir, 0o755, 0, 0, ""},
			{"etc/group", tar.TypeReg, 0o644, 0, 0, "root:x:0:\nnonroot:x:65532:\n"},
			{"etc/passwd", tar.TypeReg, 0o644, 0, 0,
				"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
			{"home/", tar.TypeDir, 0o755, 0, 0, ""},
			{"home/nonroot/", tar.TypeDir, 0o700, 65532, 65532, ""},
			{"licenses/", tar.TypeDir, 0o755, 0, 0, ""},
			{"licenses/LICENSE", tar.TypeReg, 0o644, 0, 0, string(o.License)},
			{"tmp/", tar.TypeDir, 0o1777, 0, 0, ""},
		}
		if len(got) != len(wantEntries) {
			names := make([]string, 0, len(got))
			for _, e := range got {
				names = append(names, e.name)
			}
			t.Fatalf("%s: layer entries %q, want %d", p, names, len(wantEntries))
		}
		for i := range wantEntries {
			if got[i] != wantEntries[i] {
				g, w := got[i], wantEntries[i]
				g.body, w.body = shorten(g.body), shorten(w.body)
				t.Errorf("%s: entry %d\n got %+v\nwant %+v", p, i, g, w)
			}
		}
	}
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestTheSameInputsGiveTheSameDigestsAndADifferentTimeDoesNot(t *testing.T) {
	o := testOptions(t)
	first, err := DigestsOf(mustBuild(t, o))
	if err != nil {
		t.Fatal(err)
	}
	second, err := DigestsOf(mustBuild(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if first.Index != second.Index {
		t.Errorf("two builds of the same inputs: index %s, then %s", first.Index, second.Index)
	}
	for p, d := range first.Platforms {
		if second.Platforms[p] != d {
			t.Errorf("%s: manifest %s, then %s", p, d, second.Platforms[p])
		}
	}

	// The written forms are as stable as the index: two layouts and archives, byte for byte.
	dir := t.TempDir()
	var archives [2][]byte
	for i := range archives {
		layoutDir, archive := filepath.Join(dir, "layout"), filepath.Join(dir, "image.oci.tar")
		if err := WriteLayout(layoutDir, mustBuild(t, o), o); err != nil {
			t.Fatal(err)
		}
		if err := WriteArchive(layoutDir, archive, o); err != nil {
			t.Fatal(err)
		}
		if archives[i], err = os.ReadFile(archive); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Error("two archives of the same inputs differ")
	}

	// The test could fail: a different creation time is a different image.
	later := o
	later.Created = testCreated.Add(time.Second)
	third, err := DigestsOf(mustBuild(t, later))
	if err != nil {
		t.Fatal(err)
	}
	if third.Index == first.Index {
		t.Error("a different creation time gave the same index digest")
	}
}

func TestOptionsThatCannotMakeAnImageAreRefused(t *testing.T) {
	cases := map[string]func(*Options){
		"a version that is no image tag":        func(o *Options) { o.Version = "v0.1.0+build/1" },
		"no revision":                           func(o *Options) { o.Revision = "" },
		"no creation time":                      func(o *Options) { o.Created = time.Time{} },
		"no license":                            func(o *Options) { o.License = nil },
		"no binaries":                           func(o *Options) { o.Binaries = nil },
		"a platform that does not parse":        func(o *Options) { o.Binaries = map[string]string{"linux/amd64/v1/x": "x"} },
		"a binary that does not exist":          func(o *Options) { o.Binaries = map[string]string{"linux/amd64": "/nonexistent"} },
		"a binary that is a folder, not a file": func(o *Options) { o.Binaries = map[string]string{"linux/amd64": t.TempDir()} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			change(&o)
			if _, err := Build(o); err == nil {
				t.Error("Build succeeded")
			}
		})
	}
}
