package localcluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Binaries are the built programs and data files a cluster runs from.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kwok              string
	CertManager       string
	// Kubeadm is upstream kubeadm, built from its own wrapper module; it writes the kubeadm-shaped control
	// plane's PKI and is what the parity tests compare check's tables with.
	Kubeadm string
	// KwokStages maps a stage set name ("general", "fast") to a multi-document Stage file.
	KwokStages map[string]string
	// CertManagerCRDs is one multi-document YAML file with the cert-manager CRDs.
	CertManagerCRDs string
}

// BuildOptions say where to find the wrapper modules, where to cache results and where to report progress.
type BuildOptions struct {
	Versions Versions
	// RepoRoot is the certrollout checkout; empty means search upwards from the working directory.
	RepoRoot string
	// CacheDir holds built binaries keyed by version; empty means CacheDirFromEnv().
	CacheDir string
	// Log receives progress lines and the output of the Go toolchain.
	Log io.Writer
}

// CacheDirFromEnv is $CERTROLLOUT_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/certrollout. It lives outside
// the checkout so that a fresh clone on the same machine reuses the binaries.
func CacheDirFromEnv() (string, error) {
	if d := os.Getenv("CERTROLLOUT_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache folder (set CERTROLLOUT_CACHE): %w", err)
	}
	return filepath.Join(base, "certrollout"), nil
}

// FindRepoRoot walks up from dir to the folder that holds hack/cluster/components.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, componentsDir)); err == nil && fi.IsDir() {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s above %s: run from inside the certrollout checkout", componentsDir, dir)
		}
	}
}

const componentsDir = "hack/cluster/components"

// EnsureBinaries builds every component that is not yet in the cache and returns where they are. It holds
// an exclusive lock on the cache while it works, so test packages started in parallel build only once.
func EnsureBinaries(ctx context.Context, opts BuildOptions) (*Binaries, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.RepoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if opts.RepoRoot, err = FindRepoRoot(wd); err != nil {
			return nil, err
		}
	}
	if opts.CacheDir == "" {
		d, err := CacheDirFromEnv()
		if err != nil {
			return nil, err
		}
		opts.CacheDir = d
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the cache folder: %w", err)
	}
	unlock, err := lockFile(filepath.Join(opts.CacheDir, "build.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	b := &builder{opts: opts, v: opts.Versions}
	bins := &Binaries{KwokStages: map[string]string{}}
	steps := []struct {
		name string
		run  func(ctx context.Context, out string) error
		set  func(out string)
	}{
		{"etcd-" + b.v.Etcd, b.buildEtcd, func(out string) { bins.Etcd = filepath.Join(out, "etcd") }},
		{"kubernetes-" + b.v.Kubernetes, b.buildKubernetes, func(out string) {
			bins.APIServer = filepath.Join(out, "kube-apiserver")
			bins.ControllerManager = filepath.Join(out, "kube-controller-manager")
			bins.Scheduler = filepath.Join(out, "kube-scheduler")
		}},
		{"kubeadm-" + b.v.Kubernetes, b.buildKubeadm, func(out string) { bins.Kubeadm = filepath.Join(out, "kubeadm") }},
		{"kwok-" + b.v.Kwok, b.buildKwok, func(out string) {
			bins.Kwok = filepath.Join(out, "kwok")
			for _, set := range []string{"general", "fast"} {
				bins.KwokStages[set] = filepath.Join(out, "stages-"+set+".yaml")
			}
		}},
		{"cert-manager-" + b.v.CertManager, b.buildCertManager, func(out string) {
			bins.CertManager = filepath.Join(out, "cert-manager")
		}},
		{"cert-manager-crds-" + b.v.CertManagerCRDs, b.fetchCertManagerCRDs, func(out string) {
			bins.CertManagerCRDs = filepath.Join(out, "crds.yaml")
		}},
	}
	for _, s := range steps {
		key := s.name
		if h := b.wrapperHash(s.name); h != "" {
			key += "-" + h
		}
		out := filepath.Join(opts.CacheDir, "bin", key)
		if _, err := os.Stat(filepath.Join(out, ".complete")); err != nil {
			fmt.Fprintf(opts.Log, "Building %s into %s (first run on this machine only).\n", s.name, out)
			if err := b.produce(ctx, out, s.run); err != nil {
				return nil, fmt.Errorf("building %s: %w", s.name, err)
			}
		}
		s.set(out)
	}
	return bins, nil
}

type builder struct {
	opts BuildOptions
	v    Versions
}

// produce runs build into a temporary folder next to out and renames it into place only when it
// succeeded, so an interrupted build never leaves a half-filled cache entry.
func (b *builder) produce(ctx context.Context, out string, build func(context.Context, string) error) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".partial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := build(ctx, tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(out)
	return os.Rename(tmp, out)
}

