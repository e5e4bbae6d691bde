package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// tlsServer serves whichever certificate it was last given, and records the SNI names it was asked for.
type tlsServer struct {
	addr    *net.TCPAddr
	serving atomic.Pointer[tls.Certificate]
	mu      sync.Mutex
	sni     []string
}

func startTLSServer(t *testing.T, first *testgen.Cert) *tlsServer {
	t.Helper()
	s := &tlsServer{}
	s.serve(t, first)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		s.mu.Lock()
		s.sni = append(s.sni, h.ServerName)
		s.mu.Unlock()
		return s.serving.Load(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s.addr = l.Addr().(*net.TCPAddr)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_ = conn.(*tls.Conn).Handshake()
				_, _ = conn.Read(make([]byte, 1))
			}()
		}
	}()
	return s
}

func (s *tlsServer) serve(t *testing.T, c *testgen.Cert) {
	t.Helper()
	pair, err := tls.X509KeyPair(c.PEM(), c.KeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	s.serving.Store(&pair)
}

func (s *tlsServer) serverNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}

// findPodProbe is the probe of pod in a report's probes, if any.
func findPodProbe(probes []WorkloadProbe, ns, kind, name, pod string) (WorkloadProbe, PodProbe, bool) {
	for _, w := range probes {
		if w.Namespace != ns || w.Kind != kind || w.Name != name {
			continue
		}
		for _, p := range w.Pods {
			if p.Name == pod {
				return w, p, true
			}
		}
	}
	return WorkloadProbe{}, PodProbe{}, false
}

// TestCheckProbeReadsWhatPodsServeThroughPortForward runs the real chain: check --probe asks the API
// server for a port-forward to the kwok pod, kwok's PortForward routes it to a TLS server in this test,
// and the report names the pod with what it served. The server first serves the Secret's certificate,
// then an older one.
func TestCheckProbeReadsWhatPodsServeThroughPortForward(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	now := time.Now()
	ca := testgen.CA(t, "probe-ca", testgen.WithValidity(now.Add(-5*time.Hour), now.AddDate(1, 0, 0)))
	old := testgen.Leaf(t, ca, "api", testgen.WithDNSNames("api.probe.example"), testgen.WithValidity(now.Add(-4*time.Hour), now.AddDate(0, 0, 5)))
	current := testgen.Leaf(t, ca, "api", testgen.WithDNSNames("api.probe.example"), testgen.WithValidity(now.Add(-time.Hour), now.AddDate(0, 0, 90)))
	oldFP, currentFP := certs.FromX509(old.X509).Fingerprint, certs.FromX509(current.X509).Fingerprint

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": current.PEM(), "tls.key": current.KeyPEM(t)}}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := testgen.Deployment(ns, "api", 1, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, testgen.WithAnnotation(api.AnnotationProbe, "8443"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "api")
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("want the one pod of Deployment api: %v %v", pods, err)
	}
	pod := pods.Items[0].Name

	srv := startTLSServer(t, current)
	if err := c.ForwardPodPort(ctx, ns, pod, 8443, "127.0.0.1", srv.addr.Port); err != nil {
		t.Fatal(err)
	}
	probeJSON := func() CheckReport {
		out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", c.Kubeconfig, "-n", ns, "--probe", "-o", "json")
		var rep CheckReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("not a CheckReport (exit %d): %v\n%s\n%s", code, err, out, stderr)
		}
		return rep
	}
	// kwok learns the route from its watch: the first probes may find no forward yet.
	var last PodProbe
	clustertest.Eventually(t, time.Minute, "check --probe to read the current certificate", func(context.Context) (bool, error) {
		_, last, _ = findPodProbe(probeJSON().Probes, ns, "Deployment", "api", pod)
		return last.Verdict == probeCurrent, nil
	})
	w, p, _ := findPodProbe(probeJSON().Probes, ns, "Deployment", "api", pod)
	if len(p.Ports) != 1 || p.Ports[0].Port != 8443 || p.Ports[0].Served != currentFP {
		t.Errorf("served %+v, want port 8443 serving %s", p.Ports, currentFP)
	}
	if len(w.Expected) != 1 || w.Expected[0] != currentFP || w.ServerName != "api.probe.example" {
		t.Errorf("workload probe %+v: want expected [%s] and server name api.probe.example", w, currentFP)
	}
	if sni := srv.serverNames(); len(sni) == 0 || sni[len(sni)-1] != "api.probe.example" {
		t.Errorf("the server was asked for SNI %q, want api.probe.example", sni)
	}
	table, stderr, _ := runCheck(t, time.Now(), "--kubeconfig", c.Kubeconfig, "-n", ns, "--probe")
	if !probeRow(table, pod, currentFP[:12], probeCurrent) {
		t.Errorf("check --probe table has no row for %s serving %s, current:\n%s\n%s", pod, currentFP[:12], table, stderr)
	}

	srv.serve(t, old)
	_, p, _ = findPodProbe(probeJSON().Probes, ns, "Deployment", "api", pod)
	if p.Verdict != probeOld || len(p.Ports) != 1 || p.Ports[0].Served != oldFP {
		t.Errorf("after switching to the old certificate: %+v, want OLD serving %s", p, oldFP)
	}
	table, stderr, _ = runCheck(t, time.Now(), "--kubeconfig", c.Kubeconfig, "-n", ns, "--probe")
	if !probeRow(table, pod, oldFP[:12], probeOld) {
		t.Errorf("check --probe table has no row for %s serving %s, OLD:\n%s\n%s", pod, oldFP[:12], table, stderr)
	}
	t.Logf("certrollout check --probe:\n%s", table)
	out, stderr, err := run(t, "certrollout", "plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "--probe")
	if err != nil || !probeRow(out, pod, oldFP[:12], probeOld) {
		t.Errorf("plan --probe: %v; no row for %s serving %s, OLD:\n%s\n%s", err, pod, oldFP[:12], out, stderr)
	}

	// Without --probe, no probe table and no probes in the document.
	plain, _, _ := runCheck(t, time.Now(), "--kubeconfig", c.Kubeconfig, "-n", ns)
	if strings.Contains(plain, "VERDICT") || strings.Contains(plain, pod) {
		t.Errorf("check without --probe printed probes:\n%s", plain)
	}
}

