package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/certrollout/certrollout/internal/version"
)

func run(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runContext(context.Background(), t, name, args...)
}

// runContext is run with a context, so a test can bound a command that might wait.
func runContext(ctx context.Context, t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRootCommand(IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, name)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestVersionPrintsOneLineByDefault(t *testing.T) {
	out, _, err := run(t, "certrollout", "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "certrollout ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("want one line starting with the program name, got %q", out)
	}
}

func TestVersionJSONIsTheVersionInfo(t *testing.T) {
	out, _, err := run(t, "certrollout", "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got version.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got != version.Get() {
		t.Fatalf("got %+v, want %+v", got, version.Get())
	}
}

func TestVersionRejectsAnUnknownOutputFormat(t *testing.T) {
	_, _, err := run(t, "certrollout", "version", "-o", "xml")
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("want an error naming the bad format, got %v", err)
	}
}

func TestHelpNamesTheKubectlPluginWhenRunAsOne(t *testing.T) {
	if got := commandName("/usr/local/bin/kubectl-certrollout"); got != "kubectl certrollout" {
		t.Fatalf("got %q", got)
	}
	if got := commandName("./bin/certrollout"); got != "certrollout" {
		t.Fatalf("got %q", got)
	}
	out, _, err := run(t, "kubectl certrollout", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kubectl certrollout version") && !strings.Contains(out, "kubectl certrollout [command]") {
		t.Fatalf("help should use the plugin name:\n%s", out)
	}
}

func TestExecuteReturnsNonZeroOnBadInput(t *testing.T) {
	if code := Execute([]string{"certrollout", "no-such-command"}); code == 0 {
		t.Fatal("an unknown command should exit non-zero")
	}
}
