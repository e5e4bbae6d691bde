package controller

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The API server refuses an Event note over 1 KiB: every note certrollout writes is cut to fit, at a
// character boundary, with a mark that it was cut.
func TestFitNoteCutsLongNotesToWhatAnEventCarries(t *testing.T) {
	short := "Ignored malformed certificate data (key tls.crt: PEM block 1)"
	if got := fitNote(short); got != short {
		t.Errorf("a short note changed: %q", got)
	}
	for _, long := range []string{strings.Repeat("x", 5000), strings.Repeat("é", 3000), strings.Repeat("key ca.crt: PEM block 1 (CERTIFICATE) at line 1: malformed; ", 40)} {
		got := fitNote(long)
		if len(got) > maxNote || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
			t.Errorf("a %d-byte note became %d bytes (valid UTF-8 %v), ending %q", len(long), len(got), utf8.ValidString(got), got[max(0, len(got)-10):])
		}
	}
}
