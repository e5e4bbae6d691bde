package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// applyAdmissionPolicy installs the shipped ValidatingAdmissionPolicy (config/admission) for the test.
func applyAdmissionPolicy(t *testing.T) {
	t.Helper()
	c := clustertest.Cluster(t)
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "admission", "admission_policy.yaml")) //nolint:gosec // the repository's own file
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(context.Background(), c.Config, data); err != nil {
		t.Fatalf("applying config/admission: %v", err)
	}
	t.Cleanup(func() {
		meta := metav1.ObjectMeta{Name: "certrollout.io-restart-rights"}
		_ = c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), meta.Name, metav1.DeleteOptions{})
		_ = c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), meta.Name, metav1.DeleteOptions{})
	})
}

// TestRestartDryRunServerIsJudgedByAdmissionAndClientSendsNothing runs restart --dry-run as a tenant who
// may create CertRollouts and read Deployments but not patch them: the server dry run is refused by the
// shipped admission policy (what a real restart would meet), the client dry run never asks, and neither
// stores anything. For an admin, the server dry run passes and stores nothing either.
func TestRestartDryRunServerIsJudgedByAdmissionAndClientSendsNothing(t *testing.T) {
	e := newRestartEnv(t)
	applyAdmissionPolicy(t)
	e.deploy(testgen.Deployment(e.ns, "web", 1, nil), false)
	const tenant = "dry-run-tenant@example.com"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "tenant"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"certrollouts", "rolloutpolicies"}, Verbs: []string{"get", "list", "create"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "tenant"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: tenant}}}
	if err := e.cl.Create(context.Background(), role); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.Create(context.Background(), binding); err != nil {
		t.Fatal(err)
	}

	// Admission may take a moment to see a new policy: retry until the tenant's server dry run is refused.
	var err error
	clustertest.Eventually(t, 30*time.Second, "the admission policy to refuse the tenant", func(context.Context) (bool, error) {
		_, _, err = e.run("restart", "deploy/web", "--dry-run=server", "--as", tenant)
		return err != nil, nil
	})
	if exitCode(err) != ExitFailed || !strings.Contains(err.Error(), "must be allowed to patch Deployments in namespace "+e.ns) {
		t.Fatalf("server dry run as the tenant: want exit 1 from the admission policy, got %d: %v", exitCode(err), err)
	}

	out, stderr, err := e.run("restart", "deploy/web", "--dry-run=client", "--as", tenant)
	if err != nil || !strings.Contains(out, "certrollout.certrollout.io/web-<generated> created (dry run): Deployment/web") {
		t.Fatalf("client dry run: %v\n%s%s", err, out, stderr)
	}
	bare, _, err := e.run("restart", "deploy/web", "--dry-run", "--as", tenant)
	if err != nil || bare != out {
		t.Fatalf("bare --dry-run should be --dry-run=client: %v\n%s", err, bare)
	}

	out, stderr, err = e.run("restart", "deploy/web", "--dry-run=server")
	if err != nil || !strings.Contains(out, "created (server dry run): Deployment/web") || strings.Contains(out, "<generated>") {
		t.Fatalf("server dry run as admin: %v\n%s%s", err, out, stderr)
	}
	if n := len(e.rollouts()); n != 0 {
		t.Fatalf("dry runs created %d CertRollouts", n)
	}
	if e.replicaSets("web") > 1 {
		t.Fatal("a dry run restarted the Deployment")
	}
}

// TestRenewDryRunTriggersNothing: neither dry run sets the Issuing condition; the server one is sent.
func TestRenewDryRunTriggersNothing(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	for _, mode := range []string{DryRunClient, DryRunServer} {
		out, stderr, err := e.run("renew", "api", "--dry-run="+mode)
		want := "certificate.cert-manager.io/api renewal triggered (" + map[string]string{DryRunClient: "dry run", DryRunServer: "server dry run"}[mode] + ")"
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("--dry-run=%s: want %q, got %v\n%s%s", mode, want, err, out, stderr)
		}
		if crt := e.certificate("api"); crt.Condition(certmanager.ConditionIssuing) != nil {
			t.Fatalf("--dry-run=%s triggered a renewal: %+v", mode, crt.Condition(certmanager.ConditionIssuing))
		}
	}
	out, _, err := e.run("renew", "api", "--dry-run=server", "-o", "json")
	var report RenewReport
	if err != nil || json.Unmarshal([]byte(out), &report) != nil || !report.DryRun || report.DryRunMode != DryRunServer || len(report.Certificates) != 1 {
		t.Fatalf("want a RenewReport marked as a server dry run, got %v\n%s", err, out)
	}
	// A dry run is no way around RBAC: a user without rights is refused as for a real renewal.
	_, _, err = e.run("renew", "api", "--dry-run=server", "--as", "nobody@example.com")
	if exitCode(err) != ExitFailed || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("server dry run without rights: want exit 1 forbidden, got %v", err)
	}
}
