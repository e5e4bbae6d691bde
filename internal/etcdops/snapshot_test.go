package etcdops

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPrune(t *testing.T) {
	const (
		a = "etcd-snapshot-20261128T090000Z.db"
		b = "etcd-snapshot-20261128T100000Z.db"
		c = "etcd-snapshot-20261128T110000Z.db"
		d = "etcd-snapshot-20261128T120000Z.db"
	)
	cases := map[string]struct {
		files   []string
		keep    int
		taken   string
		removed []string
		left    []string
	}{
		"removes the oldest beyond keep and leaves files of other names alone": {
			files: []string{a, b, c, d, "notes.txt", "etcd-snapshot-by-hand.db", ".tmp-etcd-snapshot-1"},
			keep:  2, taken: d, removed: []string{a, b},
			left: []string{".tmp-etcd-snapshot-1", c, d, "etcd-snapshot-by-hand.db", "notes.txt"},
		},
		"never removes the snapshot just taken, even when its name sorts first": {
			files: []string{a, b, c, d}, keep: 2, taken: a, removed: []string{b, c},
			left: []string{a, d},
		},
		"keeps everything when keep is below one": {
			files: []string{a, b, c}, keep: 0, taken: c, left: []string{a, b, c},
		},
		"keeps only the one taken with keep one": {
			files: []string{a, b, c}, keep: 1, taken: c, removed: []string{a, b}, left: []string{c},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A folder named like a snapshot is not one.
			if err := os.Mkdir(filepath.Join(dir, "etcd-snapshot-20200101T000000Z.db"), 0o700); err != nil {
				t.Fatal(err)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			removed, err := prune(root, ".", tc.keep, tc.taken)
			if err != nil {
				t.Fatal(err)
			}
			var wantRemoved []string
			for _, f := range tc.removed {
				wantRemoved = append(wantRemoved, filepath.Join(dir, f))
			}
			if fmt.Sprint(removed) != fmt.Sprint(wantRemoved) {
				t.Errorf("removed %v, want %v", removed, wantRemoved)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, e := range entries {
				if e.Type().IsRegular() {
					left = append(left, e.Name())
				}
			}
			if fmt.Sprint(left) != fmt.Sprint(tc.left) {
				t.Errorf("left %v, want %v", left, tc.left)
			}
		})
	}
}

func TestTrailerCheck(t *testing.T) {
	db := []byte(strings.Repeat("bolt page ", 400))
	sum := sha256Sum(db)
	stream := slices.Concat(db, sum)
	for _, chunk := range []int{1, 7, 31, 32, 33, 4096} {
		c := newTrailerCheck()
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			_, _ = c.Write(rest[:n])
			rest = rest[n:]
		}
		if err := c.verify(); err != nil {
			t.Errorf("chunks of %d: %v", chunk, err)
		}
	}
	c := newTrailerCheck()
	corrupt := slices.Clone(stream)
	corrupt[10] ^= 1
	_, _ = c.Write(corrupt)
	if c.verify() == nil {
		t.Error("a corrupted stream passed the check")
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
