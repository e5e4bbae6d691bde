package main

import (
	"strings"
	"testing"
)

func TestDigestNamesEachFailureWithItsOwnMessages(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    a_test.go:12: want 3, got 2\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    --- FAIL: TestA/sub (0.01s)\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestA/sub"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: all fine\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"fail","Package":"p","Test":"TestA"}`,
		`{"Action":"fail","Package":"p"}`,
		`# q`,
		`q/x.go:1:1: syntax error`,
	}, "\n")
	var out strings.Builder
	d := newDigest()
	if err := d.read(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "=== RUN   TestA\n    a_test.go:12: want 3, got 2\n") || !strings.Contains(out.String(), "q/x.go:1:1: syntax error\n") {
		t.Errorf("the text should read as go test -v prints it:\n%s", out.String())
	}
	got := d.String()
	for _, want := range []string{"## p TestA/sub\n    a_test.go:12: want 3, got 2\n    --- FAIL: TestA/sub", "## p TestA\n", "## p (package)"} {
		if !strings.Contains(got, want) {
			t.Errorf("digest lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "all fine") || strings.Contains(got, "=== RUN") {
		t.Errorf("digest has a passing test's lines or markers:\n%s", got)
	}
	if empty := newDigest(); empty.String() != "" {
		t.Errorf("no failure, no digest: %q", empty.String())
	}
}
