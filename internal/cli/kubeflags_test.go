package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
)

// kubectlConnectionFlags are the flags kubectl users pass to reach and authenticate to a cluster.
var kubectlConnectionFlags = []string{
	"kubeconfig", "context", "cluster", "user", "namespace", "request-timeout", "server", "token",
	"certificate-authority", "client-certificate", "client-key", "insecure-skip-tls-verify", "tls-server-name",
	"as", "as-group", "as-uid",
}

func TestEveryClusterCommandAcceptsKubectlsConnectionFlags(t *testing.T) {
	root := NewRootCommand(IOStreams{}, "certrollout")
	for _, name := range []string{"check", "plan", "restart", "status", "renew"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range kubectlConnectionFlags {
			if cmd.Flags().Lookup(flag) == nil {
				t.Errorf("%s has no --%s", name, flag)
			}
		}
	}
}

// readerRules are what `check -n` needs in one namespace.
var readerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "pods"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"cronjobs", "jobs"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"cert-manager.io"}, Resources: []string{"certificates", "issuers"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"certrollout.io"}, Resources: []string{"rolloutpolicies", "certrollouts"}, Verbs: []string{"get", "list", "watch"}},
}

// token creates ServiceAccount ns/name bound to a Role with rules, and returns a token for it.
func token(t *testing.T, ns, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	c := clustertest.Cluster(t)
	ctx := context.Background()
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}

// A token, a server address and a CA file, with no credentials in the kubeconfig at all: the flags
// alone must reach and authenticate to the cluster, as with kubectl.
func TestServerTokenAndCAFlagsAloneReachTheCluster(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t) // served, so the CLI reads them and needs access to them
	ns := clustertest.Namespace(t)
	reader := token(t, ns, "reader", readerRules)
	// Without certrollouts: a served type the token may not list once made check wait forever for a
	// cache to sync; it must say Forbidden instead.
	partial := token(t, ns, "partial", append(append([]rbacv1.PolicyRule{}, readerRules[:4]...),
		rbacv1.PolicyRule{APIGroups: []string{"certrollout.io"}, Resources: []string{"rolloutpolicies"}, Verbs: []string{"get", "list", "watch"}}))

	empty := filepath.Join(t.TempDir(), "empty-kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(c.Dir, "pki", "ca.crt")
	cases := map[string]struct {
		args []string
		want string // in the error; "" means success
	}{
		"with the cluster's CA":                          {[]string{"--token", reader, "--certificate-authority", ca}, ""},
		"without verifying the server":                   {[]string{"--token", reader, "--insecure-skip-tls-verify"}, ""},
		"with a TLS server name the certificate holds":   {[]string{"--token", reader, "--certificate-authority", ca, "--tls-server-name", "localhost"}, ""},
		"with a TLS server name the certificate lacks":   {[]string{"--token", reader, "--certificate-authority", ca, "--tls-server-name", "elsewhere.example"}, "elsewhere.example"},
		"impersonating a user the token may not act as":  {[]string{"--token", reader, "--certificate-authority", ca, "--as", "someone-else"}, "may not impersonate"},
		"with no CA and verification on (system roots)":  {[]string{"--token", reader}, "certificate signed by unknown authority"},
		"without access to a served type (CertRollouts)": {[]string{"--token", partial, "--certificate-authority", ca}, `cannot list resource "certrollouts"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"check", "--kubeconfig", empty, "--server", c.Config.Host, "-n", ns, "--request-timeout", "10s"}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, _, err := runContext(ctx, t, "certrollout", args...)
			switch {
			case ctx.Err() != nil:
				t.Fatalf("check did not finish within a minute (%v)", err)
			case tc.want == "" && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// --as and --as-group impersonate, as with kubectl: an admin acting as a user without RBAC is refused
// as that user, and acting in the system:masters group is allowed again.
func TestAsAndAsGroupImpersonate(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	_, _, err := run(t, "certrollout", "check", "--kubeconfig", c.Kubeconfig, "-n", ns, "--as", "jane")
	if err == nil || !strings.Contains(err.Error(), `User "jane" cannot list`) {
		t.Fatalf("--as jane: want a Forbidden naming jane, got %v", err)
	}
	if _, _, err := run(t, "certrollout", "check", "--kubeconfig", c.Kubeconfig, "-n", ns, "--as", "jane", "--as-group", "system:masters"); err != nil {
		t.Fatalf("--as jane --as-group system:masters: %v", err)
	}
}
