package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestUnpackWritesThePlatformsFileSystemWithItsModes(t *testing.T) {
	w := writeTestImage(t)
	for _, p := range Platforms {
		t.Run(p, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "rootfs")
			if err := Unpack(w.layout, p, dest); err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(filepath.Join(dest, "certrollout"))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(w.opts.Binaries[p])
			if !bytes.Equal(bin, want) {
				t.Errorf("/certrollout is not the %s binary", p)
			}
			modes := map[string]fs.FileMode{
				"certrollout":      0o755,
				"etc":              fs.ModeDir | 0o755,
				"etc/passwd":       0o644,
				"etc/group":        0o644,
				"home/nonroot":     fs.ModeDir | 0o700,
				"licenses/LICENSE": 0o644,
				"tmp":              fs.ModeDir | fs.ModeSticky | 0o777,
			}
			for name, mode := range modes {
				st, err := os.Lstat(filepath.Join(dest, name))
				if err != nil {
					t.Error(err)
					continue
				}
				if st.Mode() != mode {
					t.Errorf("/%s: mode %s, want %s", name, st.Mode(), mode)
				}
				if !st.ModTime().Equal(testCreated) {
					t.Errorf("/%s: mtime %s, want %s", name, st.ModTime(), testCreated)
				}
			}
			if os.Geteuid() == 0 {
				st, _ := os.Stat(filepath.Join(dest, "home/nonroot"))
				if sys, ok := st.Sys().(*syscall.Stat_t); ok && (sys.Uid != 65532 || sys.Gid != 65532) {
					t.Errorf("/home/nonroot owned by %d:%d, want 65532:65532 (unpacked as root)", sys.Uid, sys.Gid)
				}
			}
			// Unpacking again over the same folder replaces rather than fails.
			if err := Unpack(w.layout, p, dest); err != nil {
				t.Errorf("unpacking a second time: %v", err)
			}
		})
	}
	if err := Unpack(w.layout, "linux/s390x", t.TempDir()); err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("unpacking a platform the image lacks: %v, want an error naming it", err)
	}
}

// layoutOf writes a linux/amd64 image with one layer per list of tar entries (files hold "x"s), the
// first list the lowest layer.
func layoutOf(t *testing.T, layers ...[]*tar.Header) string {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, entries := range layers {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				_, _ = tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "layout")
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	if err := WriteLayout(dir, idx, Options{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// An entry trying to reach outside is refused by Unpack, or dropped by go-containerregistry's Extract
// (which skips links that climb out and anything under a non-folder); either way nothing lands outside.
func TestUnpackNeverWritesOutsideTheDestination(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside") // a neighbour of the destination the entries try to reach
	dest := filepath.Join(base, "rootfs")
	planted := &tar.Header{Name: "link/planted", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	cases := map[string][][]*tar.Header{
		"a file under an absolute symbolic link, in one layer": {{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}, planted,
		}},
		"a file under an absolute symbolic link of a lower layer": {
			{{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}},
			{planted},
		},
		"a file under a relative link that climbs out": {{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside"}, planted,
		}},
		"a hard link to a file outside": {{
			{Name: "planted", Typeflag: tar.TypeLink, Linkname: "../outside/secret"},
		}},
		"a name that climbs out": {{
			{Name: "../outside/planted", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		}},
		"an absolute name": {{
			{Name: filepath.Join(outside, "planted"), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		}},
	}
	for name, layers := range cases {
		t.Run(name, func(t *testing.T) {
			for _, d := range []string{outside, dest} {
				if err := os.RemoveAll(d); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Unpack(layoutOf(t, layers...), "linux/amd64", dest)
			t.Logf("Unpack: %v", err)
			if name == "a name that climbs out" && err == nil {
				t.Error("Unpack succeeded; Extract refuses the name, and Unpack must say so rather than unpack a part")
			}
			found, _ := os.ReadDir(outside)
			if len(found) != 1 || found[0].Name() != "secret" {
				t.Errorf("the folder outside holds %v after unpacking, want only its secret", found)
			}
			if st, err := os.Stat(filepath.Join(outside, "secret")); err != nil || st.Sys().(*syscall.Stat_t).Nlink != 1 {
				t.Errorf("the secret outside was linked into the destination (%v)", err)
			}
		})
	}
}

func TestNoLinkBetweenFindsASymbolicLinkAmongTheParents(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(root, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := noLinkBetween(root, filepath.Join(root, "a", "link", "c", "file")); err == nil {
		t.Error("a path through a/link was allowed")
	}
	for _, ok := range []string{"a/b/file", "a/new/file", "file", "a/link"} {
		if err := noLinkBetween(root, filepath.Join(root, ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestTheRealBinaryRunsFromTheUnpackedImage builds certrollout as a release does (static, trimmed,
// stamped), puts it in an image, unpacks the host's platform and runs `/certrollout version` from it.
func TestTheRealBinaryRunsFromTheUnpackedImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certrollout")
	}
	host := runtime.GOOS + "/" + runtime.GOARCH
	if host != "linux/amd64" && host != "linux/arm64" {
		t.Skipf("the image is for Linux; this host is %s", host)
	}
	bin := filepath.Join(t.TempDir(), "certrollout")
	pkg := "github.com/certrollout/certrollout/internal/version."
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "-ldflags",
		"-s -w -X "+pkg+"gitVersion=v0.1.0 -X "+pkg+"gitCommit=0123456 -X "+pkg+"buildDate=2026-11-27T12:30:00Z",
		"github.com/certrollout/certrollout/cmd/certrollout")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	o := testOptions(t)
	o.Binaries = map[string]string{host: bin}
	idx := mustBuild(t, o)
	dir := t.TempDir()
	if err := WriteLayout(filepath.Join(dir, "image"), idx, o); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := Unpack(filepath.Join(dir, "image"), host, root); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "certrollout"), "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("/certrollout version: %v", err)
	}
	var info struct{ Version, GitCommit, BuildDate, Platform string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("version -o json printed %q: %v", out, err)
	}
	if info.Version != "v0.1.0" || info.GitCommit != "0123456" || info.BuildDate != "2026-11-27T12:30:00Z" || info.Platform != host {
		t.Errorf("the unpacked binary reports %+v", info)
	}
	// Static: no interpreter to find in an image that has none.
	if elf, err := os.ReadFile(filepath.Join(root, "certrollout")); err == nil && bytes.Contains(elf[:4096], []byte("ld-linux")) {
		t.Error("the binary names a dynamic loader: not static")
	}
}
