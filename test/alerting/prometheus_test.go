package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	clustertest.Main(m)
}

// rulesFile is the shipped rules file.
const rulesFile = "../../deploy/prometheus/certrollout-alerts.yaml"

// The headline: a renewal that a paused Deployment cannot roll out leaves its pods on a certificate that
// expires within days; Prometheus, scraping the controller, fires the alerts that say so.
func TestARealPrometheusFiresTheStalePodAlertsAfterARenewalABlockedWorkloadCannotRollOut(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()

	// As shipped: HTTPS, and Prometheus authenticates with a ServiceAccount token that the shipped
	// certrollout-metrics-reader ClusterRole lets through.
	metricsAddr := freeAddr(t)
	startController(t, c, ns, metricsAddr)
	prom := startPrometheus(t, metricsAddr, readerToken(t, c, ns))

	// The controller is scraped and its build is known: the controller-absent alert stays quiet.
	prom.waitFor(t, "the controller's build_info to be scraped", func(p *prometheus) (bool, error) {
		n, err := p.count(`certrollout_build_info`)
		return n == 1, err
	})
	// It leads (the only replica): the no-leader alert stays quiet.
	prom.waitFor(t, "the controller to report that it leads", func(p *prometheus) (bool, error) {
		n, err := p.count(`certrollout_controller_leader == 1`)
		return n == 1, err
	})

	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(ns, "api", "api-tls", "48h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "Certificate api to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, ns, "api")
	})
	dep := testgen.Deployment(ns, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")},
		testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "the controller to record what web runs on", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Annotations[api.AnnotationCertificateHash] != "" && d.Status.AvailableReplicas == 2, err
	})
	prom.waitFor(t, "web to be scraped with no stale pods", func(p *prometheus) (bool, error) {
		n, err := p.count(fmt.Sprintf(`certrollout_workload_stale_pods{namespace=%q,name="web"} == 0`, ns))
		return n == 1, err
	})
	if alerts, err := prom.alerts(ns); err != nil || len(alerts) > 0 {
		t.Fatalf("alerts before the renewal: %v %v", alerts, err)
	}
	prom.onlyAlerts(t, ns)

	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Renew(t, c, ns, "api")

	// CertRolloutStalePods leaves blocked workloads to CertRolloutRestartBlocked, which names the reason.
	want := []string{"CertRolloutPodsServeExpiringCertificate", "CertRolloutRestartBlocked"}
	prom.waitFor(t, fmt.Sprintf("alerts %v to fire for web", want), func(p *prometheus) (bool, error) {
		alerts, err := p.alerts(ns)
		if err != nil {
			return false, err
		}
		for _, name := range want {
			a, ok := alerts[name]
			if !ok || a.State != "firing" {
				return false, fmt.Errorf("firing: %v", alerts)
			}
		}
		return true, nil
	})
	alerts, _ := prom.alerts(ns)
	headline := alerts["CertRolloutPodsServeExpiringCertificate"]
	if headline.Annotations["summary"] == "" || headline.Annotations["runbook_url"] == "" {
		t.Errorf("the headline alert has no summary or runbook: %+v", headline)
	}
	t.Logf("fired: %s: %s", headline.Labels["alertname"], headline.Annotations["summary"])
	prom.onlyAlerts(t, ns, want...)

	// Unpaused, web rolls onto the renewed certificate; once its old pods are gone the alerts resolve.
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"paused":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	prom.waitFor(t, "the alerts about web to resolve", func(p *prometheus) (bool, error) {
		alerts, err := p.alerts(ns)
		if err != nil {
			return false, err
		}
		if len(alerts) > 0 {
			return false, fmt.Errorf("still: %v", alerts)
		}
		return true, nil
	})
}

