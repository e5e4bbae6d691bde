package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certrollout/certrollout/internal/image"
)

// ImageResult is what `image` wrote.
type ImageResult struct {
	Layout, Archive string
	Digests         image.Digests
}

// Result is what `release` wrote, by kind; paths are absolute.
type Result struct {
	Dir            string
	Archives       []string // certrollout_<version>_<os>_<arch>.tar.gz
	PluginArchives []string // kubectl-certrollout_<version>_<os>_<arch>.tar.gz
	Image          ImageResult
	Chart          string
	CRDs           string
	Krew           string
	Checksums      string
	Version        versionInfo // what the binary for this machine reports, if one was built
}

// checkout is what both modes derive from the checkout before building.
type checkout struct {
	root string // the repository
	src  string // where the sources are read from: root, or an export of the commit for a release
	dist string
	date time.Time
	// revision is the full commit built and named in the image's revision annotation; commit is its
	// short form, stamped into the binaries.
	revision, commit string
}

func (o Options) inspect() (checkout, error) {
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return checkout{}, err
	}
	c := checkout{root: root, src: root, dist: o.Dist}
	if !filepath.IsAbs(c.dist) {
		c.dist = filepath.Join(root, c.dist)
	}
	rev := o.Revision
	if rev == "" {
		rev = "HEAD"
	}
	if c.revision, err = git(root, "rev-parse", "--verify", rev+"^{commit}"); err != nil {
		return checkout{}, err
	}
	if c.commit, err = git(root, "rev-parse", "--short", c.revision); err != nil {
		return checkout{}, err
	}
	if c.date, err = sourceDate(root, c.revision); err != nil {
		return checkout{}, err
	}
	return c, nil
}

// dirty says whether the working tree has uncommitted changes to tracked files.
func dirty(c checkout) bool {
	status, err := git(c.root, "status", "--porcelain", "--untracked-files=no")
	return err == nil && status != ""
}

