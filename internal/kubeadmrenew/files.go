package kubeadmrenew

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/certrollout/certrollout/internal/durable"
)

// stagedSuffix names a replacement written beside its file and not yet renamed into place.
const stagedSuffix = ".certrollout-new"

// maxFile bounds what is read of one file: certificates, keys and kubeconfigs are kilobytes.
const maxFile = 1 << 20

// folder is a folder whose files are opened through an os.Root: a symbolic link that leads out of it is
// an error, never followed. Paths are slash-separated and relative to it.
type folder struct {
	root *os.Root
	name string
}

func openFolder(dir string) (*folder, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &folder{root: r, name: dir}, nil
}

func (f *folder) Close() error { return f.root.Close() }

// path is rel as a path on the host, for messages and results.
func (f *folder) path(rel string) string {
	if rel == "" {
		return ""
	}
	return path.Join(f.name, rel)
}

// read returns a regular file's content and permission bits.
func (f *folder) read(rel string) ([]byte, fs.FileMode, error) {
	file, err := f.root.Open(rel)
	if err != nil {
		return nil, 0, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s: not a regular file (%s)", f.path(rel), fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(file, maxFile+1))
	if err != nil {
		return nil, 0, err
	}
	if len(data) > maxFile {
		return nil, 0, fmt.Errorf("%s: larger than %d KiB", f.path(rel), maxFile>>10)
	}
	return data, fi.Mode().Perm(), nil
}

// exists reports whether rel exists; an error other than "does not exist" is returned.
func (f *folder) exists(rel string) (bool, error) {
	_, err := f.root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// write writes data to rel with exactly mode and fsyncs it; the folder entry is synced by syncDir. The
// staged name is kept on purpose (complete finishes a run killed before the rename).
func (f *folder) write(rel string, data []byte, mode fs.FileMode) error {
	return durable.WriteSynced(f.root, rel, data, mode)
}

// syncDir fsyncs the folder holding rel, so that a file created, renamed or removed there survives a
// crash.
func (f *folder) syncDir(rel string) error {
	return durable.SyncDir(f.root, path.Dir(rel))
}

// replace renames the staged rel into place and syncs the folder.
func (f *folder) replace(rel string) error {
	return durable.Rename(f.root, rel+stagedSuffix, rel)
}

// backup is one run's backup folder, written under a name ending in partialSuffix and renamed to its own
// name by commit, once every file in it is on disk: a backup folder without the suffix is complete.
type backup struct {
	*folder
	parent *folder
	// run is the folder's name under Options.BackupDir.
	run string
}

// partialSuffix marks a backup folder still being written (or left by a killed run).
const partialSuffix = ".partial"

// newBackup starts this run's backup folder under dir: dir/<UTC time>, or with -2, -3... when taken (two
// runs in the same second). Partial folders left by killed runs are removed first.
func newBackup(dir string, now time.Time) (*backup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	parent, err := openFolder(dir)
	if err != nil {
		return nil, err
	}
	b, err := startBackup(parent, now.UTC().Format("20060102T150405Z"))
	if err != nil {
		_ = parent.Close()
		return nil, err
	}
	return b, nil
}

func startBackup(parent *folder, stamp string) (*backup, error) {
	if err := removePartial(parent); err != nil {
		return nil, err
	}
	for i := 1; i < 100; i++ {
		run := stamp
		if i > 1 {
			run = fmt.Sprintf("%s-%d", stamp, i)
		}
		if taken, err := parent.exists(run); err != nil || taken {
			continue
		}
		err := parent.root.Mkdir(run+partialSuffix, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := parent.syncDir(run); err != nil {
			return nil, err
		}
		f, err := openFolder(path.Join(parent.name, run+partialSuffix))
		if err != nil {
			return nil, err
		}
		return &backup{folder: f, parent: parent, run: run}, nil
	}
	return nil, fmt.Errorf("no free backup folder name for %s in %s", stamp, parent.name)
}

// removePartial removes the partial backup folders of killed runs: they hold no file that was replaced.
func removePartial(parent *folder) error {
	entries, err := fs.ReadDir(parent.root.FS(), ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), partialSuffix) {
			if err := parent.root.RemoveAll(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// commit gives the backup folder its final name; the files in it are already synced.
func (b *backup) commit() error {
	if err := b.parent.root.Rename(b.run+partialSuffix, b.run); err != nil {
		return err
	}
	if err := b.parent.syncDir(b.run); err != nil {
		return err
	}
	b.name = path.Join(b.parent.name, b.run)
	return nil
}

// Close closes the folder and its parent.
func (b *backup) Close() error {
	_ = b.parent.Close()
	return b.folder.Close()
}

// save copies data (rel's content, with mode) into the backup at rel and syncs it and every folder it
// made, so that the copy is on disk before the original is replaced.
func (b *backup) save(rel string, data []byte, mode fs.FileMode) error {
	if err := b.root.MkdirAll(path.Dir(rel), 0o700); err != nil {
		return err
	}
	if err := b.write(rel, data, mode); err != nil {
		return err
	}
	for d := rel; d != "."; {
		if err := b.syncDir(d); err != nil {
			return err
		}
		d = path.Dir(d)
	}
	return nil
}

// lockName is the file in Options.BackupDir that Renew holds a lock on while it runs.
const lockName = ".lock"

// errLocked: another Renew holds the lock.
var errLocked = errors.New("another renewal is running (its lock is held)")

// lock takes an exclusive lock on dir's lock file, so that two runs never back up and stage over each
// other; the lock goes with the process, so a killed run leaves none behind.
func lock(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // the caller's backup folder
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { //nolint:gosec // a descriptor fits an int
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errLocked)
		}
		return nil, err
	}
	return func() { _ = f.Close() }, nil
}
