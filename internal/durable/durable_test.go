package durable

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func openRoot(t *testing.T) (*os.Root, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, dir
}

func TestWriteFileReplacesWholeWithTheModeAndLeavesNoTemporaryFile(t *testing.T) {
	r, dir := openRoot(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(r, "f", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || string(data) != "new" {
		t.Fatalf("content %q (%v), want new", data, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want only f", len(entries))
	}
}

func TestWriteRefusesALinkThatLeadsOutOfTheRoot(t *testing.T) {
	r, dir := openRoot(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(r, "escape/f", []byte("x"), 0o600); err == nil {
		t.Fatal("wrote through a link that leads out of the root")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("%d files appeared outside the root", len(entries))
	}
}

func TestWriteWithNoReplaceNeverReplacesAFileAndFailsWithoutLeavingAnything(t *testing.T) {
	r, dir := openRoot(t)
	if err := os.WriteFile(filepath.Join(dir, "snap"), []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(r, "snap", 0o600, true, func(w io.Writer) error { _, err := w.Write([]byte("second")); return err })
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err %v, want fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "snap")); string(data) != "first" {
		t.Errorf("content %q, want first", data)
	}
	fillErr := errors.New("stream broke")
	if err := Write(r, "other", 0o600, true, func(io.Writer) error { return fillErr }); !errors.Is(err, fillErr) {
		t.Fatalf("err %v, want the fill's", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries after a failed write, want 1", len(entries))
	}
}

func TestWriteSyncedThenRenameMovesAStagedFileIntoPlace(t *testing.T) {
	r, dir := openRoot(t)
	if err := WriteSynced(r, "f.new", []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Rename(r, "f.new", "f"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "f"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat %v %v", fi, err)
	}
}
