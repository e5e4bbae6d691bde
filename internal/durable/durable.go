// Package durable writes files so that a crash at any instant leaves either the old content or the new,
// whole, and never a file outside the folder it was given: every path is opened through an os.Root, so a
// symbolic link that leads out of the folder is an error, never followed.
//
// The pattern is the one write: a hidden temporary file in the same folder (a kubelet watching a
// manifests folder ignores dot-files), written, fsynced, renamed (or linked, when the name must not
// exist yet) over the final name, and the folder fsynced so the new entry survives a power cut.
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// WriteFile replaces name (slash-separated, relative to root) with data and mode.
func WriteFile(root *os.Root, name string, data []byte, mode fs.FileMode) error {
	return Write(root, name, mode, false, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WritePath is WriteFile for an absolute or relative host path: the file's own folder is the root, so
// only a link in the last element could lead elsewhere, and the rename replaces such a link itself.
func WritePath(p string, data []byte, mode fs.FileMode) error {
	root, err := os.OpenRoot(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer root.Close()
	return WriteFile(root, filepath.Base(p), data, mode)
}

// Write fills a temporary file beside name with fill, fsyncs it and puts it at name; with noReplace it
// is linked there instead of renamed, so an existing name is an error (fs.ErrExist) and is left alone.
// On failure no file has the final name and the temporary file is gone.
func Write(root *os.Root, name string, mode fs.FileMode, noReplace bool, fill func(io.Writer) error) error {
	tmp, err := TempName(name)
	if err != nil {
		return err
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer root.Remove(tmp) //nolint:errcheck // gone after a rename; a failed write leaves it behind otherwise
	if err := fillSynced(f, mode, fill); err != nil {
		return err
	}
	if noReplace {
		if err := root.Link(tmp, name); err != nil {
			return err
		}
	} else if err := root.Rename(tmp, name); err != nil {
		return err
	}
	if err := SyncDir(root, path.Dir(name)); err != nil {
		if noReplace {
			// Not known to be durable: nothing rather than a file that may vanish on a crash.
			return errors.Join(err, root.Remove(name))
		}
		return err
	}
	return nil
}

// WriteSynced writes name itself (no temporary file) with exactly mode and fsyncs it; the caller renames
// it into place later with Rename. For writers that keep a staged file on purpose, so that a run killed
// between the two steps can be completed.
func WriteSynced(root *os.Root, name string, data []byte, mode fs.FileMode) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	return fillSynced(f, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Rename renames from to to within root and fsyncs to's folder.
func Rename(root *os.Root, from, to string) error {
	if err := root.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(root, path.Dir(to))
}

// SyncDir fsyncs the folder dir ("." for root itself), so that a file created, renamed or removed there
// survives a crash.
func SyncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path.Join(root.Name(), dir), err)
	}
	return nil
}

// TempName is a hidden, random name beside name.
func TempName(name string) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return path.Join(path.Dir(name), ".certrollout-"+hex.EncodeToString(b[:])+".tmp"), nil
}

func fillSynced(f *os.File, mode fs.FileMode, fill func(io.Writer) error) error {
	// The umask may have narrowed mode; a reused file may have had another.
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if err := fill(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
