package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/certrollout/certrollout/internal/htmlreport"
	"github.com/certrollout/certrollout/internal/htmlreport/htmltest"
)

const hostileName = `<script>alert(1)</script>`

// htmlCheckReport is a hand-built CheckReport: one certificate per colour class, a hostile Secret name, a
// Deployment with stale pods, a cert-manager Certificate with its renewal time, a leaf issued under a
// previous CA, a kubeadm certificate and a problem.
func htmlCheckReport(now time.Time) CheckReport {
	cert := func(cn string, left time.Duration) *CheckCertificate {
		return &CheckCertificate{Subject: "CN=" + cn, CommonName: cn, Issuer: "CN=ca", IssuerCommonName: "ca", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(left)}
	}
	renews := now.Add(14 * 24 * time.Hour)
	secret := func(name string) CheckSource {
		return CheckSource{Kind: "Secret", Namespace: "shop", Name: name, Key: "tls.crt"}
	}
	return CheckReport{
		APIVersion: ReportAPIVersion, Kind: "CheckReport", GeneratedAt: now, Status: SeverityCritical, Reason: "CRITICAL: Secret shop/gone-tls tls.crt expired",
		Items: []CheckItem{
			{Source: secret("gone-tls"), Certificate: cert("gone", -48*time.Hour), Certificates: 1, Severity: SeverityCritical},
			{Source: secret("web-tls"), Certificate: cert("web", 3*24*time.Hour), Certificates: 2, Severity: SeverityWarning, StalePods: 2,
				Consumers: []CheckConsumer{{Kind: "Deployment", Name: "web", StalePods: []string{"web-5d8f-a", "web-5d8f-b"}}, {Kind: "StatefulSet", Name: "cache"}}},
			{Source: secret("api-tls"), Certificate: cert("api", 20*24*time.Hour), Certificates: 1, Severity: SeverityOK,
				CertManager: &CheckCertManager{Name: "api", Revision: 3, Ready: true, RenewalTime: &renews, StatusCurrent: true},
				CAChain:     &CheckCAChain{Issuer: CheckIssuerRef{Kind: "Issuer", Namespace: "shop", Name: "shop-ca"}, Certificate: "api", Status: "IssuedUnderPreviousCA", Message: "signed by the previous CA"}},
			{Source: secret(hostileName), Certificate: cert(hostileName, 200*24*time.Hour), Certificates: 1, Severity: SeverityOK},
			{Source: CheckSource{Kind: checkKindFile, Name: "apiserver", Path: "/etc/kubernetes/pki/apiserver.crt"}, Certificate: cert("kube-apiserver", 300*24*time.Hour),
				Certificates: 1, Severity: SeverityOK, Kubeadm: &CheckKubeadm{Name: "apiserver", CertificateAuthority: "ca"}},
			{Source: secret("pending-tls"), CertManager: &CheckCertManager{Name: "pending", Message: "the Secret pending-tls holds no certificate"}},
		},
		Problems: []CheckProblem{{Source: secret("broken-tls"), Message: "x509: malformed certificate"}},
	}
}

func renderCheckPage(t *testing.T, rep CheckReport) (string, *html.Node) {
	t.Helper()
	var b bytes.Buffer
	page := checkPage(rep, []htmlreport.Fact{{Name: "Context", Value: "kind-prod"}}, "/etc/kubernetes", nil)
	if err := htmlreport.Render(&b, page); err != nil {
		t.Fatal(err)
	}
	return b.String(), htmltest.Parse(t, b.String())
}

// rowByText finds the element among nodes whose text contains s.
func rowByText(t *testing.T, nodes []*html.Node, s string) *html.Node {
	t.Helper()
	for _, n := range nodes {
		if strings.Contains(htmltest.Text(n), s) {
			return n
		}
	}
	t.Fatalf("no element holds %q", s)
	return nil
}

