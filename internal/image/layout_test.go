package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// written is an image built, written as a layout and archived, in a temporary folder.
type written struct {
	opts    Options
	digests Digests
	layout  string
	archive string
}

func writeTestImage(t *testing.T) written {
	t.Helper()
	o := testOptions(t)
	idx := mustBuild(t, o)
	d, err := DigestsOf(idx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := written{opts: o, digests: d, layout: filepath.Join(dir, "image"), archive: filepath.Join(dir, "certrollout-v0.1.0-image.oci.tar")}
	if err := WriteLayout(w.layout, idx, o); err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(w.layout, w.archive, o); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestTheLayoutReadsBackAsOneNamedMultiPlatformIndex(t *testing.T) {
	w := writeTestImage(t)
	p, err := layout.FromPath(w.layout)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1 (the multi-platform index)", len(m.Manifests))
	}
	desc := m.Manifests[0]
	if desc.MediaType != types.OCIImageIndex || desc.Digest != w.digests.Index {
		t.Errorf("index.json names %s %s, want %s %s", desc.MediaType, desc.Digest, types.OCIImageIndex, w.digests.Index)
	}
	wantNames := map[string]string{
		"org.opencontainers.image.ref.name": "v0.1.0",
		"io.containerd.image.name":          "ghcr.io/certrollout/certrollout:v0.1.0",
	}
	if !sameMap(desc.Annotations, wantNames) {
		t.Errorf("index.json annotations %v, want %v", desc.Annotations, wantNames)
	}
	idx, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Every blob is present and matches its digest and size.
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the layout's index does not validate: %v", err)
	}
	got, err := DigestsOf(idx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Platforms) != 2 {
		t.Errorf("read back %d platforms, want 2", len(got.Platforms))
	}
	for p, d := range w.digests.Platforms {
		if got.Platforms[p] != d {
			t.Errorf("%s: read back %s, built %s", p, got.Platforms[p], d)
		}
	}
	layoutFile, err := os.ReadFile(filepath.Join(w.layout, "oci-layout"))
	if err != nil || !strings.Contains(string(layoutFile), `"imageLayoutVersion": "1.0.0"`) {
		t.Errorf("oci-layout: %q, %v", layoutFile, err)
	}
}

type archived struct {
	hdr  *tar.Header
	body []byte
}

func readArchive(t *testing.T, path string) []archived {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []archived
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s is not a valid tar: %v", path, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, archived{hdr, body})
	}
}

func TestTheArchiveIsTheLayoutPlusADockerManifest(t *testing.T) {
	w := writeTestImage(t)
	entries := readArchive(t, w.archive)

	var names []string
	files := map[string][]byte{}
	for _, e := range entries {
		names = append(names, e.hdr.Name)
		if !e.hdr.ModTime.Equal(testCreated) || e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("%s: mtime %s owner %d:%d, want %s and 0:0", e.hdr.Name, e.hdr.ModTime, e.hdr.Uid, e.hdr.Gid, testCreated)
		}
		if e.hdr.Typeflag == tar.TypeReg {
			files[e.hdr.Name] = e.body
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %q", names)
	}

	// Exactly the layout's files, byte for byte, and manifest.json.
	want := map[string]bool{"manifest.json": true}
	err := filepath.WalkDir(w.layout, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(w.layout, p)
		want[filepath.ToSlash(rel)] = true
		onDisk, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(files[filepath.ToSlash(rel)], onDisk) {
			t.Errorf("%s: the archive's copy differs from the layout's", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for n := range files {
		if !want[n] {
			t.Errorf("the archive has %s, which the layout has not", n)
		}
		delete(want, n)
	}
	for n := range want {
		t.Errorf("the archive lacks %s", n)
	}
	for _, required := range []string{"oci-layout", "index.json", "blobs/sha256/" + w.digests.Index.Hex} {
		if _, ok := files[required]; !ok {
			t.Errorf("the archive lacks %s", required)
		}
	}

	// manifest.json is what Docker's classic store reads: one entry, the linux/amd64 image, tagged.
	var manifest []dockerManifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{"ghcr.io/certrollout/certrollout:v0.1.0"}) {
		t.Fatalf("manifest.json %+v, want one entry tagged ghcr.io/certrollout/certrollout:v0.1.0", manifest)
	}
	amd64, err := FromLayout(w.layout, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := amd64.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest[0].Config != "blobs/sha256/"+m.Config.Digest.Hex || len(manifest[0].Layers) != 1 ||
		manifest[0].Layers[0] != "blobs/sha256/"+m.Layers[0].Digest.Hex {
		t.Errorf("manifest.json %+v does not point at the linux/amd64 config %s and layer %s", manifest[0], m.Config.Digest, m.Layers[0].Digest)
	}

	// go-containerregistry's reader of `docker save` tarballs (crane push/load of a tar file) loads it:
	// the config is the amd64 config, and each gzip layer's diff ID matches the config's, which is
	// what `docker load` checks.
	tag, err := name.NewTag("ghcr.io/certrollout/certrollout:v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(w.archive, &tag)
	if err != nil {
		t.Fatalf("reading the archive as a docker tarball: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("the docker view of the archive does not validate: %v", err)
	}
	name, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if name != m.Config.Digest {
		t.Errorf("the docker view has config %s, want the amd64 config %s", name, m.Config.Digest)
	}
}

func TestPushingTheLayoutToARegistryAndPullingByTagGivesTheSameDigests(t *testing.T) {
	w := writeTestImage(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Host + "/certrollout/certrollout:v0.1.0")
	if err != nil {
		t.Fatal(err)
	}

	// As `crane push dist/image <ref>` does: the layout's single index.json entry is what is pushed.
	top, err := layout.ImageIndexFromPath(w.layout)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("crane push needs one index in index.json, found %+v", m.Manifests)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing: %v", err)
	}

	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pulling by tag: %v", err)
	}
	d, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d != w.digests.Index {
		t.Errorf("pulled index %s, pushed %s", d, w.digests.Index)
	}
	if err := validate.Index(pulled); err != nil {
		t.Errorf("the pulled index does not validate (blobs missing or altered): %v", err)
	}
	// A client on arm64 resolves the tag to the arm64 manifest.
	arm64, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := arm64.Digest(); d != w.digests.Platforms["linux/arm64"] {
		t.Errorf("linux/arm64 pulled as %s, built as %s", d, w.digests.Platforms["linux/arm64"])
	}
}