// startController runs the controller in this process, watching ns, with protected metrics on addr.
func startController(t *testing.T, c *localcluster.Cluster, ns, addr string) {
	t.Helper()
	opts := controller.DefaultOptions()
	opts.Namespaces = []string{ns}
	opts.SettlePeriod = time.Second
	mgr, err := controller.NewManager(c.Config, controller.ManagerOptions{Options: opts, MetricsBindAddress: addr, MetricsSecure: true, HealthProbeBindAddress: "0"})
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

// readerToken applies the shipped certrollout-metrics-reader ClusterRole, binds it to a new ServiceAccount
// of ns and returns a token of that account.
func readerToken(t *testing.T, c *localcluster.Cluster, ns string) string {
	t.Helper()
	ctx := context.Background()
	role, err := os.ReadFile("../../config/rbac/metrics_reader_role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, c.Config, role); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "certrollout-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns}},
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	var token string
	clustertest.Eventually(t, time.Minute, "a token for ServiceAccount prometheus", func(ctx context.Context) (bool, error) {
		tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "prometheus", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		token = tr.Status.Token
		return true, nil
	})
	return token
}

type prometheus struct {
	url string
}

// startPrometheus runs the prometheus binary (Debian's package: make tools-prometheus) scraping the
// controller every second, with the shipped rules whose `for:` durations are cut to a second so the
// test does not wait hours; every expression and label is the shipped one.
func startPrometheus(t *testing.T, target, token string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run make tools-prometheus")
	}
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+)for: .*$`).ReplaceAll(rules, []byte("${1}for: 1s"))
	write(t, filepath.Join(dir, "rules.yaml"), rules)
	write(t, filepath.Join(dir, "token"), []byte(token))
	// The controller's certificate is self-signed (no --metrics-cert-dir), as the chart's default is.
	write(t, filepath.Join(dir, "prometheus.yaml"), []byte(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: certrollout
    scheme: https
    tls_config: {insecure_skip_verify: true}
    authorization: {credentials_file: `+filepath.Join(dir, "token")+`}
    static_configs: [{targets: ['`+target+`']}]
`))
	listen := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	p := &prometheus{url: "http://" + listen}
	p.waitFor(t, "prometheus to be ready", func(p *prometheus) (bool, error) {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return p
}

func (p *prometheus) waitFor(t *testing.T, what string, cond func(*prometheus) (bool, error)) {
	t.Helper()
	clustertest.Eventually(t, 3*time.Minute, what, func(context.Context) (bool, error) { return cond(p) })
}

// count runs an instant query and returns how many series it selects.
func (p *prometheus) count(query string) (int, error) {
	var out struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(query), &out); err != nil {
		return 0, err
	}
	return len(out.Data.Result), nil
}

type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// all returns every pending and firing alert.
func (p *prometheus) all() ([]alert, error) {
	var out struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/alerts", &out); err != nil {
		return nil, err
	}
	return out.Data.Alerts, nil
}

// onlyAlerts fails the test if any alert is pending or firing other than those named about web, and the
// certificate-expiry alerts about the Secrets of ns (the test's certificate lives 48 hours): a
// controller-level alert (CertRolloutNoLeader, CertRolloutControllerAbsent) or one about another object
// would be a false alarm that the alerts about web alone do not show.
func (p *prometheus) onlyAlerts(t *testing.T, ns string, aboutWeb ...string) {
	t.Helper()
	all, err := p.all()
	if err != nil {
		t.Fatal(err)
	}
	expiry := map[string]bool{"CertRolloutCertificateExpiresIn28Days": true, "CertRolloutCertificateExpiresIn7Days": true}
	for _, a := range all {
		name, l := a.Labels["alertname"], a.Labels
		switch {
		case expiry[name] && l["namespace"] == ns && l["kind"] == "Secret":
		case slices.Contains(aboutWeb, name) && l["namespace"] == ns && l["kind"] == "Deployment" && l["name"] == "web":
		default:
			t.Errorf("unexpected alert %s (%s): %v", name, a.State, l)
		}
	}
}

// alerts returns the pending and firing alerts about the Deployment web in ns, by name.
func (p *prometheus) alerts(ns string) (map[string]alert, error) {
	all, err := p.all()
	if err != nil {
		return nil, err
	}
	got := map[string]alert{}
	for _, a := range all {
		if a.Labels["namespace"] == ns && a.Labels["kind"] == "Deployment" && a.Labels["name"] == "web" {
			got[a.Labels["alertname"]] = a
		}
	}
	return got, nil
}

func (p *prometheus) get(path string, into any) error {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