func TestCheckPageDrawsEveryCertificateColouredByTimeLeft(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	_, doc := renderCheckPage(t, htmlCheckReport(now))
	rows := htmltest.All(doc, "g", "tl-row")
	if len(rows) != 5 {
		t.Fatalf("want a timeline row per certificate (5; not the one not issued), got %d", len(rows))
	}
	for label, class := range map[string]htmlreport.Class{
		"secret/gone-tls · tls.crt": htmlreport.ClassExpired, "secret/web-tls · tls.crt": htmlreport.ClassCritical,
		"secret/api-tls · tls.crt": htmlreport.ClassWarning, "kubeadm apiserver": htmlreport.ClassOK,
	} {
		if r := rowByText(t, rows, label); !htmltest.HasClass(r, string(class)) {
			t.Errorf("%s: want class %s, got %q", label, class, htmltest.Attr(r, "class"))
		}
	}
	if first := htmltest.Text(htmltest.All(rows[0], "text", "label")[0]); first != "secret/gone-tls · tls.crt" {
		t.Errorf("soonest first, named without the namespace when there is one: got %q", first)
	}
	if web := rowByText(t, rows, "web-tls"); !strings.Contains(htmltest.Text(web), "used by deployment/web, statefulset/cache · 2 stale pods") {
		t.Errorf("the web-tls row names its consumers and stale pods: %q", htmltest.Text(web))
	}
	if refs := htmltest.ExternalRefs(doc); len(refs) > 0 {
		t.Errorf("the page references %v", refs)
	}
}

func TestCheckPageTablesShowConsumersStalePodsRenewalsAndCAChains(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	_, doc := renderCheckPage(t, htmlCheckReport(now))
	for _, id := range []string{"control-plane-kubeadm", "cluster-certificates", "problems"} {
		found := false
		for _, s := range htmltest.All(doc, "section") {
			found = found || htmltest.Attr(s, "id") == id
		}
		if !found {
			t.Errorf("no section %q", id)
		}
	}
	trs := htmltest.All(doc, "tr")
	web := rowByText(t, trs, "secret/web-tls")
	if !htmltest.HasClass(web, "critical") {
		t.Errorf("the web-tls row is critical (3 days): %q", htmltest.Attr(web, "class"))
	}
	stale := htmltest.All(web, "span", "stale")
	if len(stale) != 1 || htmltest.Text(stale[0]) != "2 stale pods" || htmltest.Attr(stale[0], "title") != "web-5d8f-a, web-5d8f-b" {
		t.Errorf("deployment/web's stale pods are highlighted: %v", stale)
	}
	if pods := htmltest.All(web, "span", "stale-pod"); len(pods) != 2 {
		t.Errorf("each stale pod is listed, got %d", len(pods))
	}
	api := htmltest.Text(rowByText(t, trs, "secret/api-tls"))
	for _, want := range []string{"certificate/api (revision 3)", "Ready", "renews in 14d (2026-12-12 12:00)", "IssuedUnderPreviousCA", "issuer/shop-ca", "certrollout renew api -n shop"} {
		if !strings.Contains(api, want) {
			t.Errorf("the api-tls row shows %q: %q", want, api)
		}
	}
	if pending := rowByText(t, trs, "secret/pending-tls"); !htmltest.HasClass(pending, "none") || !strings.Contains(htmltest.Text(pending), "not issued") {
		t.Errorf("a Certificate not issued yet is listed as such: %q", htmltest.Text(pending))
	}
	if k := htmltest.Text(rowByText(t, trs, "/etc/kubernetes/pki/apiserver.crt")); !strings.Contains(k, "apiserver") || !strings.Contains(k, "ca") {
		t.Errorf("the kubeadm row: %q", k)
	}
	if p := htmltest.Text(rowByText(t, trs, "broken-tls")); !strings.Contains(p, "x509: malformed certificate") {
		t.Errorf("the problem row: %q", p)
	}
}