// wrapperHash keys a cache entry by the content of the wrapper module it is built from, so editing a
// wrapper rebuilds it. Components without a wrapper return "".
func (b *builder) wrapperHash(step string) string {
	dir := b.wrapperDir(step)
	if dir == "" {
		return ""
	}
	h := sha256.New()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:10]
}

func (b *builder) wrapperDir(step string) string {
	for _, name := range []string{"etcd", "kubernetes", "kubeadm", "cert-manager"} {
		if strings.HasPrefix(step, name+"-v") {
			return filepath.Join(b.opts.RepoRoot, componentsDir, name)
		}
	}
	return ""
}

// module describes one upstream module a wrapper depends on.
type module struct {
	path, pinned, want string
}

// prepareWrapper copies a wrapper module to a scratch folder. When the wanted version differs from the
// pinned one, it rewrites the requirement (and, for modules that replace their own siblings with local
// folders, pins those siblings to published versions) and lets `go mod tidy` resolve the rest.
func (b *builder) prepareWrapper(ctx context.Context, name string, m module) (string, error) {
	src := filepath.Join(b.opts.RepoRoot, componentsDir, name)
	dst, err := os.MkdirTemp("", "certrollout-wrapper-"+name+"-")
	if err != nil {
		return "", err
	}
	if err := copyTree(src, dst); err != nil {
		return dst, err
	}
	if m.want == m.pinned {
		return dst, nil
	}
	fmt.Fprintf(b.opts.Log, "Resolving %s %s (pinned is %s).\n", m.path, m.want, m.pinned)
	info, err := b.download(ctx, m.path+"@"+m.want)
	if err != nil {
		return dst, err
	}
	upstream, err := os.ReadFile(info.GoMod)
	if err != nil {
		return dst, err
	}
	gomod := fmt.Sprintf("module certrollout.local/components/%s\n\ngo 1.24.0\n\nrequire %s %s\n", name, m.path, m.want)
	if reps := publishedReplaces(string(upstream), m.want); len(reps) > 0 {
		gomod += "\nreplace (\n\t" + strings.Join(reps, "\n\t") + "\n)\n"
	}
	if err := os.WriteFile(filepath.Join(dst, "go.mod"), []byte(gomod), 0o644); err != nil {
		return dst, err
	}
	_ = os.Remove(filepath.Join(dst, "go.sum"))
	return dst, b.goCmd(ctx, dst, nil, "mod", "tidy")
}

// publishedReplaces turns the replace directives of an upstream go.mod into ones a dependent module can
// use. Replacements with a version are kept. Kubernetes replaces its staging modules with local folders;
// those are published as k8s.io/<name> v0.<minor>.<patch>, so a local replacement of a k8s.io module is
// mapped to that version. Other local replacements are dropped (the requirement names a published version).
func publishedReplaces(gomod, version string) []string {
	var out []string
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "replace (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "replace "):
			line = strings.TrimPrefix(line, "replace ")
		case !inBlock:
			continue
		}
		lhs, rhs, ok := strings.Cut(line, "=>")
		if !ok {
			continue
		}
		lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
		if !strings.HasPrefix(rhs, ".") && !strings.HasPrefix(rhs, "/") {
			out = append(out, lhs+" => "+rhs)
			continue
		}
		if strings.HasPrefix(lhs, "k8s.io/") && strings.HasPrefix(version, "v1.") {
			mod := strings.Fields(lhs)[0]
			out = append(out, fmt.Sprintf("%s => %s v0.%s", mod, mod, strings.TrimPrefix(version, "v1.")))
		}
	}
	sort.Strings(out)
	return out
}

type moduleInfo struct {
	Dir   string
	GoMod string
	Error string
}

func (b *builder) download(ctx context.Context, modVersion string) (*moduleInfo, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	cmd.Stderr = b.opts.Log
	out, err := cmd.Output()
	var info moduleInfo
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return nil, fmt.Errorf("downloading %s: %s", modVersion, info.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", modVersion, err)
	}
	return &info, nil
}

