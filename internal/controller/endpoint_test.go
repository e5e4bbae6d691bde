package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// freeAddress is a loopback address nothing listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runManager starts a manager until the test ends.
func runManager(t *testing.T, cfg *rest.Config, o ManagerOptions) {
	t.Helper()
	mgr, err := NewManager(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

// scrape GETs url with the bearer token (none when empty) and returns the status and the body.
func scrape(ctx context.Context, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The controller's certificate is self-signed, generated at start: as the chart's monitors, the
	// scraper skips verification and the token is what the endpoint checks.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see above
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// serviceAccountToken creates a ServiceAccount in ns and returns a token of it (TokenRequest API).
func serviceAccountToken(t *testing.T, c *localcluster.Cluster, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var token string
	clustertest.Eventually(t, time.Minute, "a token for ServiceAccount "+name, func(ctx context.Context) (bool, error) {
		tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		token = tr.Status.Token
		return true, nil
	})
	return token
}

// bindMetricsReader binds the shipped ClusterRole certrollout-metrics-reader to a ServiceAccount and waits
// until the API server's authorizer says it may GET /metrics.
func bindMetricsReader(t *testing.T, c *localcluster.Cluster, ns, account string) {
	t.Helper()
	ctx := context.Background()
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "certrollout-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: account, Namespace: ns}},
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), b.Name, metav1.DeleteOptions{})
	})
	user := "system:serviceaccount:" + ns + ":" + account
	clustertest.Eventually(t, time.Minute, user+" to be allowed GET /metrics", func(ctx context.Context) (bool, error) {
		sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed, err
	})
}

func TestSecureMetricsAnswerOnlyCallersTheAPIServerAllowsToGetThem(t *testing.T) {
	c := clustertest.Cluster(t)
	installShippedRBAC(t, c) // config/rbac as shipped: the controller's TokenReview rights and the reader role
	e := newEnv(t, testOptions())
	addr := freeAddress(t)
	// As the shipped ServiceAccount, so its TokenReview and SubjectAccessReview rights are what is tested.
	runManager(t, serviceAccountConfig(t, c), ManagerOptions{Options: e.opts, MetricsBindAddress: addr, MetricsSecure: true, HealthProbeBindAddress: "0"})
	url := "https://" + addr + "/metrics"

	stranger := serviceAccountToken(t, c, e.ns, "stranger")
	reader := serviceAccountToken(t, c, e.ns, "prometheus")
	bindMetricsReader(t, c, e.ns, "prometheus")

	clustertest.Eventually(t, time.Minute, "the metrics endpoint to refuse a request without a token", func(ctx context.Context) (bool, error) {
		code, body, err := scrape(ctx, url, "")
		if err != nil {
			return false, err
		}
		if code != http.StatusUnauthorized {
			return false, fmt.Errorf("status %d, want 401: %.200s", code, body)
		}
		return true, nil
	})
	ctx := context.Background()
	if code, body, err := scrape(ctx, url, stranger); err != nil || code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without certrollout-metrics-reader: status %d (%v), want 403: %.200s", code, err, body)
	}
	// controller-runtime's filter answers 500 when the TokenReview reports an error, as it does for a
	// token that is not a JWT; refused is what matters.
	if code, body, err := scrape(ctx, url, "not-a-token"); err != nil || code == http.StatusOK {
		t.Errorf("an invalid token: status %d (%v), want a refusal: %.200s", code, err, body)
	}
	code, body, err := scrape(ctx, url, reader)
	if err != nil || code != http.StatusOK || !strings.Contains(body, "certrollout_") {
		t.Errorf("a ServiceAccount bound to certrollout-metrics-reader: status %d (%v), want 200 with certrollout_ metrics: %.300s", code, err, body)
	}
	if code, _, err := scrape(ctx, "http://"+addr+"/metrics", reader); err == nil && code == http.StatusOK {
		t.Error("the secure endpoint answered plain HTTP")
	}
}

func TestPlainMetricsAnswerAnyoneOverHTTP(t *testing.T) {
	e := newEnv(t, testOptions())
	addr := freeAddress(t)
	runManager(t, e.c.Config, ManagerOptions{Options: e.opts, MetricsBindAddress: addr, HealthProbeBindAddress: "0"})
	clustertest.Eventually(t, time.Minute, "the plain metrics endpoint to answer", func(ctx context.Context) (bool, error) {
		code, body, err := scrape(ctx, "http://"+addr+"/metrics", "")
		if err != nil {
			return false, err
		}
		if code != http.StatusOK || !strings.Contains(body, "certrollout_") {
			return false, fmt.Errorf("status %d: %.200s", code, body)
		}
		return true, nil
	})
}

func TestTheMetricsCertDirServesItsCertificate(t *testing.T) {
	c := clustertest.Cluster(t)
	e := newEnv(t, testOptions())
	dir := t.TempDir()
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "certrollout-metrics.test")
	for name, data := range map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(t)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddress(t)
	runManager(t, c.Config, ManagerOptions{Options: e.opts, MetricsBindAddress: addr, MetricsSecure: true, MetricsCertDir: dir, HealthProbeBindAddress: "0"})
	clustertest.Eventually(t, time.Minute, "the metrics endpoint to serve the certificate of --metrics-cert-dir", func(ctx context.Context) (bool, error) {
		conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", addr) //nolint:gosec // only reads the certificate
		if err != nil {
			return false, err
		}
		defer conn.Close()
		certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
		if len(certs) == 0 || certs[0].Subject.CommonName != "certrollout-metrics.test" {
			return false, fmt.Errorf("served %v", certs)
		}
		return true, nil
	})
}
