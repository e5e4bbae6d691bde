package main

import (
	"fmt"
	"strings"
	"testing"
)

func digestOf(t *testing.T, events ...string) (text, digest string) {
	t.Helper()
	var out strings.Builder
	d := newDigest()
	if err := d.read(strings.NewReader(strings.Join(events, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	return out.String(), d.String()
}

func TestDigestNamesEachFailureWithItsOwnMessages(t *testing.T) {
	text, got := digestOf(t,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"run","Package":"p","Test":"TestA/sub"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    a_test.go:12: want 3, got 2\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    --- FAIL: TestA/sub (0.01s)\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestA/sub"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: all fine\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"fail","Package":"p","Test":"TestA"}`,
		`{"Action":"fail","Package":"p"}`,
	)
	if !strings.Contains(text, "=== RUN   TestA\n    a_test.go:12: want 3, got 2\n") {
		t.Errorf("the text should read as go test -v prints it:\n%s", text)
	}
	for _, want := range []string{"## p TestA/sub\n    a_test.go:12: want 3, got 2\n    --- FAIL: TestA/sub", "## p TestA\n", "## p (package)"} {
		if !strings.Contains(got, want) {
			t.Errorf("digest lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "all fine") || strings.Contains(got, "=== RUN") || strings.Contains(got, "TestB") {
		t.Errorf("digest has a passing test's lines or markers:\n%s", got)
	}
	if _, empty := digestOf(t, `{"Action":"pass","Package":"p"}`); empty != "" {
		t.Errorf("no failure, no digest: %q", empty)
	}
}

// A timeout ends the package, not the test that was running: that test gets no event of its own, and
// is the one to name, with the panic's first line.
func TestDigestNamesTheTestATimeoutCutShort(t *testing.T) {
	events := []string{
		`{"Action":"run","Package":"p","Test":"TestDone"}`,
		`{"Action":"pass","Package":"p","Test":"TestDone"}`,
		`{"Action":"run","Package":"p","Test":"TestHang"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 3s\n"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"\trunning tests:\n"}`,
	}
	for i := range 100 {
		events = append(events, fmt.Sprintf(`{"Action":"output","Package":"p","Test":"TestHang","Output":"goroutine %d [select]:\n"}`, i))
	}
	events = append(events, `{"Action":"output","Package":"p","Output":"FAIL\tp\t3.008s\n"}`, `{"Action":"fail","Package":"p"}`)
	_, got := digestOf(t, events...)
	if !strings.Contains(got, "## p TestHang\npanic: test timed out after 3s\n") || !strings.Contains(got, "lines left out") || !strings.Contains(got, "goroutine 99 [select]") {
		t.Errorf("digest should name TestHang with the panic first, the middle left out:\n%s", got)
	}
	if strings.Contains(got, "TestDone") {
		t.Errorf("a test that passed is named:\n%s", got)
	}
}

// Build events name the package in ImportPath; lines that are not JSON are kept apart.
func TestDigestNamesThePackageThatDidNotBuild(t *testing.T) {
	_, got := digestOf(t,
		`{"ImportPath":"q [q.test]","Action":"build-output","Output":"# q\n"}`,
		`{"ImportPath":"q [q.test]","Action":"build-output","Output":"q/x.go:1:1: syntax error\n"}`,
		`{"ImportPath":"q [q.test]","Action":"build-fail"}`,
		`{"Action":"output","Package":"q","Output":"FAIL\tq [build failed]\n"}`,
		`{"Action":"fail","Package":"q","FailedBuild":"q [q.test]"}`,
		`go: downloading example.com/m v1.0.0`,
	)
	if !strings.Contains(got, "## q [q.test] (package)\n# q\nq/x.go:1:1: syntax error\n") || !strings.Contains(got, "## q (package)\nFAIL\tq [build failed]") {
		t.Errorf("digest should name q and quote the compiler:\n%s", got)
	}
	if !strings.Contains(got, "## (not go test's)\ngo: downloading") || strings.Count(got, "syntax error") != 1 {
		t.Errorf("stray lines belong apart, each failure once:\n%s", got)
	}
}
