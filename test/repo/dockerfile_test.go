package repo

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/certrollout/certrollout/internal/image"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts, for messages
	cmd  string // upper case: FROM, COPY, RUN, ...
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	from, name   string
	instructions []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows what this repository's Dockerfile uses:
// comments, backslash continuations, one instruction a line; no heredocs.
func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") { // a comment inside a continuation is dropped
				continue
			}
			line = strings.TrimSpace(strings.TrimSuffix(line, `\`)) + " " + next
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{line: start + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue // a global ARG
			}
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	return stages, nil
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// argDefaults are the stage's ARG defaults, quotes removed.
func (s stage) argDefaults() map[string]string {
	out := map[string]string{}
	for _, in := range s.all("ARG") {
		for _, a := range strings.Fields(in.args) {
			name, value, _ := strings.Cut(a, "=")
			out[name] = strings.Trim(value, `"`)
		}
	}
	return out
}

// copyFromContext is a COPY of files from the build context: sources and destination.
type copyFromContext struct {
	sources []string
	dest    string
}

func (s stage) contextCopies() []copyFromContext {
	var out []copyFromContext
	for _, in := range s.all("COPY") {
		f := strings.Fields(in.args)
		if slices.ContainsFunc(f, func(a string) bool { return strings.HasPrefix(a, "--from") }) {
			continue
		}
		f = slices.DeleteFunc(f, func(a string) bool { return strings.HasPrefix(a, "--") })
		out = append(out, copyFromContext{sources: f[:len(f)-1], dest: f[len(f)-1]})
	}
	return out
}

func readDockerfile(t *testing.T, root string) (build, final stage) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	for _, s := range stages {
		for _, in := range s.all("RUN") {
			if strings.Contains(in.args, "go build") {
				build = s
			}
		}
	}
	if build.from == "" {
		t.Fatal("no stage of the Dockerfile runs go build")
	}
	return build, stages[len(stages)-1]
}

func TestTheDockerfileImageIsStaticNonRootAndLabelledLikeMakeImage(t *testing.T) {
	build, final := readDockerfile(t, repoRoot(t))
	if final.from != "scratch" && !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("the final stage is FROM %s, want scratch or gcr.io/distroless/static", final.from)
	}
	if user, ok := final.last("USER"); !ok || (user.args != "65532" && user.args != "65532:65532") {
		t.Errorf("the final stage runs as USER %q, want 65532:65532 (what make image sets)", user.args)
	}
	if ep, _ := final.last("ENTRYPOINT"); ep.args != `["/certrollout"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/certrollout\"]", ep.args)
	}
	if cmd, _ := final.last("CMD"); cmd.args != `["controller"]` {
		t.Errorf("CMD %s, want [\"controller\"]", cmd.args)
	}

	// The labels are make image's, key for key; the variable ones come from build arguments.
	labels := map[string]string{}
	for _, in := range final.all("LABEL") {
		for _, m := range regexp.MustCompile(`([a-z.]+)="([^"]*)"`).FindAllStringSubmatch(in.args, -1) {
			labels[m[1]] = m[2]
		}
	}
	want := map[string]string{
		image.AnnotationVersion:     "${VERSION}",
		image.AnnotationRevision:    "${COMMIT}",
		image.AnnotationCreated:     "${BUILD_DATE}",
		image.AnnotationSource:      image.SourceURL,
		image.AnnotationURL:         image.SourceURL,
		image.AnnotationLicenses:    image.Licenses,
		image.AnnotationTitle:       image.Title,
		image.AnnotationDescription: image.Description,
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("LABEL %s=%q, want %q", k, labels[k], v)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("LABELs %v, want exactly %v", labels, want)
	}

	// Built as make image builds: static, trimmed, stamped with version, commit and date.
	run := goBuildRun(t, build)
	for _, s := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "internal/version.gitVersion=${VERSION}",
		"internal/version.gitCommit=${COMMIT}", "internal/version.buildDate=${BUILD_DATE}", "./cmd/certrollout"} {
		if !strings.Contains(run.args, s) {
			t.Errorf("the build stage's go build (line %d) lacks %s", run.line, s)
		}
	}
}

func goBuildRun(t *testing.T, build stage) instruction {
	t.Helper()
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			return in
		}
	}
	t.Fatal("no go build")
	return instruction{}
}

