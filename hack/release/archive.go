package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// archiveFile is one file of a release archive: copied from source, or body.
type archiveFile struct {
	name   string
	mode   int64
	source string
	body   []byte
}

// writeTarGz writes files, sorted by name, as a gzip tar: root-owned, no user names, mtime date, and a
// gzip header with neither name nor time, so the bytes depend on the files alone (and Go's gzip).
func writeTarGz(path string, files []archiveFile, date time.Time) (err error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b archiveFile) int { return strings.Compare(a.name, b.name) })
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	// The default level, as for the image's layer (internal/image): best compression saves 0.4 % of a
	// binary in 2.5 times the time.
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, a := range files {
		if err := writeArchiveFile(tw, a, date); err != nil {
			return fmt.Errorf("%s: %s: %w", filepath.Base(path), a.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeArchiveFile(tw *tar.Writer, a archiveFile, date time.Time) error {
	body := a.body
	if a.source != "" {
		var err error
		if body, err = os.ReadFile(a.source); err != nil {
			return err
		}
	}
	hdr := &tar.Header{
		Name:     a.name,
		Typeflag: tar.TypeReg,
		Mode:     a.mode,
		Size:     int64(len(body)),
		ModTime:  date.UTC().Truncate(time.Second),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(body)
	return err
}

// writeChecksums writes checksums.txt in dir over every regular file directly in it (not folders such as
// the image layout), in `sha256sum` format, so `sha256sum -c checksums.txt` verifies a download.
func writeChecksums(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries { // ReadDir sorts by name
		if !e.Type().IsRegular() || e.Name() == "checksums.txt" {
			continue
		}
		sum, err := sha256File(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, e.Name())
	}
	path := filepath.Join(dir, "checksums.txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
