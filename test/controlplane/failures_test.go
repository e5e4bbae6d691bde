package controlplane

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// The tests here end by printing the tails of several processes' logs, and a CI report shows only the
// last lines before "--- FAIL": the assertion that failed would scroll out of it. These helpers record
// each failure message and repeat them, shortened, after everything else the test prints.
var failures sync.Map // *testing.T → *failureList

type failureList struct {
	mu   sync.Mutex
	msgs []string
}

// repeatFailuresLast registers the cleanup that repeats the test's failure messages. Call it first in a
// test: cleanups run last-registered first, so this one runs after every process has dumped its log.
func repeatFailuresLast(t *testing.T) {
	t.Helper()
	list := &failureList{}
	failures.Store(t, list)
	t.Cleanup(func() {
		failures.Delete(t)
		list.mu.Lock()
		defer list.mu.Unlock()
		if len(list.msgs) == 0 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d failure(s), repeated after the logs above:", len(list.msgs))
		for _, m := range list.msgs {
			b.WriteString("\n  - " + shorten(m))
		}
		t.Log(b.String())
	})
}

func note(t *testing.T, msg string) {
	if v, ok := failures.Load(t); ok {
		list := v.(*failureList)
		list.mu.Lock()
		list.msgs = append(list.msgs, msg)
		list.mu.Unlock()
	}
}

// errorf is t.Errorf, recorded for repeatFailuresLast.
func errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	note(t, msg)
	t.Error(msg)
}

// fatalf is t.Fatalf, recorded for repeatFailuresLast.
func fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	note(t, msg)
	t.Fatal(msg)
}

// shorten keeps a message's first line and its last five (where a command's output says how it ended),
// each at most 300 bytes.
func shorten(m string) string {
	lines := strings.Split(strings.TrimRight(m, "\n"), "\n")
	if len(lines) > 6 {
		lines = append(lines[:1:1], append([]string{"[…]"}, lines[len(lines)-5:]...)...)
	}
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	return strings.Join(lines, "\n    ")
}
