// Command testreport turns `go test -json` into the text `go test -v` prints, and writes a digest of
// every failure: each failed test's own lines (its t.Error and t.Log messages, a panic), so the end of a
// long CI log says what failed and why, not only which test.
//
//	go test -json ./... 2>&1 | go run ./hack/testreport -failures bin/failures.txt | tee bin/test.log
//
// Lines that are not JSON (a build error, a vet failure) are passed through and kept for the digest of
// the package they came before. It exits 0: go test's own exit status is the verdict.
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

// event is the part of a test2json event this reads.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// perTest is how many of a failed test's last lines the digest keeps.
const perTest = 40

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
	lines  map[string][]string // key: package + " " + test ("" for the package itself)
	failed []string            // keys, in the order they failed
	last   string              // the package of the last event, for lines that are not JSON
}

func newDigest() *digest { return &digest{lines: map[string][]string{}} }

// read copies the text of every event of r to w and records it.
func (d *digest) read(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
			fmt.Fprintln(w, line)
			d.add(d.last+" ", line+"\n")
			continue
		}
		d.last = e.Package
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output", "build-output":
			fmt.Fprint(w, e.Output)
			d.add(key, e.Output)
		case "fail", "build-fail":
			d.failed = append(d.failed, key)
		}
	}
	return sc.Err()
}

func (d *digest) add(key, out string) {
	d.lines[key] = append(d.lines[key], strings.TrimRight(out, "\n"))
}

// String is the digest: per failed test, its own lines other than the framework's markers, the last
// perTest of them. A parent whose failure is only its subtests' says so in one line.
func (d *digest) String() string {
	if len(d.failed) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Why each failed (%d; the last %d lines of each):\n", len(d.failed), perTest)
	for _, key := range d.failed {
		var own []string
		for _, l := range d.lines[key] {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- PASS") || strings.HasPrefix(t, "--- SKIP") {
				continue
			}
			own = append(own, l)
		}
		pkg, test, _ := strings.Cut(key, " ")
		if test == "" {
			test = "(package)"
		}
		fmt.Fprintf(&b, "\n## %s %s\n", pkg, test)
		if len(own) > perTest {
			fmt.Fprintf(&b, "   (%d lines before these)\n", len(own)-perTest)
			own = own[len(own)-perTest:]
		}
		for _, l := range own {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}
