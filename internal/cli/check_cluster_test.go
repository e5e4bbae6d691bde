package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// checkEnv is a namespace holding one of each thing check reports, and a second namespace for -A.
type checkEnv struct {
	ns, other string
	// run labels the Secrets and ConfigMaps -l tests select (unique per test run).
	run string
}

// newCheckEnv creates, in a fresh namespace:
//   - a cert-manager issued Secret api-tls (and its CA Secret ca), through the test cluster's cert-manager;
//   - a cert-manager Certificate "pending" whose issuer does not exist, so its Secret never appears;
//   - Secret web-tls (leaf expiring in 3 days, labelled) renewed after Deployment web's 2 pods started,
//     so they are stale for tls.crt, but not for ca.crt, whose CA did not change;
//   - ConfigMap ca-bundle (two CAs, the earlier expiring in 40 days, labelled) used by Deployment
//     bundle-user;
//   - Secret broken-tls whose tls.crt does not parse;
//
// and in a second namespace a labelled Secret other-tls (expiring in 100 days).
func newCheckEnv(t *testing.T) *checkEnv {
	t.Helper()
	c := clustertest.Cluster(t)
	e := &checkEnv{ns: clustertest.Namespace(t), other: clustertest.Namespace(t)}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	e.run = hex.EncodeToString(suffix)
	labels := map[string]string{"check-run": e.run}
	ctx := context.Background()
	now := time.Now()

	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(e.ns, "api", "api-tls", "2160h", "")+`---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: pending, namespace: `+e.ns+`}
spec: {secretName: pending-tls, commonName: pending, issuerRef: {name: no-such-issuer, kind: Issuer}}
`)); err != nil {
		t.Fatal(err)
	}

	// The CA is older than the backdate allowance, so ca.crt reads as issued long before the pods.
	ca := testgen.CA(t, "web-ca", testgen.WithValidity(now.Add(-5*time.Hour), now.AddDate(1, 0, 0)))
	webSecret := func() *corev1.Secret {
		leaf := testgen.Leaf(t, ca, "web", testgen.WithValidity(now.Add(-time.Hour), now.Add(72*time.Hour)))
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web-tls", Labels: labels}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()}}
	}
	if _, err := c.Client.CoreV1().Secrets(e.ns).Create(ctx, webSecret(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	soon := testgen.CA(t, "bundle-soon", testgen.WithValidity(now.Add(-5*time.Hour), now.AddDate(0, 0, 40)))
	late := testgen.CA(t, "bundle-late", testgen.WithValidity(now.Add(-5*time.Hour), now.AddDate(10, 0, 0)))
	bundle := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "ca-bundle", Labels: labels},
		Data: map[string]string{"ca.crt": string(testgen.Concat(late.PEM(), soon.PEM())), "README": "not a certificate"}}
	if _, err := c.Client.CoreV1().ConfigMaps(e.ns).Create(ctx, bundle, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "broken-tls"},
		Data: map[string][]byte{"tls.crt": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}}
	if _, err := c.Client.CoreV1().Secrets(e.ns).Create(ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	otherLeaf := testgen.Leaf(t, ca, "other", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(0, 0, 100)))
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.other, Name: "other-tls", Labels: labels}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": otherLeaf.PEM(), "tls.key": otherLeaf.KeyPEM(t)}}
	if _, err := c.Client.CoreV1().Secrets(e.other).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name     string
		replicas int32
		pod      testgen.PodOption
	}{{"web", 2, testgen.WithSecretVolume("web-tls")}, {"bundle-user", 1, testgen.WithConfigMapVolume("ca-bundle")}} {
		if _, err := c.Client.AppsV1().Deployments(e.ns).Create(ctx, testgen.Deployment(e.ns, d.name, d.replicas, []testgen.PodOption{d.pod}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitDeploymentAvailable(t, e.ns, "web")
	waitDeploymentAvailable(t, e.ns, "bundle-user")
	// Renewed after the pods started (start times have one-second resolution).
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.Client.CoreV1().Secrets(e.ns).Update(ctx, webSecret(), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "cert-manager to issue api-tls", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, e.ns, "api")
	})
	return e
}

