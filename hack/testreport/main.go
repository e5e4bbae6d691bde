// Command testreport turns `go test -json` into the text `go test -v` prints, and writes a digest of
// every failure: each failed test's own lines (its t.Error and t.Log messages, a panic), so the end of a
// long CI log says what failed and why, not only which test.
//
//	go test -json ./... 2>&1 | go run ./hack/testreport -failures bin/failures.txt | tee bin/test.log
//
// A test still running when its package failed (a timeout, a panic in another goroutine) is reported as
// failed with its lines: go test sends no event for it. Build failures are reported under the package
// that did not build. Lines that are not JSON are passed through and kept under "(not go test's)". It
// exits 0: go test's own exit status is the verdict.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of a test2json event this reads. Build events name their package in ImportPath.
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

// head and tail are how many of a failed test's first and last lines the digest keeps: a panic's or a
// timeout's message comes first, an assertion's last.
const head, tail = 15, 40

// sep joins a package and a test in a key: import paths of builds hold spaces ("q [q.test]").
const sep = "\x00"

// stray is the key of lines that are not go test's events.
const stray = "(not go test's)"

func main() {
	failures := flag.String("failures", "", "write the digest of failures to this file (empty: only stdout)")
	flag.Parse()
	d := newDigest()
	if err := d.read(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if *failures == "" {
		return
	}
	if err := os.WriteFile(*failures, []byte(d.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

// digest collects each test's output and which tests and packages failed.
type digest struct {
	lines   map[string][]string // key: package + sep + test ("" for the package itself)
	failed  []string            // keys, in the order they failed
	seen    map[string]bool     // keys already in failed
	running map[string][]string // by package: tests that started and have not ended
}

func newDigest() *digest {
	return &digest{lines: map[string][]string{}, seen: map[string]bool{}, running: map[string][]string{}}
}

// read copies the text of every event of r to w and records it.
func (d *digest) read(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
			fmt.Fprintln(w, line)
			d.add(stray, line)
			continue
		}
		pkg := e.Package
		if pkg == "" {
			pkg = e.ImportPath
		}
		key := pkg + sep + e.Test
		switch e.Action {
		case "output", "build-output":
			fmt.Fprint(w, e.Output)
			d.add(key, e.Output)
		case "run":
			d.running[pkg] = append(d.running[pkg], e.Test)
		case "pass", "skip":
			d.ended(pkg, e.Test)
		case "fail", "build-fail":
			d.ended(pkg, e.Test)
			if e.Test == "" {
				// Tests the package's failure cut short sent no event: they failed with it.
				for _, t := range d.running[pkg] {
					d.fail(pkg + sep + t)
				}
				delete(d.running, pkg)
			}
			d.fail(key)
		}
	}
	if len(d.lines[stray]) > 0 && len(d.failed) > 0 {
		d.fail(stray)
	}
	return sc.Err()
}

func (d *digest) add(key, out string) {
	d.lines[key] = append(d.lines[key], strings.TrimRight(out, "\n"))
}

func (d *digest) ended(pkg, test string) {
	if test == "" {
		return
	}
	r := d.running[pkg]
	for i, t := range r {
		if t == test {
			d.running[pkg] = append(r[:i:i], r[i+1:]...)
			return
		}
	}
}

func (d *digest) fail(key string) {
	if !d.seen[key] {
		d.seen[key] = true
		d.failed = append(d.failed, key)
	}
}

// String is the digest: per failed test, its own lines other than the framework's markers, the first
// head and last tail of them.
func (d *digest) String() string {
	if len(d.failed) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Why each failed (tests, packages and anything else, %d in all):\n", len(d.failed))
	for _, key := range d.failed {
		var own []string
		for _, l := range d.lines[key] {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- PASS") || strings.HasPrefix(t, "--- SKIP") {
				continue
			}
			own = append(own, l)
		}
		title := stray
		if key != stray {
			pkg, test, _ := strings.Cut(key, sep)
			if test == "" {
				test = "(package)"
			}
			title = pkg + " " + test
		}
		fmt.Fprintf(&b, "\n## %s\n", title)
		if len(own) > head+tail {
			cut := len(own) - head - tail
			own = append(append(own[:head:head], fmt.Sprintf("   (%d lines left out)", cut)), own[len(own)-tail:]...)
		}
		for _, l := range own {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}
