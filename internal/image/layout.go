package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// WriteLayout replaces dir with an OCI image layout holding idx. Its index.json has one entry, the
// multi-platform index, named by version (org.opencontainers.image.ref.name, what skopeo's
// oci:dir:<version> and oci-archive:file:<version> match) and by full reference (io.containerd.image.name,
// what containerd and Docker ≥ 25 tag the loaded image as).
func WriteLayout(dir string, idx v1.ImageIndex, o Options) error {
	// Stale blobs or a second index.json entry from an earlier build would make the layout differ.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		AnnotationRefName:   o.Version,
		AnnotationImageName: o.Ref(),
	}))
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// dockerManifestEntry is one image of the manifest.json that `docker save` writes and the classic
// (non-containerd) image store of `docker load` requires.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerPlatform is the platform the archive's manifest.json describes: a manifest.json entry has no
// platform, and two entries with one tag would leave the tag on whichever loaded last.
const dockerPlatform = "linux/amd64"

// WriteArchive packs the OCI layout in layoutDir into a tar at archive: the layout's files and folders,
// sorted, owned by root, all with mtime o.Created. It adds a docker-compatible manifest.json for the
// linux/amd64 image, as `docker save` does since Docker 25, so Docker's classic image store loads the
// archive too; OCI readers (skopeo, containerd, crane after untar) use index.json and ignore it.
func WriteArchive(layoutDir, archive string, o Options) error {
	manifestJSON, err := dockerManifest(layoutDir, o)
	if err != nil {
		return err
	}
	type entry struct {
		name string // slash-separated, directories end in "/"
		path string // on disk; empty for manifest.json
	}
	entries := []entry{{name: "manifest.json"}}
	err = filepath.WalkDir(layoutDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(layoutDir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			name += "/"
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is neither a file nor a folder", p)
		case name == "manifest.json":
			return fmt.Errorf("%s already has a manifest.json", layoutDir)
		}
		entries = append(entries, entry{name: name, path: p})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, e := range entries {
		if err := archiveEntry(tw, e.name, e.path, manifestJSON, o.Created); err != nil {
			_ = f.Close()
			return fmt.Errorf("archiving %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func archiveEntry(tw *tar.Writer, name, src string, manifestJSON []byte, created time.Time) error {
	hdr := &tar.Header{Name: name, ModTime: created.UTC().Truncate(time.Second)}
	if strings.HasSuffix(name, "/") {
		hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		return tw.WriteHeader(hdr)
	}
	hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o644
	if src == "" {
		hdr.Size = int64(len(manifestJSON))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(manifestJSON)
		return err
	}
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	st, err := r.Stat()
	if err != nil {
		return err
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, r)
	return err
}

// dockerManifest is manifest.json for the linux/amd64 image of the layout: its config and layer blobs by
// their paths in the archive, tagged o.Ref(). Docker decompresses gzip layers on load and checks their
// diff IDs against the config, which the OCI blobs satisfy as they are.
func dockerManifest(layoutDir string, o Options) ([]byte, error) {
	img, err := FromLayout(layoutDir, dockerPlatform)
	if err != nil {
		return nil, fmt.Errorf("docker manifest.json: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	entry := dockerManifestEntry{
		Config:   blobPath(m.Config.Digest),
		RepoTags: []string{o.Ref()},
		Layers:   []string{},
	}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, blobPath(l.Digest))
	}
	return json.Marshal([]dockerManifestEntry{entry})
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// FromLayout returns the image for platform ("linux/arm64") from the OCI layout in dir, looking through
// nested indexes as the layouts WriteLayout writes have one.
func FromLayout(dir, platform string) (v1.Image, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	img, err := findImage(idx, *want)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return img, nil
}

var errNoPlatform = errors.New("no image for the platform")

// findImage returns the one image for want in idx or the indexes it holds. A manifest without a platform
// matches when its config names the platform, as a single-platform index entry usually has none.
func findImage(idx v1.ImageIndex, want v1.Platform) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []v1.Image
	for _, desc := range m.Manifests {
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, err
			}
			img, err := findImage(child, want)
			if errors.Is(err, errNoPlatform) {
				continue
			}
			if err != nil {
				return nil, err
			}
			found = append(found, img)
		case desc.MediaType.IsImage():
			if desc.Platform != nil && !desc.Platform.Equals(want) {
				continue
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, err
			}
			if desc.Platform == nil {
				cfg, err := img.ConfigFile()
				if err != nil {
					return nil, err
				}
				if p := cfg.Platform(); p == nil || !p.Equals(want) {
					continue
				}
			}
			found = append(found, img)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %s", errNoPlatform, want.String())
	case 1:
		return found[0], nil
	default:
		digests := make([]string, 0, len(found))
		for _, img := range found {
			d, _ := partial.Digest(img)
			digests = append(digests, d.String())
		}
		return nil, fmt.Errorf("%d images for the platform %s: %s", len(found), want.String(), strings.Join(digests, ", "))
	}
}
