package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/htmlreport/htmltest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// EnvWriteScreenshot makes TestCheckHTMLInABrowser copy its screenshot to bench/report-check.png.
const EnvWriteScreenshot = "CERTROLLOUT_WRITE_SCREENSHOT"

// chromiumTimeout bounds one run of the browser.
const chromiumTimeout = 60 * time.Second

// htmlEnv creates a namespace with a cert-manager issued Secret api-tls (90 days, and its CA), TLS
// Secrets of its own expiring in 3 days (web-tls), 20 days (mail-tls) and 200 days (db-tls) and one
// expired two days ago (old-tls), and Deployment web (enabled, 2 pods) using web-tls, renewed after its
// pods started so they run on the older certificate.
func htmlEnv(t *testing.T) string {
	t.Helper()
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	now := time.Now()
	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(ns, "api", "api-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	ca := testgen.CA(t, "shop-ca", testgen.WithValidity(now.Add(-5*24*time.Hour), now.AddDate(3, 0, 0)))
	secret := func(name string, notBefore, notAfter time.Time) *corev1.Secret {
		leaf := testgen.Leaf(t, ca, strings.TrimSuffix(name, "-tls"), testgen.WithValidity(notBefore, notAfter))
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(t)}}
	}
	for _, s := range []*corev1.Secret{
		secret("web-tls", now.Add(-time.Hour), now.Add(3*24*time.Hour)),
		secret("mail-tls", now.Add(-time.Hour), now.Add(20*24*time.Hour)),
		secret("db-tls", now.Add(-time.Hour), now.Add(200*24*time.Hour)),
		secret("old-tls", now.Add(-4*24*time.Hour), now.Add(-2*24*time.Hour)),
	} {
		if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	web := testgen.Deployment(ns, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("web-tls")}, testgen.WithAnnotation("certrollout.io/enabled", "true"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "web")
	time.Sleep(1100 * time.Millisecond) // pod start times have one-second resolution
	if _, err := c.Client.CoreV1().Secrets(ns).Update(ctx, secret("web-tls", time.Now(), now.Add(3*24*time.Hour)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "cert-manager to issue api-tls", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, ns, "api")
	})
	return ns
}

