package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// versionPkg is where the link-time stamps live (see the Makefile's LDFLAGS and internal/version).
const versionPkg = "github.com/certrollout/certrollout/internal/version"

// buildDateLayout is how internal/version's buildDate is written, as the Makefile's `date -u` writes it.
const buildDateLayout = "2006-01-02T15:04:05Z"

// semverPattern is semantic versioning 2.0.0 with Go's leading v: v0.1.0, v1.2.0-rc.1, v1.0.0+build.5.
var semverPattern = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(-((0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$`)

// checkReleaseVersion refuses what cannot name a release, tag the image and version the chart.
func checkReleaseVersion(v string) error {
	if semverPattern.MatchString(v) && !strings.Contains(v, "+") {
		return nil
	}
	hint := ""
	switch {
	case v == "":
		hint = " (make release VERSION=v0.1.0)"
	case semverPattern.MatchString("v" + v):
		hint = fmt.Sprintf(" (did you mean v%s?)", v)
	case strings.Contains(v, "+") && semverPattern.MatchString(v):
		hint = " (build metadata after + cannot be an image tag)"
	}
	return fmt.Errorf("VERSION %q is not a release version: a release needs semantic versioning with a leading v, "+
		"like v0.1.0 or v1.2.0-rc.1%s", v, hint)
}

// sourceDate is every timestamp of the release: SOURCE_DATE_EPOCH when set (reproducible-builds.org),
// else the commit time of revision.
func sourceDate(root, revision string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", s, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	out, err := git(root, "log", "-1", "--format=%ct", revision)
	if err != nil {
		return time.Time{}, fmt.Errorf("the commit time (set SOURCE_DATE_EPOCH outside a git checkout): %w", err)
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("git log printed %q for the commit time", out)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func git(root string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ldflags are the linker flags of a release binary: the Makefile's stamps (or our own version stamp when
// run without them) with the commit and build date set here. The Makefile's build date, the time `make`
// ran, is removed rather than overridden: the flags are hashed into the binary's build ID, so a value
// that changes would change every binary. Its commit is replaced by the commit built. Stripped.
func (o Options) ldflags(commit string, date time.Time) string {
	var kept []string
	fields := strings.Fields(o.LDFlags)
	ours := func(s string) bool {
		return strings.HasPrefix(s, versionPkg+".buildDate=") || strings.HasPrefix(s, versionPkg+".gitCommit=")
	}
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "-X" && i+1 < len(fields) && ours(fields[i+1]) {
			i++
			continue
		}
		if strings.HasPrefix(f, "-X=") && ours(strings.TrimPrefix(f, "-X=")) {
			continue
		}
		kept = append(kept, f)
	}
	if len(kept) == 0 {
		kept = []string{"-X", versionPkg + ".gitVersion=" + o.Version}
	}
	return fmt.Sprintf("%s -X %s.gitCommit=%s -X %s.buildDate=%s -s -w", strings.Join(kept, " "),
		versionPkg, commit, versionPkg, date.Format(buildDateLayout))
}

// buildBinary cross-compiles a static certrollout for platform from the sources in src into out.
func buildBinary(src, platform, out, ldflags string) error {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return fmt.Errorf("platform %q is not os/arch", platform)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/certrollout") //nolint:gosec // the go tool, with flags this program composed
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", platform, err, b)
	}
	return nil
}

// versionInfo is what `certrollout version -o json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit"`
	BuildDate string `json:"buildDate"`
	Platform  string `json:"platform"`
}

// checkStamp runs a binary built for this machine and fails unless it reports the release's version,
// commit and source date: the proof the linker flags reached the binary.
func checkStamp(bin, version, commit string, date time.Time) (versionInfo, error) {
	out, err := exec.Command(bin, "version", "-o", "json").Output() //nolint:gosec // the binary this program just built
	if err != nil {
		return versionInfo{}, fmt.Errorf("%s version: %w", bin, err)
	}
	var info versionInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return versionInfo{}, fmt.Errorf("%s version -o json printed %q: %w", bin, out, err)
	}
	if info.Version != version || info.GitCommit != commit || info.BuildDate != date.Format(buildDateLayout) {
		return info, fmt.Errorf("%s reports version %q, commit %q, built %q; want %q, %q, %q",
			filepath.Base(bin), info.Version, info.GitCommit, info.BuildDate, version, commit, date.Format(buildDateLayout))
	}
	return info, nil
}