// Image builds the linux binaries from the working tree, uncommitted changes included (it is what a
// developer tries out), and writes the OCI image: dist/image and dist/certrollout-<version>-image.oci.tar.
func (o Options) Image(w io.Writer) (ImageResult, error) {
	c, err := o.inspect()
	if err != nil {
		return ImageResult{}, err
	}
	if dirty(c) {
		_, _ = fmt.Fprintf(w, "warning: the working tree has uncommitted changes; the image is built from them, not from %s alone\n", c.commit)
	}
	work, err := os.MkdirTemp("", "certrollout-image-")
	if err != nil {
		return ImageResult{}, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	bins, err := o.buildAll(w, c, work, o.ImagePlatforms)
	if err != nil {
		return ImageResult{}, err
	}
	if err := os.MkdirAll(c.dist, 0o755); err != nil {
		return ImageResult{}, err
	}
	return o.writeImage(w, c, c.dist, bins)
}

// Release writes every artefact of a release into dist/<version>/, emptied first. Everything is built
// from an export of the commit (--revision, default HEAD), never from the working tree, so the artefacts
// are the commit's and a second release of it is byte-identical.
func (o Options) Release(w io.Writer) (Result, error) {
	if err := checkReleaseVersion(o.Version); err != nil {
		return Result{}, err
	}
	c, err := o.inspect()
	if err != nil {
		return Result{}, err
	}
	work, err := os.MkdirTemp("", "certrollout-release-")
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	c.src = filepath.Join(work, "src")
	if err := exportCommit(c.root, c.revision, c.src); err != nil {
		return Result{}, err
	}
	if dirty(c) {
		_, _ = fmt.Fprintf(w, "note: uncommitted changes in the working tree are not part of the release, built from %s\n", c.commit)
	}

	// What a release packages must exist before minutes of building.
	chartDir := o.Chart
	if !filepath.IsAbs(chartDir) {
		chartDir = filepath.Join(c.src, chartDir)
	}
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err != nil {
		return Result{}, fmt.Errorf("the Helm chart %s does not exist at %s (no Chart.yaml), and a release packages it: commit the chart, or pass -chart",
			o.Chart, c.commit)
	}
	inputs := map[string]string{
		"LICENSE":      filepath.Join(c.src, "LICENSE"),
		"README.md":    filepath.Join(c.src, "README.md"),
		completionShim: filepath.Join(c.src, "hack", "release", completionShim),
	}
	for name, path := range inputs {
		if _, err := os.Stat(path); err != nil {
			return Result{}, fmt.Errorf("a release packages %s, which %s lacks: %w", name, c.commit, err)
		}
	}

	r := Result{Dir: filepath.Join(c.dist, o.Version)}
	if err := os.RemoveAll(r.Dir); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return Result{}, err
	}

	all := slices.Clone(o.Platforms)
	for _, p := range o.ImagePlatforms {
		if !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	bins, err := o.buildAll(w, c, filepath.Join(work, "bin"), all)
	if err != nil {
		return Result{}, err
	}
	if host, ok := bins[hostPlatform()]; ok {
		if r.Version, err = checkStamp(host, o.Version, c.commit, c.date); err != nil {
			return Result{}, err
		}
		_, _ = fmt.Fprintf(w, "%s version: %s, commit %s, built %s\n", hostPlatform(), r.Version.Version, r.Version.GitCommit, r.Version.BuildDate)
	}

	var plugins []pluginArchive
	for _, p := range o.Platforms {
		suffix := fmt.Sprintf("_%s_%s.tar.gz", o.Version, strings.ReplaceAll(p, "/", "_"))
		archive := filepath.Join(r.Dir, "certrollout"+suffix)
		err := writeTarGz(archive, []archiveFile{
			{name: "certrollout", mode: 0o755, source: bins[p]},
			{name: "LICENSE", mode: 0o644, source: inputs["LICENSE"]},
			{name: "README.md", mode: 0o644, source: inputs["README.md"]},
		}, c.date)
		if err != nil {
			return Result{}, err
		}
		r.Archives = append(r.Archives, archive)

		plugin := filepath.Join(r.Dir, pluginBinary+suffix)
		err = writeTarGz(plugin, []archiveFile{
			{name: pluginBinary, mode: 0o755, source: bins[p]},
			{name: completionShim, mode: 0o755, source: inputs[completionShim]},
			{name: "LICENSE", mode: 0o644, source: inputs["LICENSE"]},
		}, c.date)
		if err != nil {
			return Result{}, err
		}
		r.PluginArchives = append(r.PluginArchives, plugin)
		sum, err := sha256File(plugin)
		if err != nil {
			return Result{}, err
		}
		plugins = append(plugins, pluginArchive{platform: p, name: filepath.Base(plugin), sha256: sum})
	}

	imageBins := map[string]string{}
	for _, p := range o.ImagePlatforms {
		imageBins[p] = bins[p]
	}
	if r.Image, err = o.writeImage(w, c, r.Dir, imageBins); err != nil {
		return Result{}, err
	}
	if r.Chart, err = packageChart(chartDir, r.Dir, o.Version, c.date); err != nil {
		return Result{}, err
	}
	r.CRDs = filepath.Join(r.Dir, "certrollout-crds.yaml")
	if err := writeCRDBundle(filepath.Join(c.src, "config", "crd", "bases"), r.CRDs, o.Version); err != nil {
		return Result{}, err
	}
	krew, err := krewManifest(o.Version, plugins)
	if err != nil {
		return Result{}, err
	}
	r.Krew = filepath.Join(r.Dir, "certrollout.yaml")
	if err := os.WriteFile(r.Krew, krew, 0o644); err != nil {
		return Result{}, err
	}
	if r.Checksums, err = writeChecksums(r.Dir); err != nil {
		return Result{}, err
	}
	return r, listing(w, r.Dir)
}

// buildAll builds certrollout for each platform into work/<os>_<arch>/certrollout.
func (o Options) buildAll(w io.Writer, c checkout, work string, platforms []string) (map[string]string, error) {
	if len(platforms) == 0 {
		return nil, errors.New("no platforms to build for")
	}
	ldflags := o.ldflags(c.commit, c.date)
	bins := map[string]string{}
	for _, p := range platforms {
		out := filepath.Join(work, strings.ReplaceAll(p, "/", "_"), "certrollout")
		start := time.Now()
		if err := buildBinary(c.src, p, out, ldflags); err != nil {
			return nil, err
		}
		_, _ = fmt.Fprintf(w, "built certrollout %s for %s (%s)\n", o.Version, p, time.Since(start).Round(time.Second))
		bins[p] = out
	}
	return bins, nil
}

// writeImage writes the image's layout to dir/image and its archive next to it, and prints the digests.
func (o Options) writeImage(w io.Writer, c checkout, dir string, bins map[string]string) (ImageResult, error) {
	license, err := os.ReadFile(filepath.Join(c.src, "LICENSE"))
	if err != nil {
		return ImageResult{}, fmt.Errorf("the image installs LICENSE: %w", err)
	}
	opts := image.Options{Version: o.Version, Revision: c.revision, Created: c.date, License: license, Binaries: bins}
	idx, err := image.Build(opts)
	if err != nil {
		return ImageResult{}, err
	}
	r := ImageResult{
		Layout:  filepath.Join(dir, "image"),
		Archive: filepath.Join(dir, "certrollout-"+o.Version+"-image.oci.tar"),
	}
	if err := image.WriteLayout(r.Layout, idx, opts); err != nil {
		return ImageResult{}, err
	}
	if err := image.WriteArchive(r.Layout, r.Archive, opts); err != nil {
		return ImageResult{}, err
	}
	if r.Digests, err = image.DigestsOf(idx); err != nil {
		return ImageResult{}, err
	}
	_, _ = fmt.Fprintf(w, "image %s\n  index        %s\n", opts.Ref(), r.Digests.Index)
	platforms := make([]string, 0, len(r.Digests.Platforms))
	for p := range r.Digests.Platforms {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	for _, p := range platforms {
		_, _ = fmt.Fprintf(w, "  %-12s %s\n", p, r.Digests.Platforms[p])
	}
	_, _ = fmt.Fprintf(w, "  layout       %s\n  archive      %s\n", rel(c.root, r.Layout), rel(c.root, r.Archive))
	return r, nil
}

// writeCRDBundle concatenates the CRD manifests in dir, by file name, into one multi-document YAML for
// `kubectl apply -f`.
func writeCRDBundle(dir, out, version string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRD manifests in %s", dir)
	}
	slices.Sort(files)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# certrollout %s CustomResourceDefinitions (config/crd/bases): kubectl apply --server-side -f certrollout-crds.yaml\n", version)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data = bytes.TrimSpace(data)
		if !bytes.HasPrefix(data, []byte("---")) {
			b.WriteString("---\n")
		}
		b.Write(data)
		b.WriteString("\n")
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// listing prints each artefact in dir with its size.
func listing(w io.Writer, dir string) error {
	_, _ = fmt.Fprintf(w, "release in %s:\n", dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		var size int64
		if e.IsDir() {
			err := filepath.WalkDir(filepath.Join(dir, e.Name()), func(_ string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				info, err := d.Info()
				size += info.Size()
				return err
			})
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(w, "  %10s  %s/\n", humanSize(size), e.Name())
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(w, "  %10s  %s\n", humanSize(info.Size()), e.Name())
	}
	return nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
