package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/config/crd"
	"github.com/certrollout/certrollout/internal/image"
)

// testEpoch is SOURCE_DATE_EPOCH in the release tests: 2026-11-27T10:00:00Z.
const testEpoch = "1795773600"

var testDate = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("the release reads the git checkout: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// tinyChart is a chart shaped like ours (image.repository, image.tag defaulting to appVersion), for when
// charts/certrollout is not there yet.
func tinyChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certrollout")
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: certrollout\ndescription: test chart\ntype: application\nversion: 0.0.0\nappVersion: \"0.0.0\"\n",
		"values.yaml": "# Default values.\nimage:\n  repository: ghcr.io/certrollout/certrollout\n" +
			"  # Defaults to the chart's appVersion.\n  tag: \"\"\n  pullPolicy: IfNotPresent\nreplicas: 1\n",
		"templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n" +
			"spec:\n  template:\n    spec:\n      containers:\n      - name: certrollout\n" +
			"        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n",
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// chartForTest is a copy of the repository's chart when it exists (it is what ships; a copy, so an edit
// while the test runs does not make two releases differ), else tinyChart.
func chartForTest(t *testing.T, root string) string {
	src := filepath.Join(root, "charts", "certrollout")
	if _, err := os.Stat(filepath.Join(src, "Chart.yaml")); err == nil {
		t.Log("packaging charts/certrollout")
		dest := filepath.Join(t.TempDir(), "certrollout")
		if err := os.CopyFS(dest, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		return dest
	}
	t.Log("charts/certrollout does not exist yet: packaging a tiny chart of the same shape")
	return tinyChart(t)
}

type tarEntry struct {
	name string
	mode int64
	body []byte
}

func readTarGz(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("%s: gzip header has name %q and time %s, want neither", filepath.Base(path), zr.Name, zr.ModTime)
	}
	var out []tarEntry
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !hdr.ModTime.Equal(testDate) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" {
			t.Errorf("%s: %s has mtime %s owner %d:%d %q, want %s and 0:0", filepath.Base(path), hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, testDate)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr.Name, hdr.Mode, body})
	}
}

// buildTool builds this command, as `go run ./hack/release` does, so the release runs at full speed even
// when the tests run with -race.
func buildTool(t *testing.T) string {
	t.Helper()
	tool := filepath.Join(t.TempDir(), "release")
	if out, err := exec.Command("go", "build", "-o", tool, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build ./hack/release: %v\n%s", err, out)
	}
	return tool
}