func (b *builder) goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOWORK=off", "GOFLAGS="), env...)
	cmd.Stdout = b.opts.Log
	cmd.Stderr = b.opts.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w", strings.Join(args, " "), dir, err)
	}
	return nil
}

func (b *builder) buildWrapper(ctx context.Context, name string, m module, out, ldflags string, pkgs ...string) error {
	dir, err := b.prepareWrapper(ctx, name, m)
	defer os.RemoveAll(dir)
	if err != nil {
		return err
	}
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out + string(filepath.Separator)}, pkgs...)
	return b.goCmd(ctx, dir, nil, args...)
}

func (b *builder) buildEtcd(ctx context.Context, out string) error {
	m := module{"go.etcd.io/etcd/server/v3", DefaultVersions.Etcd, b.v.Etcd}
	return b.buildWrapper(ctx, "etcd", m, out, "-s -w", ".")
}

func (b *builder) buildKubernetes(ctx context.Context, out string) error {
	return b.buildKubernetesWrapper(ctx, "kubernetes", out, "./kube-apiserver", "./kube-controller-manager", "./kube-scheduler")
}

func (b *builder) buildKubeadm(ctx context.Context, out string) error {
	return b.buildKubernetesWrapper(ctx, "kubeadm", out, "./kubeadm")
}

// buildKubernetesWrapper builds commands of the k8s.io/kubernetes module from one of its wrappers, stamped
// with the version (without it they report v0.0.0-master, which clients and kubeadm treat as ancient).
func (b *builder) buildKubernetesWrapper(ctx context.Context, wrapper, out string, pkgs ...string) error {
	m := module{"k8s.io/kubernetes", DefaultVersions.Kubernetes, b.v.Kubernetes}
	var major, minor int
	if _, err := fmt.Sscanf(b.v.Kubernetes, "v%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("kubernetes version %q: %w", b.v.Kubernetes, err)
	}
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			fmt.Sprintf("-X %s.gitVersion=%s", pkg, b.v.Kubernetes),
			fmt.Sprintf("-X %s.gitMajor=%d", pkg, major),
			fmt.Sprintf("-X %s.gitMinor=%d", pkg, minor))
	}
	return b.buildWrapper(ctx, wrapper, m, out, "-s -w "+strings.Join(ld, " "), pkgs...)
}

func (b *builder) buildCertManager(ctx context.Context, out string) error {
	m := module{"github.com/cert-manager/cert-manager", DefaultVersions.CertManager, b.v.CertManager}
	return b.buildWrapper(ctx, "cert-manager", m, out, "-s -w", ".")
}

// buildKwok installs kwok straight from the module proxy (its module has no local replacements) and keeps
// the release's own pod stage files beside the binary, so a cluster never needs the module cache.
func (b *builder) buildKwok(ctx context.Context, out string) error {
	if err := b.goCmd(ctx, os.TempDir(), []string{"GOBIN=" + out},
		"install", "-trimpath", "-ldflags", "-s -w", "sigs.k8s.io/kwok/cmd/kwok@"+b.v.Kwok); err != nil {
		return err
	}
	info, err := b.download(ctx, "sigs.k8s.io/kwok@"+b.v.Kwok)
	if err != nil {
		return err
	}
	for _, set := range []string{"general", "fast"} {
		dir := filepath.Join(info.Dir, "kustomize", "stage", "pod", set)
		if err := concatYAML(dir, filepath.Join(out, "stages-"+set+".yaml")); err != nil {
			return fmt.Errorf("kwok %s pod stages: %w", set, err)
		}
	}
	return nil
}

// fetchCertManagerCRDs takes the plain CRD manifests of a cert-manager release from the module proxy.
func (b *builder) fetchCertManagerCRDs(ctx context.Context, out string) error {
	info, err := b.download(ctx, "github.com/cert-manager/cert-manager@"+b.v.CertManagerCRDs)
	if err != nil {
		return err
	}
	return concatYAML(filepath.Join(info.Dir, "deploy", "crds"), filepath.Join(out, "crds.yaml"))
}

// concatYAML joins every *.yaml file of dir except kustomization.yaml, in name order, as one multi-document
// file.
func concatYAML(dir, dst string) error {
	matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(matches)
	var sb strings.Builder
	n := 0
	for _, p := range matches {
		if filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sb.WriteString("---\n")
		sb.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			sb.WriteByte('\n')
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no YAML files in %s", dir)
	}
	return os.WriteFile(dst, []byte(sb.String()), 0o644)
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// lockFile takes an exclusive advisory lock, waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
