package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/testgen"
)

// runCheck runs `check args...` with the clock at now, as Execute would: the exit code and, on error,
// what Execute prints on stderr.
func runCheck(t *testing.T, now time.Time, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newCheckCommandFor(&CheckOptions{IOStreams: IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Now: func() time.Time { return now }})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		code = reportError(&errOut, err)
	}
	return out.String(), errOut.String(), code
}

var fixturesOnce sync.Once

// fixtures makes sure the committed fixtures exist (and rewrites them under -regenerate-fixtures).
func fixtures(t *testing.T) {
	t.Helper()
	fixturesOnce.Do(func() {
		if *regenerateFixtures {
			regenerateCheckFixtures(t)
		}
	})
	if _, err := os.Stat(filepath.Join("testdata", "kubeadm", "pki", "ca.crt")); err != nil {
		t.Fatalf("fixtures missing (run with -regenerate-fixtures -update): %v", err)
	}
}

// closedKubeconfig writes a kubeconfig whose server is a port nothing listens on: any contact fails.
func closedKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	writeFixture(t, path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`))
	return path
}

func TestCheckKubeadmGolden(t *testing.T) {
	fixtures(t)
	kubeconfig := closedKubeconfig(t) // the disk alone must not touch a cluster
	for _, output := range []string{"table", "wide", "json"} {
		t.Run(output, func(t *testing.T) {
			out, stderr, code := runCheck(t, checkNow, "--kubeadm=testdata/kubeadm", "-o", output, "--kubeconfig", kubeconfig)
			if code != 0 {
				t.Fatalf("exit %d, want 0 (nothing expired, no thresholds); stderr:\n%s", code, stderr)
			}
			golden(t, "check-kubeadm-"+output, out)
		})
	}
}

func TestCheckKubeadmNamesEachCertificateItsCAAndExternalCAs(t *testing.T) {
	fixtures(t)
	out, _, code := runCheck(t, checkNow, "--kubeadm=testdata/kubeadm", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]CheckKubeadm{}
	for _, it := range rep.Items {
		if it.Kubeadm == nil {
			t.Fatalf("kubeadm item without kubeadm facts: %+v", it)
		}
		if _, dup := got[it.Kubeadm.Name]; dup {
			t.Errorf("%s listed twice (kubeconfigs embedding the folder's CA must not add rows)", it.Kubeadm.Name)
		}
		got[it.Kubeadm.Name] = *it.Kubeadm
	}
	want := map[string]CheckKubeadm{
		"apiserver":                {CertificateAuthority: "ca"},
		"apiserver-etcd-client":    {CertificateAuthority: "etcd-ca"},
		"apiserver-kubelet-client": {CertificateAuthority: "ca"},
		"front-proxy-client":       {CertificateAuthority: "front-proxy-ca", ExternallyManaged: true},
		"etcd-server":              {CertificateAuthority: "etcd-ca"},
		"etcd-peer":                {CertificateAuthority: "etcd-ca"},
		"etcd-healthcheck-client":  {CertificateAuthority: "etcd-ca"},
		"admin.conf":               {CertificateAuthority: "ca"},
		"controller-manager.conf":  {CertificateAuthority: "ca"},
		"scheduler.conf":           {CertificateAuthority: "ca"},
		"kubelet.conf":             {CertificateAuthority: "ca"},
		"ca":                       {},
		"etcd-ca":                  {},
		"front-proxy-ca":           {ExternallyManaged: true},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if g.CertificateAuthority != w.CertificateAuthority || g.ExternallyManaged != w.ExternallyManaged {
			t.Errorf("%s: CA %q externally managed %v, want %q %v", name, g.CertificateAuthority, g.ExternallyManaged, w.CertificateAuthority, w.ExternallyManaged)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d items, want %d: %v", len(got), len(want), got)
	}
	if first := rep.Items[0]; first.Kubeadm.Name != "etcd-server" {
		t.Errorf("soonest first: want etcd-server (expires 2026-12-10) first, got %s", first.Kubeadm.Name)
	}
}

func TestCheckFilesGolden(t *testing.T) {
	fixtures(t)
	for _, output := range []string{"table", "wide", "json", "yaml"} {
		t.Run(output, func(t *testing.T) {
			out, stderr, code := runCheck(t, checkNow, "--files", "testdata/files", "-o", output)
			// broken.pem is a problem: critical, whatever the thresholds.
			if code != checkExitCritical {
				t.Fatalf("exit %d, want 2 for the malformed file; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "testdata/files/broken.pem") {
				t.Errorf("stderr should name the malformed file:\n%s", stderr)
			}
			golden(t, "check-files-"+output, out)
		})
	}
}

func TestCheckYAMLIsTheJSONDocument(t *testing.T) {
	fixtures(t)
	j, _, _ := runCheck(t, checkNow, "--files", "testdata/files", "-o", "json")
	y, _, _ := runCheck(t, checkNow, "--files", "testdata/files", "-o", "yaml")
	var fromJSON, fromYAML CheckReport
	if err := json.Unmarshal([]byte(j), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromJSON)
	b, _ := json.Marshal(fromYAML)
	if !bytes.Equal(a, b) {
		t.Fatalf("YAML and JSON differ:\n%s\n%s", a, b)
	}
	if fromJSON.APIVersion != "certrollout.io/v1alpha1" || fromJSON.Kind != "CheckReport" || !fromJSON.GeneratedAt.Equal(checkNow) {
		t.Errorf("header: %s %s %s", fromJSON.APIVersion, fromJSON.Kind, fromJSON.GeneratedAt)
	}
	if len(fromJSON.Problems) != 1 || fromJSON.Problems[0].Source.Path != "testdata/files/broken.pem" || !strings.Contains(fromJSON.Problems[0].Message, "PEM block 1") {
		t.Errorf("problems: %+v", fromJSON.Problems)
	}
}

func TestCheckThresholdsSetTheExitCodeAndSayWhy(t *testing.T) {
	fixtures(t)
	// The soonest certificate of the kubeadm fixture, etcd-server, expires 15 days after checkNow.
	for name, tc := range map[string]struct {
		args []string
		code int
		line string
	}{
		"exits 0 when nothing expires within the thresholds": {
			args: []string{"--warn", "14d", "--critical", "7d"}, code: 0,
		},
		"exits 1 when a certificate expires within --warn": {
			args: []string{"--warn", "30d", "--critical", "7d"}, code: 1,
			line: "WARNING: file testdata/kubeadm/pki/etcd/server.crt expires in 14d (2026-12-10T00:00:00Z), within --warn 30d",
		},
		"exits 2 within --critical, naming the soonest even when later ones only warn": {
			args: []string{"--warn", "60d", "--critical", "20d"}, code: 2,
			line: "CRITICAL: file testdata/kubeadm/pki/etcd/server.crt expires in 14d (2026-12-10T00:00:00Z), within --critical 20d",
		},
		"exits 2 for an expired certificate without any threshold": {
			args: []string{"--warn", "", "--critical", ""}, code: 2,
			line: "CRITICAL: file testdata/kubeadm/pki/etcd/server.crt expired",
		},
		"accepts Go durations and days with hours": {
			args: []string{"--warn", "1d12h", "--critical", "36h"}, code: 0,
		},
	} {
		t.Run(name, func(t *testing.T) {
			now := checkNow
			if strings.Contains(name, "expired") {
				now = fixtureDay(2026, 12, 11) // a day after etcd-server's expiry
			}
			out, stderr, code := runCheck(t, now, append([]string{"--kubeadm=testdata/kubeadm"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.line == "" && stderr != "" {
				t.Errorf("stderr should be empty on success, got %q", stderr)
			}
			if tc.line != "" && !strings.Contains(stderr, tc.line) {
				t.Errorf("stderr should say %q, got:\n%s", tc.line, stderr)
			}
			if !strings.Contains(out, "etcd-server") {
				t.Errorf("the table is printed whatever the exit code:\n%s", out)
			}
		})
	}
}

func TestCheckReportsUnreadableFilesAndMalformedCertificatesByName(t *testing.T) {
	dir := t.TempDir()
	ca := testgen.CA(t, "root", testgen.WithValidity(checkNow.AddDate(0, 0, -1), checkNow.AddDate(1, 0, 0)))
	writeFixture(t, filepath.Join(dir, "good.pem"), ca.PEM())
	writeFixture(t, filepath.Join(dir, "bad.crt"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	// A dangling symlink: a file that cannot be read, whoever runs the test (root reads chmod 000 files).
	if err := os.Symlink(filepath.Join(dir, "gone.pem"), filepath.Join(dir, "link.pem")); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCheck(t, checkNow, "--files", filepath.Join(dir, "*.pem"), "--files", filepath.Join(dir, "bad.crt"), "--files", filepath.Join(dir, "missing-*.pem"))
	if code != checkExitCritical {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
	}
	// Each problem row names the file and says why.
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for file, why := range map[string]string{
		filepath.Join(dir, "bad.crt"):       "PEM block 1 (CERTIFICATE) at line 1: x509: malformed certificate",
		filepath.Join(dir, "link.pem"):      "no such file or directory",
		filepath.Join(dir, "missing-*.pem"): "no such file",
		"good.pem":                          "root root 2027-11-25T12:00:00Z 365d",
	} {
		if !strings.Contains(rows[file], why) {
			t.Errorf("the row of %s should say %q, got %q:\n%s", file, why, rows[file], out)
		}
	}
	if !strings.Contains(stderr, "CRITICAL: 3 certificate sources could not be read; the first: file ") {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestCheckDiskAloneContactsNoCluster(t *testing.T) {
	fixtures(t)
	// Both ways a kubeconfig is found point at a closed port; an attempt to reach it would fail the
	// command with "cannot reach the Kubernetes API server".
	t.Setenv("KUBECONFIG", closedKubeconfig(t))
	for _, args := range [][]string{
		{"--kubeadm=testdata/kubeadm"},
		{"--files", "testdata/files/web.pem", "--kubeconfig", closedKubeconfig(t), "--context", "c"},
	} {
		out, stderr, code := runCheck(t, checkNow, args...)
		if code == checkExitUnknown || strings.Contains(stderr, "cannot reach") {
			t.Fatalf("%v contacted the cluster: exit %d\n%s", args, code, stderr)
		}
		if out == "" {
			t.Errorf("%v printed nothing", args)
		}
	}
	// And with --include-cluster it does, and says so.
	_, stderr, code := runCheck(t, checkNow, "--kubeadm=testdata/kubeadm", "--include-cluster", "--request-timeout", "5s")
	if code != checkExitUnknown || !strings.Contains(stderr, "cannot reach the Kubernetes API server at https://127.0.0.1:1") {
		t.Fatalf("--include-cluster with an unreachable cluster: exit %d\n%s", code, stderr)
	}
}

func TestCheckRejectsBadFlagsWithExitCode3(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"an unparseable --warn":                       {[]string{"--files", "x", "--warn", "soon"}, `invalid --warn "soon": want a duration such as 30d, 36h or 1d12h`},
		"a negative --critical":                       {[]string{"--files", "x", "--critical", "-3d"}, `invalid --critical "-3d"`},
		"--critical longer than --warn":               {[]string{"--files", "x", "--warn", "7d", "--critical", "30d"}, "--critical 30d is longer than --warn 7d"},
		"-n with disk flags and no --include-cluster": {[]string{"--files", "x", "-n", "prod"}, "--namespace selects what to read from the cluster"},
		"-l with disk flags and no --include-cluster": {[]string{"--kubeadm", "-l", "a=b"}, "--selector selects what to read from the cluster"},
		"a missing folder after a bare --kubeadm":     {[]string{"--kubeadm", "/srv/kubernetes"}, `unexpected argument "/srv/kubernetes": --kubeadm takes a folder`},
		"an argument without --files":                 {[]string{"cert.pem"}, `unexpected argument "cert.pem"`},
		"an unknown output":                           {[]string{"--files", "x", "-o", "xml"}, `--output must be table, wide, json, yaml, html or kubeadm, not "xml"`},
		"an invalid selector":                         {[]string{"--files", "x", "--include-cluster", "-l", "a=(b"}, `invalid --selector "a=(b"`},
		"an unknown flag (cobra's own flag errors)":   {[]string{"--colour"}, "unknown flag: --colour"},
		"a --kubeadm folder that does not exist":      {[]string{"--kubeadm=testdata/no-such-dir"}, "--kubeadm testdata/no-such-dir: stat testdata/no-such-dir: no such file or directory (pass --kubeadm DIR"},
		"a --kubeadm folder that is not kubeadm's":    {[]string{"--kubeadm=testdata/files"}, "--kubeadm testdata/files: no kubeadm certificates or kubeconfigs here"},
	} {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := runCheck(t, checkNow, tc.args...)
			if code != checkExitUnknown || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want 3), stderr should contain %q:\n%s", code, tc.want, stderr)
			}
		})
	}
}

func TestCheckFilesArgumentsAreTheShellsExpansionOfAGlob(t *testing.T) {
	fixtures(t)
	out, stderr, code := runCheck(t, checkNow, "--files", "testdata/files/web.pem", "testdata/files/root.der")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(out, "web.pem") || !strings.Contains(out, "root.der") {
		t.Fatalf("both files should be listed:\n%s", out)
	}
}

func TestParseThreshold(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":        0,
		"0":       0,
		"30d":     30 * 24 * time.Hour,
		"1.5d":    36 * time.Hour,
		"1d12h":   36 * time.Hour,
		"36h":     36 * time.Hour,
		"90m":     90 * time.Minute,
		" 7d ":    7 * 24 * time.Hour,
		"0d":      0,
		"2d30m5s": 48*time.Hour + 30*time.Minute + 5*time.Second,
	} {
		got, err := parseThreshold("warn", in)
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "30", "abc", "-1d", "1d-2h", "3dd", "1e3d", "+2d", "d5h", "1..5d", "40000d", "7 d"} {
		if got, err := parseThreshold("warn", in); err == nil {
			t.Errorf("%q: want an error, got %v", in, got)
		}
	}
}

func TestCommonNameHonoursEscapes(t *testing.T) {
	for dn, want := range map[string]string{
		"CN=web":                               "web",
		"CN=kubernetes-admin,O=system:masters": "kubernetes-admin",
		"O=acme,CN=a\\,b":                      "a,b",
		"OU=x+CN=multi":                        "multi",
		"O=no common name":                     "",
	} {
		if got := checkCommonName(dn); got != want {
			t.Errorf("%q: got %q, want %q", dn, got, want)
		}
	}
}

func TestCheckKubeadmTakesItsFolderAfterASpaceAsAfterAnEqualsSign(t *testing.T) {
	fixtures(t)
	kubeconfig := closedKubeconfig(t)
	withEquals, _, code := runCheck(t, checkNow, "--kubeadm=testdata/kubeadm", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("--kubeadm=DIR: exit %d", code)
	}
	for name, args := range map[string][]string{
		"--kubeadm DIR":              {"--kubeadm", "testdata/kubeadm"},
		"--kubeadm DIR before flags": {"--kubeadm", "testdata/kubeadm", "--kubeconfig", kubeconfig},
		"flags, then --kubeadm DIR":  {"-o", "table", "--kubeadm", "testdata/kubeadm"},
	} {
		t.Run(name, func(t *testing.T) {
			out, stderr, code := runCheck(t, checkNow, args...)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			if out != withEquals {
				t.Errorf("output differs from --kubeadm=DIR:\n%s\n--- want\n%s", out, withEquals)
			}
		})
	}
	_, stderr, code := runCheck(t, checkNow, "--kubeadm", "testdata/kubeadm/admin.conf")
	if code != checkExitUnknown || !strings.Contains(stderr, "--kubeadm takes a folder") {
		t.Errorf("a file after --kubeadm: exit %d, want %d with a message saying it takes a folder; stderr:\n%s", code, checkExitUnknown, stderr)
	}
}

func TestCheckSaysAFileHoldsAKeyInsteadOfFindingNoCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testgen.CA(t, "root", testgen.WithValidity(checkNow.AddDate(0, 0, -1), checkNow.AddDate(1, 0, 0)))
	leaf := testgen.Leaf(t, ca, "portal", testgen.WithValidity(checkNow.AddDate(0, 0, -1), checkNow.AddDate(0, 6, 0)))
	writeFixture(t, filepath.Join(dir, "key.pem"), leaf.KeyPEM(t))
	writeFixture(t, filepath.Join(dir, "cert.pem"), leaf.PEM())
	writeFixture(t, filepath.Join(dir, "server.pem"), leaf.KeyPEM(t))

	out, stderr, code := runCheck(t, checkNow, "--files", filepath.Join(dir, "key.pem"))
	if code != checkExitWarning {
		t.Errorf("exit %d, want 1 (a warning); stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "No certificates found") || !strings.Contains(out, "key.pem") || !strings.Contains(out, "holds a private key and no certificate") {
		t.Errorf("want a row saying key.pem holds a key, got:\n%s\nstderr:\n%s", out, stderr)
	}

	// The pair, as the shell expands *.pem: key.pem is expected beside cert.pem, server.pem is not.
	out, stderr, code = runCheck(t, checkNow, "--files", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "server.pem"), "-o", "json")
	if code != checkExitWarning {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	var rep CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Source.Name != "server.pem" || rep.Problems[0].Reason != "KeyWithoutCertificate" {
		t.Errorf("problems %+v, want server.pem alone with reason KeyWithoutCertificate", rep.Problems)
	}
	if len(rep.Items) != 1 || rep.Status != SeverityWarning || !strings.Contains(rep.Reason, "server.pem holds a private key and no certificate") {
		t.Errorf("items %d, status %s, reason %q: want cert.pem listed and a warning naming server.pem", len(rep.Items), rep.Status, rep.Reason)
	}
}