func TestCheckPageShowsAHostileSecretNameAsText(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	page, doc := renderCheckPage(t, htmlCheckReport(now))
	if strings.Contains(page, hostileName) {
		t.Fatal("the Secret name reached the page unescaped")
	}
	if s := htmltest.All(doc, "script"); len(s) != 0 {
		t.Fatalf("the page has %d <script> elements", len(s))
	}
	if r := rowByText(t, htmltest.All(doc, "tr"), "secret/"+hostileName); !htmltest.HasClass(r, "ok") {
		t.Errorf("the hostile Secret's row: %q", htmltest.Attr(r, "class"))
	}
	rowByText(t, htmltest.All(doc, "g", "tl-row"), "secret/"+hostileName)
}

func TestPlanPageShowsWhatEachWorkloadRunsOnAndWhatHappensNext(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	rep := PlanReport{APIVersion: ReportAPIVersion, Kind: "PlanReport", GeneratedAt: now, Controller: AssumedSettings{Source: "defaults"}, Items: []WorkloadPlan{
		{Namespace: "shop", Kind: "StatefulSet", Name: hostileName, Pods: 1, Action: "Block", Reason: "OnDelete", Message: "OnDelete strategy",
			Certificates: PlanCertificates{Current: "cccccccccccc", CurrentNotAfter: at(5 * 24 * time.Hour)}},
		{Namespace: "shop", Kind: "Deployment", Name: "web", Enabled: true, Pods: 3, StalePods: []string{"web-a", "web-b"}, Action: "Restart", Reason: "CertificateRenewed", Message: "renewed",
			Certificates: PlanCertificates{Running: "aaaaaaaaaaaa", RunningNotAfter: at(-time.Hour), Current: "bbbbbbbbbbbb", CurrentNotAfter: at(90 * 24 * time.Hour)},
			Sources:      []PlanSource{{Kind: "Secret", Name: "web-tls", Modes: []string{"env"}, NeverRefreshed: true, CertManager: "web"}}},
	}}
	var b bytes.Buffer
	if err := htmlreport.Render(&b, planPage(rep, nil)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), hostileName) {
		t.Fatal("the workload name reached the page unescaped")
	}
	doc := htmltest.Parse(t, b.String())
	rows := htmltest.All(doc, "g", "tl-row")
	if len(rows) != 2 {
		t.Fatalf("want a timeline row per workload, got %d", len(rows))
	}
	if first := htmltest.Text(htmltest.All(rows[0], "text", "label")[0]); first != "deployment/web" {
		t.Errorf("the workload whose pods run on the soonest expiry comes first, got %q", first)
	}
	web := rowByText(t, rows, "deployment/web")
	if !htmltest.HasClass(web, "expired") || len(htmltest.All(web, "circle", "marker", "expired")) != 1 || len(htmltest.All(web, "circle", "hollow", "ok")) != 1 {
		t.Errorf("web runs on an expired certificate (dot) and a restart loads one for 90 days (ring): %q", htmltest.Attr(web, "class"))
	}
	if r := rowByText(t, rows, "statefulset/"+hostileName); !htmltest.HasClass(r, "critical") {
		t.Errorf("the StatefulSet's certificate expires in 5 days: %q", htmltest.Attr(r, "class"))
	}
	tr := rowByText(t, htmltest.All(doc, "tr"), "deployment/web")
	text := htmltest.Text(tr)
	for _, want := range []string{"2 stale", "web-a", "restart now", "CertificateRenewed", "running aaaaaaaa", "current bbbbbbbb", "never refreshed", "certificate/web"} {
		if !strings.Contains(text, want) {
			t.Errorf("the web row shows %q: %q", want, text)
		}
	}
	if blocked := rowByText(t, htmltest.All(doc, "tr"), "OnDelete"); len(htmltest.All(blocked, "span", "bad")) == 0 {
		t.Error("a blocked workload's action is in red")
	}
}