// TestTheDockerfileBuildStageBuildsFromWhatItCopies copies exactly what the build stage's COPY lines
// name from this checkout into an empty folder and runs its go build there, offline against the module
// cache: a package the binary needs and the Dockerfile does not copy fails it, as it would fail
// `docker build`.
func TestTheDockerfileBuildStageBuildsFromWhatItCopies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certrollout")
	}
	root := repoRoot(t)
	build, _ := readDockerfile(t, root)
	workdir := "/"
	if wd, ok := build.last("WORKDIR"); ok {
		workdir = wd.args
	}
	// fsroot stands for the build stage's file system root.
	fsroot := t.TempDir()
	var copied []string
	for _, c := range build.contextCopies() {
		for _, src := range c.sources {
			dest := c.dest
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(workdir, dest)
			}
			target := filepath.Join(fsroot, dest)
			if strings.HasSuffix(c.dest, "/") && !strings.HasSuffix(src, "/") {
				target = filepath.Join(target, filepath.Base(src)) // COPY a b ./ puts a and b in ./
			}
			if err := copyPath(filepath.Join(root, src), target); err != nil {
				t.Fatalf("COPY %s %s: %v", src, c.dest, err)
			}
			copied = append(copied, strings.TrimSuffix(src, "/"))
		}
	}

	// A clearer message than the build's for the usual mistake: which package is not copied.
	list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}{{end}}", "./cmd/certrollout")
	list.Dir = root
	list.Env = append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		if !slices.ContainsFunc(copied, func(c string) bool { return rel == c || strings.HasPrefix(rel, c+"/") }) {
			t.Errorf("certrollout imports the package in %s, which no COPY of the build stage brings in", rel)
		}
	}

	// The build stage's own command, with its ARG defaults and a version to find in the binary.
	run := goBuildRun(t, build)
	outFlag := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(run.args)
	if outFlag == nil || !filepath.IsAbs(outFlag[1]) {
		t.Fatalf("the go build (line %d) does not write to an absolute -o path", run.line)
	}
	binary := filepath.Join(fsroot, outFlag[1])
	command := strings.Replace(run.args, outFlag[0], "-o "+binary, 1)
	env := os.Environ()
	for k, v := range build.argDefaults() {
		env = append(env, k+"="+v)
	}
	env = append(env, "TARGETOS=linux", "TARGETARCH="+runtime.GOARCH, "VERSION=v0.0.0-dockerfile-test", "COMMIT=0000000",
		"BUILD_DATE=2026-11-27T00:00:00Z",
		// Offline, from the module cache: only go.mod and go.sum as copied decide what is used.
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = filepath.Join(fsroot, workdir)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the build stage's go build failed in a folder holding only what the Dockerfile copies (%q): %v\n%s",
			copied, err, b)
	}
	if runtime.GOOS != "linux" {
		return
	}
	version, err := exec.Command(binary, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("the binary the build stage built: %v", err)
	}
	var info struct{ Version, GitCommit, BuildDate string }
	if err := json.Unmarshal(version, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "v0.0.0-dockerfile-test" || info.GitCommit != "0000000" || info.BuildDate != "2026-11-27T00:00:00Z" {
		t.Errorf("the Dockerfile's binary reports %+v, want the build arguments", info)
	}
}

// copyPath copies a file or a folder (recursively, regular files only) from src to dest.
func copyPath(src, dest string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = in.Close() }()
		outFile, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(outFile, in); err != nil {
			_ = outFile.Close()
			return err
		}
		return outFile.Close()
	})
}

func TestTheDockerfileParserReadsContinuationsStagesAndCopies(t *testing.T) {
	stages, err := parseDockerfile(`# comment
ARG GLOBAL=1
FROM --platform=$BUILDPLATFORM golang:1 AS build
WORKDIR /src
COPY a b ./
COPY --from=other /x /y
RUN one \
    # a comment inside
    two
ARG V=dev
FROM scratch
USER 65532:65532
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].from != "golang:1" || stages[0].name != "build" || stages[1].from != "scratch" {
		t.Fatalf("stages %+v", stages)
	}
	copies := stages[0].contextCopies()
	if len(copies) != 1 || !slices.Equal(copies[0].sources, []string{"a", "b"}) || copies[0].dest != "./" {
		t.Errorf("context copies %+v", copies)
	}
	if run, _ := stages[0].last("RUN"); run.args != "one two" {
		t.Errorf("RUN %q, want the continuation joined", run.args)
	}
	if stages[0].argDefaults()["V"] != "dev" {
		t.Errorf("ARG defaults %v", stages[0].argDefaults())
	}
}