// TestProbeReportsAPodItCannotReach: a route to a closed port is a "not probed" row with the reason,
// and the command still succeeds.
func TestProbeReportsAPodItCannotReach(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	leaf := testgen.Leaf(t, testgen.CA(t, "ca"), "svc", testgen.WithDNSNames("svc.example"))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "svc-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(t)}}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := testgen.Deployment(ns, "svc", 1, []testgen.PodOption{testgen.WithSecretVolume("svc-tls")})
	d.Spec.Template.Annotations = map[string]string{api.AnnotationProbe: "9443"} // the pod template's annotation
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "svc")
	// No PortForward object: kwok has no route for the pod's port.
	out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", c.Kubeconfig, "-n", ns, "--probe", "--probe-timeout", "5s", "-o", "json")
	var rep CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not a CheckReport (exit %d): %v\n%s", code, err, stderr)
	}
	if len(rep.Probes) != 1 || len(rep.Probes[0].Pods) != 1 {
		t.Fatalf("want one workload with one pod probed, got %+v", rep.Probes)
	}
	p := rep.Probes[0].Pods[0]
	if p.Verdict != probeNotProbed || !strings.Contains(p.Reason, "9443") || p.Ports[0].Port != 9443 {
		t.Errorf("pod %+v: want not probed on port 9443, with the reason", p)
	}
}

// probeRow reports whether a probe table has a row naming pod, fingerprint and verdict.
func probeRow(table, pod, fingerprint, verdict string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && f[2] == pod && f[4] == fingerprint && f[6] == verdict {
			return true
		}
	}
	return false
}

// TestPlanProbeDecidesByWhatPodsServe: a pod that started before its Secret was renewed is due a restart
// by its start time, but plan --probe sees it serve the renewed certificate and decides as the
// controller would: reloaded by itself, no restart.
func TestPlanProbeDecidesByWhatPodsServe(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	ca := testgen.CA(t, "probe-ca")
	first := testgen.Leaf(t, ca, "api", testgen.WithDNSNames("api.probe.example"))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": first.PEM(), "tls.key": first.KeyPEM(t)}}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := testgen.Deployment(ns, "api", 1, []testgen.PodOption{testgen.WithSecretVolume("api-tls")},
		testgen.WithAnnotation(api.AnnotationEnabled, "true"), testgen.WithAnnotation(api.AnnotationProbe, "8443"))
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAvailable(t, ns, "api")
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("want the one pod of Deployment api: %v %v", pods, err)
	}
	time.Sleep(1100 * time.Millisecond) // the renewal in a later second than the pod's start
	renewed := testgen.Leaf(t, ca, "api", testgen.WithDNSNames("api.probe.example"))
	secret.Data = map[string][]byte{"tls.crt": renewed.PEM(), "tls.key": renewed.KeyPEM(t)}
	if _, err := c.Client.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, renewed) // the process picked the renewed certificate up by itself
	if err := c.ForwardPodPort(ctx, ns, pods.Items[0].Name, 8443, "127.0.0.1", srv.addr.Port); err != nil {
		t.Fatal(err)
	}

	decision := func(args ...string) (action, reason, table string) {
		out, stderr, err := run(t, "certrollout", append([]string{"plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "--settle-period=0", "-o", "json"}, args...)...)
		var rep PlanReport
		if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || len(rep.Items) != 1 {
			t.Fatalf("plan %v: %v %v\n%s\n%s", args, err, jerr, out, stderr)
		}
		table, _, _ = run(t, "certrollout", append([]string{"plan", "--kubeconfig", c.Kubeconfig, "-n", ns, "--settle-period=0"}, args...)...)
		return rep.Items[0].Action, rep.Items[0].Reason, table
	}
	if action, reason, _ := decision(); action != "Restart" || reason != api.ReasonStalePods {
		t.Errorf("plan without --probe: %s/%s, want a restart of the pod that predates its certificate", action, reason)
	}
	// kwok learns the route from its watch: the first probes may find no forward yet.
	clustertest.Eventually(t, time.Minute, "plan --probe to see the pod serve the renewed certificate", func(context.Context) (bool, error) {
		action, reason, table := decision("--probe")
		if action != "Record" || reason != api.ReasonReloadedByItself || !strings.Contains(table, "reloaded by itself") {
			return false, fmt.Errorf("%s/%s:\n%s", action, reason, table)
		}
		t.Logf("certrollout plan --probe:\n%s", table)
		return true, nil
	})
}
