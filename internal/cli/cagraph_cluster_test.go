package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// caGraphEnv creates, in a fresh namespace, through the test cluster's cert-manager (v1.11: CA keys are
// kept on renewal unless rotationPolicy is Always):
//   - CA Certificate ca (kept key) behind Issuer ca, which signs api (used by Deployment api) and web;
//   - CA Certificate rotating-ca (rotationPolicy Always) behind Issuer rotating, which signs db;
//   - in cert-manager's cluster resource namespace, CA Certificate <ns>-root behind ClusterIssuer
//     <ns>-root, which signs edge in the namespace.
func caGraphEnv(t *testing.T) (ns, root string) {
	t.Helper()
	c := clustertest.Cluster(t)
	ns = clustertest.Namespace(t)
	root = ns + "-root"
	ctx := context.Background()
	leaf := func(name, issuer, kind string) string {
		return `---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec: {secretName: ` + name + `-tls, commonName: ` + name + `, dnsNames: [` + name + `], issuerRef: {name: ` + issuer + `, kind: ` + kind + `}}
`
	}
	manifest := testgen.CertManagerChain(ns, "api", "api-tls", "2160h", "") + leaf("web", "ca", "Issuer") + `---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: rotating-ca, namespace: ` + ns + `}
spec: {isCA: true, commonName: rotating-ca, secretName: rotating-ca, privateKey: {rotationPolicy: Always}, issuerRef: {name: selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: rotating, namespace: ` + ns + `}
spec: {ca: {secretName: rotating-ca}}
` + leaf("db", "rotating", "Issuer") + `---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + root + `, namespace: ` + localcluster.ProbeNamespace + `}
spec: {isCA: true, commonName: ` + root + `, secretName: ` + root + `, issuerRef: {name: probe-selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: ` + root + `}
spec: {ca: {secretName: ` + root + `}}
` + leaf("edge", root, "ClusterIssuer")
	if err := localcluster.Apply(ctx, c.Config, []byte(manifest)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Cluster-scoped and in cert-manager's namespace: not removed with the test namespace.
		gvr := localcluster.CertificateGVR
		_ = c.Dynamic.Resource(gvr.GroupVersion().WithResource("clusterissuers")).Delete(context.Background(), root, metav1.DeleteOptions{})
		_ = c.Dynamic.Resource(gvr).Namespace(localcluster.ProbeNamespace).Delete(context.Background(), root, metav1.DeleteOptions{})
		_ = c.Client.CoreV1().Secrets(localcluster.ProbeNamespace).Delete(context.Background(), root, metav1.DeleteOptions{})
	})
	for _, cert := range []struct{ ns, name string }{{ns, "ca"}, {ns, "rotating-ca"}, {localcluster.ProbeNamespace, root}, {ns, "api"}, {ns, "web"}, {ns, "db"}, {ns, "edge"}} {
		clustertest.Eventually(t, 2*time.Minute, "Certificate "+cert.name+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, c, cert.ns, cert.name)
		})
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, testgen.Deployment(ns, "api", 1, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns, root
}

// chains maps each Secret name of the report's tls.crt items to its CA chain status.
func chains(rep CheckReport) map[string]string {
	out := map[string]string{}
	for _, it := range rep.Items {
		if it.CAChain != nil && it.Source.Key == "tls.crt" {
			out[it.Source.Name] = it.CAChain.Status
		}
	}
	return out
}

func TestCAGraphFollowsCARenewals(t *testing.T) {
	ns, root := caGraphEnv(t)
	kubeconfig := clustertest.Cluster(t).Kubeconfig
	certrollout := func(args ...string) (string, string, error) {
		t.Helper()
		return run(t, "certrollout", append(args, "--kubeconfig", kubeconfig)...)
	}
	wantChains := func(t *testing.T, rep CheckReport, want map[string]cagraph.Status) {
		t.Helper()
		got := chains(rep)
		for secret, status := range want {
			if got[secret] != string(status) {
				t.Errorf("%s: CA chain %q, want %s (all: %v)", secret, got[secret], status, got)
			}
		}
	}

	t.Run("every leaf is current after issuance, the ClusterIssuer's CA read from the cluster resource namespace", func(t *testing.T) {
		rep, stderr, code := checkJSON(t, "--kubeconfig", kubeconfig, "-n", ns)
		if code != checkExitOK {
			t.Fatalf("exit %d, want 0:\n%s", code, stderr)
		}
		wantChains(t, rep, map[string]cagraph.Status{"api-tls": cagraph.Current, "web-tls": cagraph.Current, "db-tls": cagraph.Current, "edge-tls": cagraph.Current})
		issuers := map[string]CheckCAIssuer{}
		for _, ci := range rep.CAIssuers {
			issuers[issuerRefString(ci.CheckIssuerRef)] = ci
		}
		if ci := issuers["Issuer "+ns+"/ca"]; ci.CA == nil || ci.CA.CommonName != "test-ca" || ci.Leaves != 2 || ci.NotCurrent != 0 || !ci.Ready {
			t.Errorf("Issuer ca: %+v", ci)
		}
		if ci := issuers["ClusterIssuer "+root]; ci.CA == nil || ci.Secret.Namespace != localcluster.ProbeNamespace || ci.Leaves != 1 {
			t.Errorf("ClusterIssuer %s: want its CA from %s, signing edge: %+v", root, localcluster.ProbeNamespace, ci)
		}
		if len(issuers) != 3 {
			t.Errorf("want the two CA Issuers of the namespace and the ClusterIssuer that signs there, not selfsigned nor other ClusterIssuers: %v", issuers)
		}
		ca := e2eItem(t, rep, ns, "ca", "tls.crt")
		if len(ca.CAOf) != 1 || ca.CAOf[0].Name != "ca" {
			t.Errorf("the CA Secret's tls.crt names its issuer: %+v", ca.CAOf)
		}
	})

	// The CAs renew in a later second than their leaves were issued (notBefore has one-second resolution).
	time.Sleep(1100 * time.Millisecond)
	for _, r := range [][]string{{"renew", "ca", "rotating-ca", "-n", ns, "--wait", "--timeout", "2m"}, {"renew", root, "-n", localcluster.ProbeNamespace, "--wait", "--timeout", "2m"}} {
		if out, stderr, err := certrollout(r...); err != nil {
			t.Fatalf("%v: %v\n%s%s", r, err, out, stderr)
		}
	}

	t.Run("after the CAs renew, leaves are issued under the previous CA, or not signed by it when its key rotated", func(t *testing.T) {
		rep, stderr, code := checkJSON(t, "--kubeconfig", kubeconfig, "-n", ns)
		wantChains(t, rep, map[string]cagraph.Status{"api-tls": cagraph.IssuedUnderPreviousCA, "web-tls": cagraph.IssuedUnderPreviousCA,
			"db-tls": cagraph.NotSignedByCurrentCA, "edge-tls": cagraph.IssuedUnderPreviousCA})
		if code != checkExitWarning || !strings.Contains(stderr, "WARNING: Secret "+ns+"/") || !strings.Contains(stderr, "is not issued by the current CA of") ||
			!strings.Contains(stderr, "(4 certificates in all need attention)") {
			t.Errorf("exit %d (want 1), stderr:\n%s", code, stderr)
		}
		if it := e2eItem(t, rep, ns, "db-tls", "tls.crt"); it.Severity != SeverityWarning || !strings.Contains(it.CAChain.Message, "signed by another CA key") {
			t.Errorf("db-tls: %s %+v", it.Severity, it.CAChain)
		}

		out, _, _ := certrolloutCheck(t, kubeconfig, ns)
		if !strings.Contains(out, "CA CHAIN") || !strings.Contains(out, "LEAF ") || !strings.Contains(out, "certrollout renew db -n "+ns) {
			t.Errorf("the table shows CA CHAIN and the leaves to re-issue:\n%s", out)
		}

		out, stderr, err := certrollout("plan", "-n", ns, "deploy/api")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if !strings.Contains(out, "issued by Issuer ca (CA sha256 ") || !strings.Contains(out, "not issued under its current CA (IssuedUnderPreviousCA: ") ||
			!strings.Contains(out, "re-issue it (certrollout renew api -n "+ns+")") {
			t.Errorf("plan should say api-tls was issued under the previous CA:\n%s", out)
		}
	})

	t.Run("a re-issued leaf is current again, the others stay as they were", func(t *testing.T) {
		for _, leaf := range []string{"api", "db"} {
			if out, stderr, err := certrollout("renew", leaf, "-n", ns, "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("renew %s: %v\n%s%s", leaf, err, out, stderr)
			}
		}
		rep, _, code := checkJSON(t, "--kubeconfig", kubeconfig, "-n", ns)
		wantChains(t, rep, map[string]cagraph.Status{"api-tls": cagraph.Current, "db-tls": cagraph.Current,
			"web-tls": cagraph.IssuedUnderPreviousCA, "edge-tls": cagraph.IssuedUnderPreviousCA})
		if code != checkExitWarning {
			t.Errorf("exit %d: web and edge still need re-issuing", code)
		}
		out, stderr, err := certrollout("plan", "-n", ns, "deploy/api", "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var plan PlanReport
		if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan.Items) != 1 || len(plan.Items[0].Sources) != 1 {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		if ch := plan.Items[0].Sources[0].CAChain; ch == nil || ch.Status != string(cagraph.Current) || ch.Certificate != "api" || ch.CAFingerprint == "" {
			t.Errorf("plan's caChain for api-tls: %+v", ch)
		}
	})
}

func certrolloutCheck(t *testing.T, kubeconfig, ns string) (string, string, int) {
	t.Helper()
	return runCheck(t, time.Now(), "--kubeconfig", kubeconfig, "-n", ns)
}

func e2eItem(t *testing.T, rep CheckReport, ns, name, key string) CheckItem {
	t.Helper()
	for _, it := range rep.Items {
		if it.Source.Namespace == ns && it.Source.Kind == "Secret" && it.Source.Name == name && it.Source.Key == key {
			return it
		}
	}
	t.Fatalf("no item for Secret %s/%s %s", ns, name, key)
	return CheckItem{}
}