func TestCheckWritesHTMLForAKubeadmFolder(t *testing.T) {
	fixtures(t)
	out, stderr, code := runCheck(t, checkNow, "--kubeadm=testdata/kubeadm", "-o", "html")
	if code != checkExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc := htmltest.Parse(t, out)
	if rows := htmltest.All(doc, "g", "tl-row"); len(rows) < 10 {
		t.Errorf("want a row per kubeadm certificate, got %d", len(rows))
	}
	rowByText(t, htmltest.All(doc, "tr"), "testdata/kubeadm/pki/apiserver.crt")
	if refs := htmltest.ExternalRefs(doc); len(refs) > 0 {
		t.Errorf("the page references %v", refs)
	}
}

func TestOnlyCheckAndPlanWriteHTML(t *testing.T) {
	for cmd, want := range map[string]bool{"check": true, "plan": true, "status": false, "restart": false, "renew": false} {
		out, _, err := run(t, "certrollout", "__complete", cmd, "-o", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(strings.Split(out, "\n"), "html"); got != want {
			t.Errorf("%s -o <TAB> offers html: %v, want %v (%q)", cmd, got, want, out)
		}
	}
	for _, cmd := range []string{"status", "restart", "renew"} {
		_, _, err := run(t, "certrollout", cmd, "-o", "html", "--kubeconfig", "/nonexistent")
		if err == nil || !strings.Contains(err.Error(), "--output must be table, wide, json or yaml") {
			t.Errorf("%s -o html: want the usual --output error, got %v", cmd, err)
		}
	}
}

// section returns the report's section whose heading is title.
func section(t *testing.T, doc *html.Node, title string) *html.Node {
	t.Helper()
	for _, s := range htmltest.All(doc, "section") {
		if h := htmltest.All(s, "h2"); len(h) > 0 && htmltest.Text(h[0]) == title {
			return s
		}
	}
	t.Fatalf("no section %q", title)
	return nil
}

func TestCheckWritesHTMLForFiles(t *testing.T) {
	fixtures(t)
	out, stderr, code := runCheck(t, checkNow, "--files", "testdata/files", "-o", "html")
	if code != checkExitCritical {
		t.Fatalf("exit %d, want 2 for the malformed file: %s", code, stderr)
	}
	doc := htmltest.Parse(t, out)
	if rows := htmltest.All(doc, "g", "tl-row"); len(rows) != 4 {
		t.Errorf("want a timeline row per certificate on disk (4), got %d", len(rows))
	}
	files := htmltest.All(section(t, doc, "Files"), "tbody")
	if len(files) != 1 {
		t.Fatalf("want one table body in Files, got %d", len(files))
	}
	rows := htmltest.All(files[0], "tr")
	if len(rows) != 4 {
		t.Fatalf("want a row per file or kubeconfig entry (4), got %d", len(rows))
	}
	for _, want := range []struct{ file, class, text string }{
		{"web.pem", "critical", "web.example.com"},           // expires in 5 days
		{"dev.kubeconfig (user/dev-user)", "ok", "dev-user"}, // a kubeconfig entry, named
		{"dev.kubeconfig (cluster/kubernetes)", "ok", "files-root"},
		{"root.der", "ok", "testdata/files/root.der"},
	} {
		r := rowByText(t, rows, want.file)
		if !htmltest.HasClass(r, want.class) || !strings.Contains(htmltest.Text(r), want.text) {
			t.Errorf("the %s row: class %q, text %q; want class %s and %q", want.file, htmltest.Attr(r, "class"), htmltest.Text(r), want.class, want.text)
		}
	}
	problem := rowByText(t, htmltest.All(section(t, doc, "Problems"), "tr"), "testdata/files/broken.pem")
	if !strings.Contains(htmltest.Text(problem), "malformed certificate") {
		t.Errorf("the malformed file's row: %q", htmltest.Text(problem))
	}
	if refs := htmltest.ExternalRefs(doc); len(refs) > 0 {
		t.Errorf("the page references %v", refs)
	}
}