func (e *checkEnv) item(t *testing.T, rep CheckReport, ns, kind, name, key string) CheckItem {
	t.Helper()
	for _, it := range rep.Items {
		if it.Source.Namespace == ns && it.Source.Kind == kind && it.Source.Name == name && it.Source.Key == key {
			return it
		}
	}
	t.Fatalf("no item for %s %s/%s %s in %+v", kind, ns, name, key, rep.Items)
	return CheckItem{}
}

func checkJSON(t *testing.T, args ...string) (CheckReport, string, int) {
	t.Helper()
	out, stderr, code := runCheck(t, time.Now(), append(args, "-o", "json")...)
	var rep CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not a CheckReport (exit %d): %v\n%s\n%s", code, err, out, stderr)
	}
	return rep, stderr, code
}

func TestCheckCluster(t *testing.T) {
	e := newCheckEnv(t)
	kubeconfig := clustertest.Cluster(t).Kubeconfig

	t.Run("lists every certificate key with its cert-manager Certificate, consumers and stale pods", func(t *testing.T) {
		rep, stderr, code := checkJSON(t, "--kubeconfig", kubeconfig, "-n", e.ns)
		// broken-tls is a problem, which is critical whatever the thresholds.
		if code != checkExitCritical {
			t.Fatalf("exit %d, want 2 for broken-tls; stderr:\n%s", code, stderr)
		}
		if first := rep.Items[0].Source; first.Name != "web-tls" || first.Key != "tls.crt" {
			t.Errorf("soonest first: want web-tls tls.crt (3 days), got %+v", first)
		}
		web := e.item(t, rep, e.ns, "Secret", "web-tls", "tls.crt")
		if web.Certificate.CommonName != "web" || web.Certificate.IssuerCommonName != "web-ca" || web.Certificates != 2 || web.CertManager != nil {
			t.Errorf("web-tls tls.crt: %+v %+v", web, web.Certificate)
		}
		if len(web.Consumers) != 1 || web.Consumers[0].Kind != "Deployment" || web.Consumers[0].Name != "web" || len(web.Consumers[0].StalePods) != 2 || web.StalePods != 2 {
			t.Errorf("web-tls tls.crt: want Deployment web with its 2 pods stale, got %+v (stale %d)", web.Consumers, web.StalePods)
		}
		if webCA := e.item(t, rep, e.ns, "Secret", "web-tls", "ca.crt"); len(webCA.Consumers) != 1 || webCA.StalePods != 0 {
			t.Errorf("web-tls ca.crt: its CA did not change, so no pod is stale for it: %+v", webCA.Consumers)
		}
		api := e.item(t, rep, e.ns, "Secret", "api-tls", "tls.crt")
		if cm := api.CertManager; cm == nil || cm.Name != "api" || cm.Revision != 1 || !cm.Ready || cm.RenewalTime == nil || !cm.StatusCurrent {
			t.Errorf("api-tls: want cert-manager Certificate api revision 1 Ready with a renewal time, got %+v", cm)
		} else if !cm.RenewalTime.After(time.Now()) || !cm.RenewalTime.Before(api.Certificate.NotAfter) {
			t.Errorf("api-tls renews at %s, expires %s", cm.RenewalTime, api.Certificate.NotAfter)
		}
		if api.Certificate.CommonName != "api" || api.Certificate.IssuerCommonName != "test-ca" || len(api.Consumers) != 0 {
			t.Errorf("api-tls: %+v consumers %+v", api.Certificate, api.Consumers)
		}
		if caSecret := e.item(t, rep, e.ns, "Secret", "ca", "tls.crt"); caSecret.CertManager == nil || caSecret.CertManager.Name != "ca" || !caSecret.Certificate.IsCA {
			t.Errorf("the CA Secret should be linked to Certificate ca: %+v", caSecret.CertManager)
		}
		bundle := e.item(t, rep, e.ns, "ConfigMap", "ca-bundle", "ca.crt")
		if bundle.Certificates != 2 || bundle.Certificate.CommonName != "bundle-soon" || len(bundle.Consumers) != 1 || bundle.Consumers[0].Name != "bundle-user" || bundle.StalePods != 0 {
			t.Errorf("ca-bundle: want 2 certificates, the earliest bundle-soon, used by bundle-user, none stale: %+v %+v", bundle, bundle.Certificate)
		}
		e.item(t, rep, e.ns, "ConfigMap", "kube-root-ca.crt", "ca.crt")
		pending := e.item(t, rep, e.ns, "Secret", "pending-tls", "")
		if pending.Certificate != nil || pending.CertManager == nil || pending.CertManager.Name != "pending" || pending.CertManager.Ready || pending.Severity != "" {
			t.Errorf("pending: want a not-issued item linked to Certificate pending (not Ready), got %+v %+v", pending, pending.CertManager)
		}
		if last := rep.Items[len(rep.Items)-1].Source.Name; last != "pending-tls" {
			t.Errorf("items without a certificate come last, got %s", last)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].Source.Name != "broken-tls" || rep.Problems[0].Source.Key != "tls.crt" || !strings.Contains(rep.Problems[0].Message, "PEM block 1 (CERTIFICATE) at line 1") {
			t.Errorf("problems: want broken-tls tls.crt and why, got %+v", rep.Problems)
		}
		if !strings.Contains(stderr, "CRITICAL: certificate data could not be read: Secret "+e.ns+"/broken-tls tls.crt: PEM block 1") {
			t.Errorf("stderr: %s", stderr)
		}
		for _, it := range rep.Items {
			if it.Source.Namespace != e.ns {
				t.Errorf("-n %s listed %+v", e.ns, it.Source)
			}
		}
	})

	t.Run("the table reads like kubectl, problems below it", func(t *testing.T) {
		out, _, _ := runCheck(t, time.Now(), "--kubeconfig", kubeconfig, "-n", e.ns, "-o", "wide")
		lines := strings.Split(out, "\n")
		// CA CHAIN and CA ISSUER: Issuer ca of cert-manager's test chain signs api.
		for _, h := range []string{"NAME", "KEY", "SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL", "CERTIFICATE", "REVISION", "READY", "RENEWS IN", "CONSUMERS", "STALE PODS", "CA CHAIN", "FINGERPRINT", "CA ISSUER", "USED BY"} {
			if !strings.Contains(lines[0], h) {
				t.Errorf("header lacks %s: %s", h, lines[0])
			}
		}
		if strings.HasPrefix(lines[0], "NAMESPACE") {
			t.Errorf("NAMESPACE is for -A only: %s", lines[0])
		}
		var web, api, pending, problem []string
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) > 2 && f[0] == "secret/web-tls" && f[1] == "tls.crt":
				web = f
			case len(f) > 2 && f[0] == "secret/api-tls" && f[1] == "tls.crt":
				api = f
			case len(f) > 0 && f[0] == "secret/pending-tls":
				pending = f
			case len(f) > 2 && f[0] == "secret/broken-tls":
				problem = f
			}
		}
		// web-tls: 1 consumer, 2 stale pods, no CA issuer, 2 certificates, used by deployment/web (wide).
		if web == nil || web[len(web)-1] != "deployment/web" || !strings.Contains(strings.Join(web, " "), " 1 2 <none> 2 ") {
			t.Errorf("web-tls row: %v", web)
		}
		if api == nil || !strings.Contains(strings.Join(api, " "), " api 1 True ") || !strings.Contains(strings.Join(api, " "), " Current ") || !strings.Contains(strings.Join(api, " "), " issuer/ca ") {
			t.Errorf("api-tls row should show Certificate api, revision 1, Ready: %v", api)
		}
		if pending == nil || !strings.Contains(strings.Join(pending, " "), "not issued pending <none> False") {
			t.Errorf("pending-tls row: %v", pending)
		}
		if problem == nil || problem[1] != "tls.crt" || !strings.Contains(strings.Join(problem, " "), "PEM block 1") {
			t.Errorf("problem row: %v", problem)
		}
	})

	t.Run("-l selects Secrets and ConfigMaps and the thresholds set the exit code", func(t *testing.T) {
		sel := "check-run=" + e.run
		for name, tc := range map[string]struct {
			args []string
			code int
			line []string
		}{
			"0 when nothing is within --warn": {[]string{"--warn", "1d"}, 0, nil},
			"1 within --warn": {[]string{"--warn", "30d", "--critical", "1d"}, 1,
				[]string{"WARNING: Secret " + e.ns + "/web-tls tls.crt expires in 2d", "within --warn 30d"}},
			"2 within --critical, naming the soonest": {[]string{"--warn", "60d", "--critical", "7d"}, 2,
				[]string{"CRITICAL: Secret " + e.ns + "/web-tls tls.crt expires in 2d", "within --critical 7d (2 certificates in all need attention)"}},
		} {
			t.Run(name, func(t *testing.T) {
				rep, stderr, code := checkJSON(t, append([]string{"--kubeconfig", kubeconfig, "-n", e.ns, "-l", sel}, tc.args...)...)
				if code != tc.code {
					t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
				}
				for _, l := range tc.line {
					if !strings.Contains(stderr, l) || !strings.Contains(rep.Reason, l) {
						t.Errorf("stderr and reason should say %q:\n%s\n%s", l, stderr, rep.Reason)
					}
				}
				// The labelled web-tls (2 keys) and ca-bundle; not broken-tls, api-tls, kube-root-ca.crt or
				// the pending Certificate.
				var got []string
				for _, it := range rep.Items {
					got = append(got, it.Source.Name+" "+it.Source.Key)
				}
				// Soonest first: the leaf (3 days), the bundle's CA (40 days), web-tls's CA (a year).
				if strings.Join(got, ",") != "web-tls tls.crt,ca-bundle ca.crt,web-tls ca.crt" {
					t.Errorf("-l %s: got %v", sel, got)
				}
				if len(rep.Problems) != 0 {
					t.Errorf("problems outside the selector: %+v", rep.Problems)
				}
			})
		}
	})

	t.Run("-A spans namespaces, -n keeps to one", func(t *testing.T) {
		sel := "check-run=" + e.run
		rep, stderr, _ := checkJSON(t, "--kubeconfig", kubeconfig, "-A", "-l", sel)
		seen := map[string]bool{}
		for _, it := range rep.Items {
			seen[it.Source.Namespace+"/"+it.Source.Name] = true
		}
		if !seen[e.ns+"/web-tls"] || !seen[e.other+"/other-tls"] || len(seen) != 3 {
			t.Errorf("-A -l: want web-tls, ca-bundle and other-tls from both namespaces, got %v\n%s", seen, stderr)
		}
		out, _, _ := runCheck(t, time.Now(), "--kubeconfig", kubeconfig, "-A", "-l", sel)
		if !strings.HasPrefix(out, "NAMESPACE ") || !strings.Contains(out, e.other+" ") {
			t.Errorf("-A table: NAMESPACE first:\n%s", out)
		}
		rep, _, code := checkJSON(t, "--kubeconfig", kubeconfig, "-n", e.other)
		if code != 0 {
			t.Errorf("exit %d for a namespace with nothing due", code)
		}
		for _, it := range rep.Items {
			if it.Source.Namespace != e.other {
				t.Errorf("-n %s listed %+v", e.other, it.Source)
			}
		}
		e.item(t, rep, e.other, "Secret", "other-tls", "tls.crt")
	})

	t.Run("--include-cluster with --files reports both", func(t *testing.T) {
		fixtures(t)
		rep, _, _ := checkJSON(t, "--kubeconfig", kubeconfig, "-n", e.other, "--include-cluster", "--files", "testdata/files/web.pem")
		kinds := map[string]bool{}
		for _, it := range rep.Items {
			kinds[it.Source.Kind] = true
		}
		if !kinds["File"] || !kinds["Secret"] {
			t.Errorf("want files and Secrets, got %v", kinds)
		}
		out, _, _ := runCheck(t, time.Now(), "--kubeconfig", kubeconfig, "-n", e.other, "--include-cluster", "--files", "testdata/files/web.pem")
		if !strings.HasPrefix(out, "FILE ") || !strings.Contains(out, "\n\nNAME ") {
			t.Errorf("want the files table, a blank line, the cluster table:\n%s", out)
		}
	})

	t.Run("a user without RBAC is told the verb and resource", func(t *testing.T) {
		_, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kubeconfig, "--as", "nobody@example.com", "-n", e.ns)
		want := `forbidden: User "nobody@example.com" cannot list resource "secrets" in API group "" in the namespace "` + e.ns + `"`
		if code != checkExitUnknown || !strings.Contains(stderr, want) {
			t.Fatalf("exit %d (want 3), want %q in:\n%s", code, want, stderr)
		}
	})
}

func TestCheckUnreachableClusterSaysWhichServer(t *testing.T) {
	_, stderr, code := runCheck(t, time.Now(), "--kubeconfig", closedKubeconfig(t))
	if code != checkExitUnknown || !strings.Contains(stderr, "cannot reach the Kubernetes API server at https://127.0.0.1:1") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("exit %d (want 3):\n%s", code, stderr)
	}
}