// runCLI runs the certrollout command line in-process and returns stdout and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, stderr, err := run(t, "certrollout", args...)
	code := 0
	if err != nil {
		code = reportError(io.Discard, err)
		var exit *exitError
		if !errors.As(err, &exit) || !exit.verdict {
			t.Fatalf("certrollout %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	return out, code
}

// chromium runs headless Chromium with a fresh profile and returns its stdout. It fails the test when
// Chromium is not installed: the page is only known to work once a browser has rendered it.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed to render the HTML report: run `make tools-browser` (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(), "--no-first-run", "--disable-extensions"}
	cmd := exec.CommandContext(ctx, path, append(base, args...)...) //nolint:gosec // the test's own arguments
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// writePage writes a page to the test's temporary folder and returns its file:// URL.
func writePage(t *testing.T, name, page string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

func TestCheckHTMLInABrowser(t *testing.T) {
	ns := htmlEnv(t)
	kubeconfig := clustertest.Cluster(t).Kubeconfig
	page, code := runCLI(t, "check", "--kubeconfig", kubeconfig, "-n", ns, "-o", "html")
	if code != checkExitCritical {
		t.Errorf("exit %d, want 2 for old-tls", code)
	}
	doc, _ := runCLI(t, "check", "--kubeconfig", kubeconfig, "-n", ns, "-o", "json")
	var rep CheckReport
	if err := json.Unmarshal([]byte(doc), &rep); err != nil {
		t.Fatal(err)
	}
	url := writePage(t, "check.html", page)

	dom := htmltest.Parse(t, string(chromium(t, "--dump-dom", url)))
	svg := htmltest.All(dom, "svg", "timeline")
	if len(svg) != 1 {
		t.Fatalf("want the timeline's <svg> in the rendered page, got %d", len(svg))
	}
	rows := htmltest.All(svg[0], "g", "tl-row")
	certificates := 0
	for _, it := range rep.Items {
		if it.Certificate != nil {
			certificates++
		}
	}
	if certificates < 6 || len(rows) != certificates {
		t.Errorf("want a timeline row per certificate key (%d in the report), got %d", certificates, len(rows))
	}
	if old := rowByText(t, rows, "secret/old-tls · tls.crt"); !htmltest.HasClass(old, "expired") {
		t.Errorf("old-tls expired: its row has class %q", htmltest.Attr(old, "class"))
	}
	for name, class := range map[string]string{"web-tls": "critical", "mail-tls": "warning", "db-tls": "ok", "api-tls": "ok"} {
		if r := rowByText(t, rows, "secret/"+name+" · tls.crt"); !htmltest.HasClass(r, class) {
			t.Errorf("%s: want class %s, got %q", name, class, htmltest.Attr(r, "class"))
		}
	}
	web := rowByText(t, htmltest.All(dom, "tr"), "secret/web-tls")
	if !strings.Contains(htmltest.Text(web), "deployment/web") || len(htmltest.All(web, "span", "stale")) != 1 {
		t.Errorf("the web-tls row names Deployment web with its stale pods highlighted: %q", htmltest.Text(web))
	}
	if api := htmltest.Text(rowByText(t, htmltest.All(dom, "tr"), "secret/api-tls")); !strings.Contains(api, "certificate/api") || !strings.Contains(api, "renews in") {
		t.Errorf("the api-tls row shows its cert-manager Certificate and renewal: %q", api)
	}

	shot := filepath.Join(t.ArtifactDir(), "report-check.png")
	chromium(t, "--hide-scrollbars", "--window-size=1400,1000", "--screenshot="+shot, url)
	checkScreenshot(t, shot)
	if os.Getenv(EnvWriteScreenshot) == "1" {
		b, err := os.ReadFile(shot) //nolint:gosec // the test's own file
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "bench", "report-check.png"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkScreenshot decodes the PNG and checks it is a page, not a blank: the window's size, many colours,
// and the red of an expired certificate's marker somewhere.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // the test's own file
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 700 {
		t.Errorf("screenshot is %dx%d, want about 1400x1000", b.Dx(), b.Dy())
	}
	colours, red := map[[3]uint32]bool{}, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if near(r>>8, 0xd9) && near(g>>8, 0x2d) && near(bl>>8, 0x20) {
				red++
			}
		}
	}
	if len(colours) < 16 {
		t.Errorf("the screenshot has %d colours: a blank or broken page", len(colours))
	}
	if red < 10 {
		t.Errorf("no expired-red pixels in the screenshot (%d): the expired marker is not drawn", red)
	}
}

func near(a, b uint32) bool { return a+24 >= b && b+24 >= a }

func TestPlanHTMLInABrowser(t *testing.T) {
	ns := htmlEnv(t)
	kubeconfig := clustertest.Cluster(t).Kubeconfig
	page, _ := runCLI(t, "plan", "--kubeconfig", kubeconfig, "-n", ns, "--settle-period", "0", "-o", "html")
	dom := htmltest.Parse(t, string(chromium(t, "--dump-dom", writePage(t, "plan.html", page))))
	rows := htmltest.All(dom, "g", "tl-row")
	if len(rows) != 1 {
		t.Fatalf("want one timeline row, for Deployment web (the only workload), got %d", len(rows))
	}
	if r := rows[0]; !strings.Contains(htmltest.Text(r), "deployment/web") || !htmltest.HasClass(r, "critical") {
		t.Errorf("web runs on a certificate expiring in 3 days: %q %q", htmltest.Attr(r, "class"), htmltest.Text(r))
	}
	tr := rowByText(t, htmltest.All(dom, "tr"), "deployment/web")
	text := htmltest.Text(tr)
	if len(htmltest.All(tr, "span", "stale")) != 1 || !strings.Contains(text, "2 stale") {
		t.Errorf("the web row highlights its 2 stale pods: %q", text)
	}
	if !strings.Contains(text, "restart now") || !strings.Contains(text, "secret/web-tls") {
		t.Errorf("the web row says it restarts now, for secret/web-tls: %q", text)
	}
}
