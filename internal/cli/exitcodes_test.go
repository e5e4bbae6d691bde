package cli

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certrollout/certrollout/internal/clustertest"
)

// kubeconfigFor writes a kubeconfig whose only cluster is server, with a token and no certificate
// authority: what it reaches (or not) decides the exit code.
func kubeconfigFor(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `"}}]
users: [{name: u, user: {token: not-a-valid-token}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort is a loopback address nothing listens on: connections to it are refused at once.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// clusterCommands are every command that talks to the cluster, with arguments that pass validation.
var clusterCommands = [][]string{
	{"check"}, {"plan"}, {"plan", "deploy/web"}, {"status"}, {"status", "x"}, {"status", "x", "--watch"},
	{"restart", "deploy/web"}, {"restart", "--policy", "p"}, {"restart", "--secret", "s"},
	{"restart", "deploy/web", "--dry-run=server"}, {"renew", "api"}, {"renew", "--all", "--dry-run=server"},
}

func TestEveryCommandExitsThreeWhenTheClusterCannotBeReached(t *testing.T) {
	tlsServer := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsServer.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	tlsServer.StartTLS()                                   // with a certificate no kubeconfig trusts
	t.Cleanup(tlsServer.Close)
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`))
	}))
	t.Cleanup(unauthorized.Close)
	home := t.TempDir() // no ~/.kube/config in it
	servers := map[string]struct {
		flags      []string
		wantPhrase string
	}{
		"a refused connection": {
			flags: []string{"--kubeconfig", kubeconfigFor(t, "https://"+closedPort(t))}, wantPhrase: "connection refused",
		},
		"a server whose certificate is not trusted": {
			flags: []string{"--kubeconfig", kubeconfigFor(t, tlsServer.URL)}, wantPhrase: "certificate",
		},
		"a server that answers 401 Unauthorized": {
			flags: []string{"--kubeconfig", kubeconfigFor(t, unauthorized.URL)}, wantPhrase: "Unauthorized",
		},
		"a kubeconfig that does not exist": {
			flags: []string{"--kubeconfig", filepath.Join(home, "missing")}, wantPhrase: "kubeconfig",
		},
	}
	for what, s := range servers {
		for _, args := range clusterCommands {
			_, _, err := run(t, "certrollout", append(append([]string{}, args...), append(s.flags, "--request-timeout", "5s")...)...)
			if got := exitCode(err); got != ExitUnreachable || !strings.Contains(err.Error(), s.wantPhrase) {
				t.Errorf("%s, %s: want exit %d saying %q, got %d: %v", what, strings.Join(args, " "), ExitUnreachable, s.wantPhrase, got, err)
			}
		}
	}
	t.Run("no kubeconfig at all", func(t *testing.T) {
		t.Setenv("KUBECONFIG", "")
		t.Setenv("HOME", home)
		for _, args := range clusterCommands {
			_, _, err := run(t, "certrollout", args...)
			if got := exitCode(err); got != ExitUnreachable || !strings.Contains(err.Error(), "no cluster configured") {
				t.Errorf("%s: want exit %d saying no cluster is configured, got %d: %v", strings.Join(args, " "), ExitUnreachable, got, err)
			}
		}
	})
}

func TestAnInterruptedRequestIsNotAnUnreachableCluster(t *testing.T) {
	interrupted := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: context.Canceled}
	if got := exitCode(explain(interrupted, nil)); got != ExitFailed {
		t.Errorf("an interrupted request: exit %d, want %d", got, ExitFailed)
	}
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	if got := exitCode(refused); got != ExitUnreachable {
		t.Errorf("a refused connection, even unexplained: exit %d, want %d", got, ExitUnreachable)
	}
}

func TestBadInputExitsOne(t *testing.T) {
	for _, args := range [][]string{
		{"restart"}, {"restart", "deploy/web", "--no-such-flag"}, {"renew", "a", "--dry-run=maybe"},
		{"status", "--watch"}, {"plan", "-o", "xml"}, {"version", "-o", "xml"}, {"no-such-command"},
	} {
		if args[0] != "version" && args[0] != "no-such-command" {
			// A kubeconfig that loads (plan reads it before checking -o), for a server never contacted.
			args = append(args, "--kubeconfig", kubeconfigFor(t, "https://"+closedPort(t)))
		}
		_, _, err := run(t, "certrollout", args...)
		if got := exitCode(err); got != ExitFailed {
			t.Errorf("%s: want exit %d, got %d: %v", strings.Join(args, " "), ExitFailed, got, err)
		}
	}
}

// TestAForbiddenOrFailedOperationExitsOne runs the commands on the real cluster as a user without any
// RBAC (--as, as kubectl), and names objects that do not exist.
func TestAForbiddenOrFailedOperationExitsOne(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns := clustertest.Namespace(t)
	for _, args := range [][]string{
		{"plan", "--as", "nobody@example.com"}, {"status", "--as", "nobody@example.com"},
		{"restart", "deploy/web", "--as", "nobody@example.com"}, {"renew", "--all", "--as", "nobody@example.com"},
		{"restart", "deploy/does-not-exist"}, {"status", "does-not-exist"}, {"restart", "--policy", "does-not-exist"},
	} {
		_, _, err := run(t, "certrollout", append(args, "--kubeconfig", c.Kubeconfig, "-n", ns)...)
		if got := exitCode(err); got != ExitFailed {
			t.Errorf("%s: want exit %d, got %d: %v", strings.Join(args, " "), ExitFailed, got, err)
		}
	}
}
