package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Unpack writes the root file system of the image for platform ("linux/amd64") in the OCI layout at
// layoutDir into dest, creating dest if needed: the layers flattened (mutate.Extract applies whiteouts),
// with their permission bits (sticky /tmp included) and modification times. Owners are applied only when
// running as root, as tar does. Entries that would land outside dest, or be written through a symbolic
// link, are refused; devices and other special files are skipped (certrollout's image has none).
func Unpack(layoutDir, platform, dest string) error {
	img, err := FromLayout(layoutDir, platform)
	if err != nil {
		return err
	}
	// A root file system's folders are world-traversable: the image's user is not root.
	if err := os.MkdirAll(dest, 0o755); err != nil { //nolint:gosec // see above
		return err
	}
	root, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()

	var dirs []*tar.Header // modes and times are applied last: creating children would change them
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// Extract closes its tar before it reports an error (an unsafe name, a layer that does not
			// match its digest), so the tar ends cleanly and the error comes on the next read.
			if _, err := io.Copy(io.Discard, rc); err != nil {
				return fmt.Errorf("reading the %s file system: %w", platform, err)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("reading the %s file system: %w", platform, err)
		}
		target, err := within(root, hdr.Name)
		if err != nil {
			return err
		}
		if err := noLinkBetween(root, target); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, hdr)
		case tar.TypeReg:
			if err := writeFile(target, tr, hdr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := replace(target); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
			if err := chown(target, hdr, true); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := within(root, hdr.Linkname)
			if err != nil {
				return err
			}
			if err := replace(target); err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			continue
		}
	}
	// Deepest first, so setting a parent's time comes after its children are complete.
	slices.Reverse(dirs)
	for _, hdr := range dirs {
		target, _ := within(root, hdr.Name)
		// Owner first: chown clears setuid and setgid bits.
		if err := chown(target, hdr, false); err != nil {
			return err
		}
		if err := os.Chmod(target, permissions(hdr)); err != nil {
			return err
		}
		if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// within joins name onto root, refusing names that climb out of it.
func within(root, name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash("/" + name))
	target := filepath.Join(root, clean)
	if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
		return "", fmt.Errorf("layer entry %q is outside the destination", name)
	}
	return target, nil
}

// noLinkBetween refuses a target whose parent folders (below root) include a symbolic link, which an
// entry could otherwise use to write outside root.
func noLinkBetween(root, target string) error {
	rel, err := filepath.Rel(root, filepath.Dir(target))
	if err != nil || rel == "." {
		return err
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("layer entry %s would be written through the symbolic link %s", target, p)
		}
	}
	return nil
}

func writeFile(target string, r io.Reader, hdr *tar.Header) error {
	// A folder the layer does not list gets the mode a root file system's folders have.
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil { //nolint:gosec // see above
		return err
	}
	if err := replace(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Owner first: chown clears setuid and setgid bits. Chmod is not subject to the umask.
	if err := chown(target, hdr, false); err != nil {
		return err
	}
	if err := os.Chmod(target, permissions(hdr)); err != nil {
		return err
	}
	return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
}

// replace removes what is at target unless it is a folder, so an entry overwrites an earlier unpack.
func replace(target string) error {
	st, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a folder; the layer has a file there", target)
	}
	return os.Remove(target)
}

func chown(target string, hdr *tar.Header, link bool) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if link {
		return os.Lchown(target, hdr.Uid, hdr.Gid)
	}
	return os.Chown(target, hdr.Uid, hdr.Gid)
}

// permissions are the mode bits of an entry that chmod sets.
func permissions(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid)
}