// TestARealReleaseForThisPlatform runs the release command as `make release` does, reduced to this
// machine's platform, and checks every artefact: what is in each, that the checksums, the krew manifest
// and the binaries' stamps agree, that kubectl finds and completes the plugin, and that a second run, at
// another time, is byte-identical.
func TestARealReleaseForThisPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certrollout and packages a release")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("the image and the kubectl checks need a linux host, not %s", runtime.GOOS)
	}
	root := repoRoot(t)
	host := hostPlatform()
	// The commit released, pinned: others may commit while the test runs.
	head, err := git(root, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	short, err := git(root, "rev-parse", "--short", head)
	if err != nil {
		t.Fatal(err)
	}
	tool, chart := buildTool(t), chartForTest(t, root)
	// release runs the command as the Makefile does; makeRan is the build date the Makefile's LDFLAGS
	// carry, the time make ran, which must not matter.
	release := func(dist, makeRan string) string {
		t.Helper()
		cmd := exec.Command(tool, "--version", "v0.1.0",
			"--ldflags", "-X "+versionPkg+".gitVersion=v0.1.0 -X "+versionPkg+".gitCommit=abc1234 -X "+versionPkg+".buildDate="+makeRan,
			"--revision", head, "--root", root, "--dist", dist, "--platforms", host, "--image-platforms", host, "--chart", chart, "release")
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+testEpoch)
		out, err := cmd.CombinedOutput()
		t.Logf("release output:\n%s", out)
		if err != nil {
			t.Fatalf("release: %v", err)
		}
		return string(out)
	}
	dist := t.TempDir()
	log := release(dist, "2026-11-27T15:00:00Z")
	r := struct{ Dir, Checksums, Krew, Chart, CRDs string }{Dir: filepath.Join(dist, "v0.1.0")}
	r.Checksums = filepath.Join(r.Dir, "checksums.txt")
	r.Krew = filepath.Join(r.Dir, "certrollout.yaml")
	r.Chart = filepath.Join(r.Dir, "certrollout-0.1.0.tgz")
	r.CRDs = filepath.Join(r.Dir, "certrollout-crds.yaml")
	suffix := "_v0.1.0_" + strings.ReplaceAll(host, "/", "_") + ".tar.gz"

	t.Run("every kind of artefact is written, and nothing else", func(t *testing.T) {
		entries, err := os.ReadDir(r.Dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			names = append(names, n)
		}
		want := []string{"certrollout" + suffix, "certrollout-0.1.0.tgz", "certrollout-crds.yaml", "certrollout-v0.1.0-image.oci.tar",
			"certrollout.yaml", "checksums.txt", "image/", "kubectl-certrollout" + suffix}
		slices.Sort(want) // as ReadDir lists them
		if !slices.Equal(names, want) {
			t.Errorf("dist/v0.1.0 holds\n  %q\nwant\n  %q", names, want)
		}
	})

	t.Run("the binary reports the release's version, the commit built and the source date", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "certrollout")
		for _, e := range readTarGz(t, filepath.Join(r.Dir, "certrollout"+suffix)) {
			if e.name == "certrollout" {
				if err := os.WriteFile(bin, e.body, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
		out, err := exec.Command(bin, "version", "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var v versionInfo
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		if v.Version != "v0.1.0" || v.GitCommit != short || v.BuildDate != "2026-11-27T10:00:00Z" || v.Platform != host {
			t.Errorf("version %+v, want v0.1.0, commit %s (the Makefile's replaced by the commit built), the source date", v, short)
		}
		if !strings.Contains(log, host+" version: v0.1.0, commit "+short+", built 2026-11-27T10:00:00Z") {
			t.Error("the release does not print the version it checked")
		}
	})

	t.Run("checksums.txt covers every file and verifies", func(t *testing.T) {
		data, err := os.ReadFile(r.Checksums)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			sum, name, ok := strings.Cut(sc.Text(), "  ")
			if !ok || len(sum) != 64 {
				t.Fatalf("checksums.txt line %q is not `<sha256>  <name>`", sc.Text())
			}
			got, err := sha256File(filepath.Join(r.Dir, name))
			if err != nil || got != sum {
				t.Errorf("%s: checksum %s, file hashes to %s (%v)", name, sum, got, err)
			}
			listed[name] = true
		}
		for _, name := range []string{"certrollout" + suffix, "kubectl-certrollout" + suffix, "certrollout-v0.1.0-image.oci.tar",
			"certrollout-0.1.0.tgz", "certrollout.yaml", "certrollout-crds.yaml"} {
			if !listed[name] {
				t.Errorf("checksums.txt does not list %s", name)
			}
		}
		if sha256sum, err := exec.LookPath("sha256sum"); err == nil {
			cmd := exec.Command(sha256sum, "-c", "checksums.txt")
			cmd.Dir = r.Dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("sha256sum -c checksums.txt: %v\n%s", err, out)
			}
		}
	})

	license, _ := os.ReadFile(filepath.Join(root, "LICENSE"))
	t.Run("the archives hold the binary, licence and readme or shim, with their modes", func(t *testing.T) {
		bin := readTarGz(t, filepath.Join(r.Dir, "certrollout"+suffix))
		plugin := readTarGz(t, filepath.Join(r.Dir, "kubectl-certrollout"+suffix))
		check := func(name string, got []tarEntry, want map[string]int64) {
			var names []string
			for _, e := range got {
				names = append(names, e.name)
				if want[e.name] != e.mode {
					t.Errorf("%s: %s has mode %o, want %o", name, e.name, e.mode, want[e.name])
				}
				if e.name == "LICENSE" && !bytes.Equal(e.body, license) {
					t.Errorf("%s: LICENSE is not the repository's", name)
				}
			}
			if len(names) != len(want) || !slices.IsSorted(names) {
				t.Errorf("%s holds %q, want %d entries, sorted", name, names, len(want))
			}
		}
		check("certrollout archive", bin, map[string]int64{"LICENSE": 0o644, "README.md": 0o644, "certrollout": 0o755})
		check("plugin archive", plugin, map[string]int64{"LICENSE": 0o644, "kubectl-certrollout": 0o755, "kubectl_complete-certrollout": 0o755})
		if len(bin) == 3 && len(plugin) == 3 && !bytes.Equal(bin[2].body, plugin[1].body) {
			t.Error("certrollout and kubectl-certrollout are different binaries")
		}
	})

	t.Run("the krew manifest names each plugin archive with its sha256", func(t *testing.T) {
		data, err := os.ReadFile(r.Krew)
		if err != nil {
			t.Fatal(err)
		}
		var p krewPlugin
		if err := yaml.UnmarshalStrict(data, &p); err != nil {
			t.Fatal(err)
		}
		if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Metadata.Name != "certrollout" ||
			p.Spec.Version != "v0.1.0" || p.Spec.Homepage != "https://github.com/certrollout/certrollout" ||
			p.Spec.ShortDescription == "" || p.Spec.Description == "" {
			t.Errorf("manifest header %+v", p)
		}
		if len(p.Spec.Platforms) != 1 {
			t.Fatalf("%d platforms, want 1", len(p.Spec.Platforms))
		}
		pl := p.Spec.Platforms[0]
		goos, goarch, _ := strings.Cut(host, "/")
		sum, _ := sha256File(filepath.Join(r.Dir, "kubectl-certrollout"+suffix))
		if pl.Selector.MatchLabels["os"] != goos || pl.Selector.MatchLabels["arch"] != goarch || pl.Bin != "kubectl-certrollout" ||
			pl.URI != "https://github.com/certrollout/certrollout/releases/download/v0.1.0/kubectl-certrollout"+suffix || pl.Sha256 != sum {
			t.Errorf("platform %+v, want %s, the archive's URI and sha256 %s", pl, host, sum)
		}
		var from []string
		for _, f := range pl.Files {
			from = append(from, f.From)
		}
		if !slices.Equal(from, []string{"kubectl-certrollout", "kubectl_complete-certrollout", "LICENSE"}) {
			t.Errorf("files %q", from)
		}
	})

	t.Run("the chart loads with Helm and carries the release's version and image tag", func(t *testing.T) {
		c, err := loader.Load(r.Chart)
		if err != nil {
			t.Fatal(err)
		}
		if c.Metadata.Version != "0.1.0" || c.Metadata.AppVersion != "v0.1.0" {
			t.Errorf("chart version %q appVersion %q, want 0.1.0 and v0.1.0 (the image tag, as in the chart's folder)", c.Metadata.Version, c.Metadata.AppVersion)
		}
		img, _ := c.Values["image"].(map[string]any)
		if img["tag"] != "v0.1.0" {
			t.Errorf("values image.tag %v, want v0.1.0", img["tag"])
		}
		readTarGz(t, r.Chart) // every entry dated testDate
	})

	t.Run("the CRD bundle is the CRDs of config/crd", func(t *testing.T) {
		data, err := os.ReadFile(r.CRDs)
		if err != nil {
			t.Fatal(err)
		}
		embedded, err := crd.Manifests()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, m := range embedded {
			var obj map[string]any
			if err := yaml.Unmarshal(m, &obj); err != nil {
				t.Fatal(err)
			}
			want[obj["metadata"].(map[string]any)["name"].(string)] = true
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		var names []string
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var obj struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					Group string `json:"group"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatal(err)
			}
			if obj.Kind == "" { // the header comment alone
				continue
			}
			if obj.APIVersion != "apiextensions.k8s.io/v1" || obj.Kind != "CustomResourceDefinition" || obj.Spec.Group != "certrollout.io" {
				t.Errorf("document %s is a %s %s of group %q", obj.Metadata.Name, obj.APIVersion, obj.Kind, obj.Spec.Group)
			}
			names = append(names, obj.Metadata.Name)
		}
		got := map[string]bool{}
		for _, n := range names {
			got[n] = true
		}
		if len(names) != len(want) || len(want) < 4 || !maps.Equal(got, want) {
			t.Errorf("the bundle holds %q, config/crd embeds %v", names, want)
		}
	})

	t.Run("the image is the layout and its archive, for this platform", func(t *testing.T) {
		layoutDir := filepath.Join(r.Dir, "image")
		top, err := layout.ImageIndexFromPath(layoutDir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := top.IndexManifest()
		if err != nil || len(m.Manifests) != 1 {
			t.Fatalf("index.json: %v, %v", m, err)
		}
		idx, err := top.ImageIndex(m.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		d, err := image.DigestsOf(idx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Platforms) != 1 || d.Platforms[host].Hex == "" || !strings.Contains(log, "index        "+d.Index.String()) {
			t.Errorf("image digests %+v; the release printed\n%s", d, log)
		}
		rootfs := t.TempDir()
		if err := image.Unpack(layoutDir, host, rootfs); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(rootfs, "certrollout"), "version").Output()
		if err != nil || !strings.Contains(string(out), "certrollout v0.1.0 (commit "+short+", built 2026-11-27T10:00:00Z") {
			t.Errorf("/certrollout version from the image: %q, %v", out, err)
		}
		if st, err := os.Stat(filepath.Join(r.Dir, "certrollout-v0.1.0-image.oci.tar")); err != nil || st.Size() == 0 {
			t.Errorf("image archive: %v", err)
		}
		img, err := image.FromLayout(layoutDir, host)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if l := cfg.Config.Labels; l[image.AnnotationRevision] != head || l[image.AnnotationVersion] != "v0.1.0" ||
			l[image.AnnotationCreated] != "2026-11-27T10:00:00Z" {
			t.Errorf("image labels %v, want revision %s, version v0.1.0, created at the source date", l, head)
		}
	})

	t.Run("kubectl finds the plugin and completes it through the shim", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("no kubectl on PATH")
		}
		bin := t.TempDir()
		for _, e := range readTarGz(t, filepath.Join(r.Dir, "kubectl-certrollout"+suffix)) {
			if err := os.WriteFile(filepath.Join(bin, e.name), e.body, os.FileMode(e.mode)); err != nil {
				t.Fatal(err)
			}
		}
		env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"KUBECONFIG="+filepath.Join(t.TempDir(), "none"))
		runIn := func(name string, args ...string) string {
			t.Helper()
			cmd := exec.Command(name, args...)
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.String())
			}
			return string(out)
		}
		subcommands := []string{"check", "plan", "restart", "status", "renew", "version", "controller"}
		wantCompletion := func(what, out string) {
			t.Helper()
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if !regexp.MustCompile(`^:[0-9]+$`).MatchString(lines[len(lines)-1]) {
				t.Errorf("%s: last line %q, want cobra's :<directive>", what, lines[len(lines)-1])
			}
			offered := map[string]bool{}
			for _, l := range lines {
				word, _, _ := strings.Cut(l, "\t")
				offered[word] = true
			}
			for _, s := range subcommands {
				if !offered[s] {
					t.Errorf("%s does not offer %s:\n%s", what, s, out)
				}
			}
		}
		// The shim, as kubectl runs it for `kubectl certrollout <TAB>`.
		wantCompletion("the shim", runIn(filepath.Join(bin, "kubectl_complete-certrollout"), ""))
		// kubectl's own plugin lookup and, for completion, its lookup of the shim.
		if out := runIn(kubectl, "certrollout", "version"); !strings.HasPrefix(out, "certrollout v0.1.0 (commit "+short+", built 2026-11-27T10:00:00Z") {
			t.Errorf("kubectl certrollout version printed %q", out)
		}
		wantCompletion("kubectl __complete certrollout", runIn(kubectl, "__complete", "certrollout", ""))
	})

	t.Run("a second release of the same commit, at another time, is byte-identical", func(t *testing.T) {
		again := filepath.Join(t.TempDir(), "dist")
		release(again, "2026-11-28T08:00:00Z")
		first, _ := os.ReadFile(r.Checksums)
		second, _ := os.ReadFile(filepath.Join(again, "v0.1.0", "checksums.txt"))
		if !bytes.Equal(first, second) {
			t.Errorf("checksums differ between two releases:\n%s\nthen\n%s", first, second)
		}
		firstIndex, _ := os.ReadFile(filepath.Join(r.Dir, "image", "index.json"))
		secondIndex, _ := os.ReadFile(filepath.Join(again, "v0.1.0", "image", "index.json"))
		if !bytes.Equal(firstIndex, secondIndex) {
			t.Errorf("image index.json differs:\n%s\nthen\n%s", firstIndex, secondIndex)
		}
	})
}

func TestAReleaseRefusesAVersionThatIsNotSemanticVersioning(t *testing.T) {
	cases := map[string]bool{
		"v0.1.0":            true,
		"v1.2.3-rc.1":       true,
		"v10.20.30-alpha.0": true,
		"":                  false,
		"0.1.0":             false,
		"v1.2":              false,
		"v01.2.3":           false,
		"dev":               false,
		"361dbb9-dirty":     false,
		"v1.2.3+build.5":    false, // a + cannot be in an image tag
		"v1.2.3-":           false,
	}
	for v, ok := range cases {
		t.Run(v, func(t *testing.T) {
			err := checkReleaseVersion(v)
			if (err == nil) != ok {
				t.Fatalf("checkReleaseVersion(%q) = %v, want accepted: %v", v, err, ok)
			}
			if err != nil && !strings.Contains(err.Error(), "is not a release version") {
				t.Errorf("unclear message: %v", err)
			}
		})
	}
	// Through the command, as `make release VERSION=0.1.0` runs it: exit 1, the reason, nothing built.
	var stderr bytes.Buffer
	dist := t.TempDir()
	code := run([]string{"-version", "0.1.0", "-dist", dist, "-root", repoRoot(t), "release"}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `VERSION "0.1.0" is not a release version`) || !strings.Contains(stderr.String(), "v0.1.0?") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if entries, _ := os.ReadDir(dist); len(entries) != 0 {
		t.Errorf("a refused release wrote %v", entries)
	}
}

func TestAReleaseWithoutTheChartFailsBeforeBuilding(t *testing.T) {
	o := Options{Mode: "release", Version: "v0.1.0", Root: repoRoot(t), Dist: t.TempDir(), Platforms: []string{"linux/amd64"},
		ImagePlatforms: []string{"linux/amd64"}, Chart: filepath.Join(t.TempDir(), "no-chart")}
	start := time.Now()
	_, err := o.Release(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no-chart does not exist") || !strings.Contains(err.Error(), "a release packages it") {
		t.Fatalf("Release = %v, want it to say the chart is missing", err)
	}
	if entries, _ := os.ReadDir(o.Dist); len(entries) != 0 {
		t.Errorf("the failed release wrote %v", entries)
	}
	t.Logf("failed in %s: %v", time.Since(start), err)
}

func TestTheCommandNeedsAMode(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-version", "v0.1.0"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "image or release") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestSetImageTagEditsOnlyTheTag(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"an empty quoted tag with a comment after it": {
			"image:\n  repository: r\n  tag: \"\" # defaults to appVersion\n  pullPolicy: IfNotPresent\n",
			"image:\n  repository: r\n  tag: \"v0.1.0\" # defaults to appVersion\n  pullPolicy: IfNotPresent\n",
		},
		"a plain tag": {
			"# top comment\nimage:\n  tag: latest\nother: 1\n",
			"# top comment\nimage:\n  tag: \"v0.1.0\"\nother: 1\n",
		},
		"a single-quoted tag with an escaped quote": {
			"image:\n    tag: 'it''s'   # note\n",
			"image:\n    tag: \"v0.1.0\"   # note\n",
		},
		"a tag with nothing after the colon": {
			"image:\n  repository: r\n  tag:\n  pullPolicy: Always\n",
			"image:\n  repository: r\n  tag: \"v0.1.0\"\n  pullPolicy: Always\n",
		},
		"a null tag": {
			"image:\n  tag: ~\n",
			"image:\n  tag: \"v0.1.0\"\n",
		},
		"no tag: one is added under image": {
			"image: # the controller's image\n    repository: r\nreplicas: 2\n",
			"image: # the controller's image\n    tag: \"v0.1.0\"\n    repository: r\nreplicas: 2\n",
		},
		"a tag key elsewhere is left alone": {
			"sidecar:\n  tag: keep\nimage:\n  tag: old\n",
			"sidecar:\n  tag: keep\nimage:\n  tag: \"v0.1.0\"\n",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := setImageTag([]byte(c.in), "v0.1.0")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
	for name, in := range map[string]string{
		"no image section":     "replicas: 1\n",
		"a flow mapping":       "image: {repository: r, tag: x}\n",
		"a multi-line tag":     "image:\n  tag: |\n    v1\n",
		"image is not a map":   "image: ghcr.io/x:v1\n",
		"not a mapping at all": "- a\n- b\n",
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			if out, err := setImageTag([]byte(in), "v0.1.0"); err == nil {
				t.Errorf("accepted, gave %q", out)
			}
		})
	}
}

func TestTheLinkerFlagsDoNotDependOnWhenMakeRan(t *testing.T) {
	date := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	makefile := func(commit, now string) Options {
		return Options{Version: "v0.1.0", LDFlags: "-X " + versionPkg + ".gitVersion=v0.1.0 -X " + versionPkg +
			".gitCommit=" + commit + " -X " + versionPkg + ".buildDate=" + now}
	}
	first := makefile("abc1234", "2026-11-27T15:00:00Z").ldflags("abc1234", date)
	second := makefile("abc1234", "2026-11-28T09:30:00Z").ldflags("abc1234", date)
	if first != second {
		t.Errorf("two runs of make give different linker flags (and build IDs):\n%s\n%s", first, second)
	}
	want := "-X " + versionPkg + ".gitVersion=v0.1.0 -X " + versionPkg + ".gitCommit=abc1234 -X " + versionPkg +
		".buildDate=2026-11-27T10:00:00Z -s -w"
	if first != want {
		t.Errorf("ldflags\n%s\nwant\n%s", first, want)
	}
	// The commit stamped is the commit built, whatever HEAD was when make read it.
	if got := makefile("fff0000", "x").ldflags("abc1234", date); got != want {
		t.Errorf("ldflags\n%s\nwant\n%s", got, want)
	}
	if got := (Options{Version: "v0.2.0"}).ldflags("def5678", date); !strings.Contains(got, ".gitVersion=v0.2.0 ") ||
		!strings.Contains(got, ".gitCommit=def5678 ") || !strings.Contains(got, ".buildDate=2026-11-27T10:00:00Z") {
		t.Errorf("without the Makefile's flags: %s", got)
	}
}
