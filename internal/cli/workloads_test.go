package cli

import (
	"strings"
	"testing"
)

func TestParseWorkloadArgTakesTheGroupKubectlAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"cronjobs.batch/nightly": "CronJob/nightly", "deployments.v1.apps/web": "Deployment/web",
		"pods/tool": "Pod/tool", "DS/agent": "DaemonSet/agent",
	} {
		got, err := ParseWorkloadArg(in)
		if err != nil || got.String() != want {
			t.Errorf("%s: got %v, %v; want %s", in, got, err, want)
		}
	}
}

// FuzzParseWorkloadArg: whatever parses names a known kind and a name without a slash, and reads back
// as itself.
func FuzzParseWorkloadArg(f *testing.F) {
	for _, s := range []string{"deploy/web", "deployments.v1.apps/web", "sts/", "/x", "a/b/c", "Pod/tool", ".apps/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWorkloadArg(s)
		if err != nil {
			return
		}
		if w.Name == "" || strings.Contains(w.Name, "/") {
			t.Fatalf("%q parsed to a bad name %q", s, w.Name)
		}
		again, err := ParseWorkloadArg(w.String())
		if err != nil || again != w {
			t.Fatalf("%q parsed to %v, which reads back as %v, %v", s, w, again, err)
		}
	})
}
