package controller

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/testgen"
)

// How a fake app treats its certificate.
const (
	// hotReload serves whatever its Secret holds now.
	hotReload = "hot-reload"
	// loadAtStart serves what its Secret held when the pod started.
	loadAtStart = "load-at-start"
	// stuck serves the certificate it was built with, whatever happens.
	stuck = "stuck"
	// hooked loads its certificate at start and again when POST /-/reload on port 8080 asks it to.
	hooked = "hooked"
	// brokenHook loads its certificate at start; its reload endpoint answers 500.
	brokenHook = "broken-hook"
	// lateReload serves what its Secret held a lag ago (see renewing): a process that reloads its files
	// once the kubelet has refreshed them, on its next sync.
	lateReload = "late-reload"
)

// fakeApps plays the processes of kwok pods, which run none: it is the controller's ProbeDialer, and a
// dial of a pod's IP and port is answered by a TLS server in this process that presents what that pod's
// app would. Apps are found by the pods' "app" label.
type fakeApps struct {
	t  *testing.T
	cs kubernetes.Interface
	ns string

	mu     sync.Mutex
	apps   map[string]fakeApp
	loaded map[string]tls.Certificate // by pod: what a load-at-start pod loaded
	dials  map[string]int             // by pod
	hooks  map[string]int             // by pod: reload calls
	// previous is what a lateReload app serves until lag after renewedAt.
	previous  tls.Certificate
	renewedAt time.Time
	lag       time.Duration
}

// renewing is called just before the test renews secret: lateReload apps go on serving what it holds now
// for lag.
func (f *fakeApps) renewing(secret string, lag time.Duration) {
	cert := f.secretCert(context.Background(), secret)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.previous, f.renewedAt, f.lag = cert, time.Now(), lag
}

type fakeApp struct {
	behaviour string
	secret    string
	fixed     tls.Certificate // stuck
}

// newServedEnv is a test namespace whose controller probes through fake apps, with the Secret api-tls
// (a leaf for api.example.com) that they serve; it returns the CA that signed the leaf.
func newServedEnv(t *testing.T) (*env, *fakeApps, *testgen.Cert) {
	t.Helper()
	opts := testOptions()
	opts.Probes, opts.ProbeGrace = true, 0
	e := newEnv(t, opts)
	apps := newFakeApps(t, e)
	e.opts.ProbeDialer = apps
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api", testgen.WithDNSNames("api.example.com")), ca, nil)
	return e, apps, ca
}

// runApps deploys one opted-in Deployment per app (replicas pods, mounting api-tls, TLS port 8443, and
// opts), lets their pods load their certificates, starts the controller and waits for their ledgers; it
// returns the hash they record.
func (e *env) runApps(apps *fakeApps, replicas int32, behaviours map[string]string, opts ...testgen.DeploymentOption) string {
	e.t.Helper()
	opts = append([]testgen.DeploymentOption{testgen.WithAnnotation(api.AnnotationEnabled, "true"), testgen.WithAnnotation(api.AnnotationProbe, "8443")}, opts...)
	for name, behaviour := range behaviours {
		apps.add(name, behaviour, "api-tls")
		e.deploy(testgen.Deployment(e.ns, name, replicas, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, opts...))
	}
	for name := range behaviours {
		e.waitAvailable(name)
	}
	apps.started(context.Background())
	e.start()
	for name := range behaviours {
		e.waitLedger(name, "")
	}
	for name := range behaviours {
		return e.get(name).Annotations[api.AnnotationCertificateHash]
	}
	return ""
}

// renewedLedgers waits until every named workload's ledger records the same hash other than before, and
// returns it.
func (e *env) renewedLedgers(before string, names ...string) string {
	e.t.Helper()
	hash := ""
	clustertest.Eventually(e.t, 2*time.Minute, "the ledgers to name the renewed certificates", func(context.Context) (bool, error) {
		hash = e.get(names[0]).Annotations[api.AnnotationCertificateHash]
		for _, n := range names[1:] {
			if e.get(n).Annotations[api.AnnotationCertificateHash] != hash {
				return false, nil
			}
		}
		return hash != before, nil
	})
	return hash
}

func newFakeApps(t *testing.T, e *env) *fakeApps {
	return &fakeApps{t: t, cs: e.c.Client, ns: e.ns, apps: map[string]fakeApp{}, loaded: map[string]tls.Certificate{}, dials: map[string]int{}, hooks: map[string]int{}}
}

// add declares the app of the pods labelled app=name.
func (f *fakeApps) add(name, behaviour, secret string) {
	f.t.Helper()
	a := fakeApp{behaviour: behaviour, secret: secret}
	if behaviour == stuck {
		a.fixed = f.secretCert(context.Background(), secret)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[name] = a
}

// started makes every running pod of the namespace load its certificate now, as a process does when it
// starts (the test calls it once the pods run, before a renewal).
func (f *fakeApps) started(ctx context.Context) {
	f.t.Helper()
	pods, err := f.cs.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp == nil {
			if _, err := f.certFor(ctx, p); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

func (f *fakeApps) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	pod, err := f.podAt(ctx, host)
	if err != nil {
		return nil, err
	}
	if port == "8080" {
		return f.reloadEndpoint(pod)
	}
	cert, err := f.certFor(ctx, pod)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.dials[pod.Name]++
	f.mu.Unlock()
	client, server := net.Pipe()
	go func() {
		conn := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		_ = conn.HandshakeContext(ctx)
		_ = conn.Close()
	}()
	return client, nil
}

// podAt finds the running pod with IP ip; a dial of any other address is refused, as a real one would be.
func (f *fakeApps) podAt(ctx context.Context, ip string) (*corev1.Pod, error) {
	pods, err := f.cs.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=" + ip})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("dial %s: connection refused (no pod)", ip)
}

// certFor is what pod's app presents now.
func (f *fakeApps) certFor(ctx context.Context, pod *corev1.Pod) (tls.Certificate, error) {
	f.mu.Lock()
	a, ok := f.apps[pod.Labels["app"]]
	loaded, wasLoaded := f.loaded[pod.Name]
	f.mu.Unlock()
	switch {
	case !ok:
		return tls.Certificate{}, fmt.Errorf("pod %s: connection refused (no app)", pod.Name)
	case a.behaviour == stuck:
		return a.fixed, nil
	case a.behaviour == lateReload:
		f.mu.Lock()
		late := time.Since(f.renewedAt) < f.lag
		f.mu.Unlock()
		if late {
			return f.previous, nil
		}
		return f.secretCert(ctx, a.secret), nil
	case a.behaviour != hotReload && wasLoaded:
		return loaded, nil
	}
	cert := f.secretCert(ctx, a.secret)
	if a.behaviour != hotReload {
		f.mu.Lock()
		f.loaded[pod.Name] = cert
		f.mu.Unlock()
	}
	return cert, nil
}

// reloadEndpoint answers one HTTP request on the pod's port 8080: POST /-/reload makes a hooked app load
// its Secret again; a broken hook answers 500.
func (f *fakeApps) reloadEndpoint(pod *corev1.Pod) (net.Conn, error) {
	f.mu.Lock()
	a, ok := f.apps[pod.Labels["app"]]
	f.mu.Unlock()
	if !ok || (a.behaviour != hooked && a.behaviour != brokenHook) {
		return nil, fmt.Errorf("pod %s port 8080: connection refused", pod.Name)
	}
	client, server := net.Pipe()
	go func() {
		defer func() { _ = server.Close() }()
		req, err := http.ReadRequest(bufio.NewReader(server))
		if err != nil {
			return
		}
		f.mu.Lock()
		f.hooks[pod.Name]++
		f.mu.Unlock()
		status, body := "200 OK", "reloaded"
		switch {
		case req.Method != http.MethodPost || req.URL.Path != "/-/reload":
			status, body = "404 Not Found", "no such endpoint"
		case a.behaviour == brokenHook:
			status, body = "500 Internal Server Error", "cannot read the new key"
		default:
			cert := f.secretCert(context.Background(), a.secret)
			f.mu.Lock()
			f.loaded[pod.Name] = cert
			f.mu.Unlock()
		}
		_, _ = fmt.Fprintf(server, "HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
	}()
	return client, nil
}

func (f *fakeApps) hookCalls(app string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for pod, calls := range f.hooks {
		if strings.HasPrefix(pod, app+"-") {
			n += calls
		}
	}
	return n
}

func (f *fakeApps) secretCert(ctx context.Context, name string) tls.Certificate {
	s, err := f.cs.CoreV1().Secrets(f.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Error(err)
		return tls.Certificate{}
	}
	cert, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		f.t.Error(err)
	}
	return cert
}

func (f *fakeApps) dialed(pod string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[pod]
}

// verification waits for the workload's verification record of hash, past the pending one its restart
// writes.
func (e *env) verification(name, hash string) decide.Verification {
	e.t.Helper()
	var v decide.Verification
	clustertest.Eventually(e.t, 2*time.Minute, "Deployment "+name+" to record a verification of "+hash, func(context.Context) (bool, error) {
		var ok bool
		v, ok = decide.ReadVerification(e.get(name).Annotations)
		return ok && v.Hash == hash && !v.Pending, nil
	})
	return v
}

// eventMessage is the note of the workload's latest Event with reason, "" when there is none.
func (e *env) eventMessage(regarding, reason string) string {
	e.t.Helper()
	evs, err := e.c.Client.EventsV1().Events(e.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "regarding.name=" + regarding})
	if err != nil {
		e.t.Fatal(err)
	}
	msg := ""
	for _, ev := range evs.Items {
		if ev.Reason == reason {
			msg = ev.Note
		}
	}
	return msg
}

func (e *env) podNames(app string) []string {
	e.t.Helper()
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// Long: one renewal, three apps that react to it differently, each asserted end to end.
func TestProbesRestartOnlyWhatServesAnOldCertificateAndVerifyTheRestart(t *testing.T) {
	e, apps, ca := newServedEnv(t)
	logs := e.logJSON(1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	before := e.runApps(apps, 2, map[string]string{"hot": hotReload, "cold": loadAtStart, "stubborn": stuck})
	oldHot := e.podNames("hot")

	time.Sleep(1100 * time.Millisecond) // issuance in a later second than the pods' start
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	hash := e.renewedLedgers(before, "hot", "cold", "stubborn")

	// The hot-reloading app: never restarted, shown as reloaded by itself.
	v := e.verification("hot", hash)
	if !v.Verified || v.How != decide.HowReloadedByItself {
		t.Errorf("hot's verification: %+v; want verified, reloaded by itself", v)
	}
	if msg := e.eventMessage("hot", api.ReasonReloadedByItself); !strings.Contains(msg, "reloaded by itself") {
		t.Errorf("hot has no ReloadedByItself Event saying so (%q)", msg)
	}
	for _, p := range oldHot {
		if apps.dialed(p) == 0 {
			t.Errorf("hot's pod %s was never probed", p)
		}
	}

	// The app that loads its certificate at start: restarted once, verified.
	e.waitAvailable("cold")
	v = e.verification("cold", hash)
	if !v.Verified || v.How != decide.HowRestarted {
		t.Errorf("cold's verification: %+v; want verified after its restart", v)
	}
	if msg := e.eventMessage("cold", api.ReasonVerified); !strings.Contains(msg, "all 2 probed pod(s) serve") {
		t.Errorf("cold's Verified Event: %q", msg)
	}

	// The app that keeps serving its old certificate: restarted once, not verified, its pods named.
	e.waitAvailable("stubborn")
	v = e.verification("stubborn", hash)
	if v.Verified {
		t.Errorf("stubborn's verification: %+v; want not verified", v)
	}
	msg := e.eventMessage("stubborn", api.ReasonNotVerified)
	for _, p := range e.podNames("stubborn") {
		if !strings.Contains(msg, p) || !strings.Contains(v.Message, p) {
			t.Errorf("stubborn's pod %s is not named by its NotVerified Event (%q) or record (%q)", p, msg, v.Message)
		}
	}

	// Truth in metrics: stubborn's new pods serve an old certificate, so they count as stale; hot's old
	// pods serve the new one, so they do not.
	clustertest.Eventually(t, time.Minute, "the stale-pod gauge to count stubborn's pods and none of hot's", func(context.Context) (bool, error) {
		if got := workloadGauge(t, "certrollout_workload_stale_pods", e.ns); got["stubborn"] != 2 || got["hot"] != 0 || got["cold"] != 0 {
			return false, fmt.Errorf("gauge %v", got)
		}
		return true, nil
	})
	// And the alert's series: only stubborn has a restart that did not help.
	if got := workloadGauge(t, "certrollout_workload_serving_old_pods", e.ns); len(got) != 1 || got["stubborn"] != 2 {
		t.Errorf("certrollout_workload_serving_old_pods = %v; want stubborn alone, with its 2 pods", got)
	}

	e.quietly(3*time.Second, "hot", "cold", "stubborn")
	for name, want := range map[string]int{"hot": 1, "cold": 2, "stubborn": 2} {
		if got := e.rollouts(name); got != want {
			t.Errorf("%s rolled %d times, want %d", name, got-1, want-1)
		}
	}
}

func TestARolloutUnderVerificationRequiredFailsTheTargetThatStillServesItsOldCertificate(t *testing.T) {
	e, apps, ca := newServedEnv(t)
	for name, behaviour := range map[string]string{"cold": loadAtStart, "stubborn": stuck} {
		apps.add(name, behaviour, "api-tls")
		d := testgen.Deployment(e.ns, name, 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, testgen.WithAnnotation(api.AnnotationProbe, "8443"))
		d.Labels = map[string]string{"role": "tls"}
		e.deploy(d)
	}
	e.createPolicy("tls", api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "tls"}}, Order: api.OrderParallel, MaxConcurrent: 2,
		HealthTimeout: metav1.Duration{Duration: 2 * time.Minute}, OnFailure: api.FailureContinue, Verification: api.VerificationRequired,
	})
	e.waitAvailable("cold")
	e.waitAvailable("stubborn")
	apps.started(context.Background())
	e.start()
	e.waitLedger("cold", "")
	e.waitLedger("stubborn", "")

	time.Sleep(1100 * time.Millisecond)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	ro := e.waitRollout(3*time.Minute, "the policy's CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseFailed {
		t.Errorf("the rollout ended %s (%s); want Failed", ro.Status.Phase, ro.Status.Message)
	}
	stubbornPods := e.podNames("stubborn")
	for _, tgt := range ro.Status.Targets {
		switch tgt.Name {
		case "cold":
			if tgt.State != api.TargetSucceeded || tgt.Verification != api.TargetVerified {
				t.Errorf("cold: %+v; want Succeeded and Verified", tgt)
			}
		case "stubborn":
			if tgt.State != api.TargetFailed || tgt.Verification != api.TargetNotVerified {
				t.Errorf("stubborn: %+v; want Failed and NotVerified", tgt)
			}
			for _, p := range stubbornPods {
				if !strings.Contains(tgt.Message, p) {
					t.Errorf("stubborn's failure does not name its pod %s: %s", p, tgt.Message)
				}
			}
		}
	}
	c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionVerified)
	if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "Deployment stubborn") || strings.Contains(c.Message, "Deployment cold") {
		t.Errorf("the Verified condition: %+v; want False naming stubborn only", c)
	}
	for _, name := range []string{"cold", "stubborn"} {
		if got := e.rollouts(name); got != 2 {
			t.Errorf("%s rolled %d times, want once", name, got-1)
		}
	}
}

func TestAReloadHookAppIsReloadedAndVerifiedAndABrokenHookFallsBackToOneRestart(t *testing.T) {
	e, apps, ca := newServedEnv(t)
	before := e.runApps(apps, 2, map[string]string{"hooked": hooked, "broken": brokenHook},
		testgen.WithAnnotation(api.AnnotationReload, "POST http://:8080/-/reload"), testgen.WithAnnotation(api.AnnotationReloadTimeout, "20s"))

	time.Sleep(1100 * time.Millisecond)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	hash := e.renewedLedgers(before, "hooked", "broken")

	v := e.verification("hooked", hash)
	if !v.Verified || v.How != decide.HowReloaded {
		t.Errorf("hooked's verification: %+v; want verified, reloaded", v)
	}
	if calls := apps.hookCalls("hooked"); calls != 2 {
		t.Errorf("hooked's reload hook was called %d times, want once per pod (2)", calls)
	}
	if msg := e.eventMessage("hooked", api.ReasonReloaded); !strings.Contains(msg, "reloaded through its hook") {
		t.Errorf("hooked's Reloaded Event: %q", msg)
	}

	e.waitAvailable("broken")
	if msg := e.eventMessage("broken", api.ReasonReloading); !strings.Contains(msg, "500 Internal Server Error: cannot read the new key") {
		t.Errorf("broken's Reloading Event does not quote the failure: %q", msg)
	}
	if msg := e.eventMessage("broken", api.ReasonRestarted); !strings.Contains(msg, "its reload hook failed") {
		t.Errorf("broken's restart does not say why the reload did not do: %q", msg)
	}
	if v := e.verification("broken", hash); !v.Verified || v.How != decide.HowRestarted {
		t.Errorf("broken's verification after its restart: %+v", v)
	}

	e.quietly(3*time.Second, "hooked", "broken")
	for name, want := range map[string]int{"hooked": 1, "broken": 2} {
		if got := e.rollouts(name); got != want {
			t.Errorf("%s rolled %d times, want %d", name, got-1, want-1)
		}
	}
}

func TestAPodWhoseContainersRestartedInPlaceAfterTheRenewalIsCurrent(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.deploy(deployment(e.ns, "inplace", true, testgen.WithSecretVolume("api-tls")))
	e.deploy(deployment(e.ns, "control", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("inplace")
	e.waitAvailable("control")
	e.start()
	e.waitLedger("inplace", "")
	e.waitLedger("control", "")
	before := e.get("inplace").Annotations[api.AnnotationCertificateHash]
	e.stop()

	// Renewed while no controller runs; then the kubelet restarts inplace's containers where they are
	// (container restart rules), as it records in their status: same pods, new start times.
	time.Sleep(1100 * time.Millisecond)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	time.Sleep(1100 * time.Millisecond)
	restartedAt := metav1.NewTime(time.Now().Truncate(time.Second))
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=inplace"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		for j := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[j]
			cs.RestartCount++
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: restartedAt}}
		}
		if _, err := e.c.Client.CoreV1().Pods(e.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	e.start()
	clustertest.Eventually(t, time.Minute, "both ledgers to name the renewed certificates", func(context.Context) (bool, error) {
		h := e.get("inplace").Annotations[api.AnnotationCertificateHash]
		return h != before && e.get("control").Annotations[api.AnnotationCertificateHash] == h, nil
	})
	e.waitAvailable("control")
	e.quietly(3*time.Second, "inplace", "control")
	if got := e.rollouts("inplace"); got != 1 {
		t.Errorf("inplace, whose containers restarted after the renewal, rolled %d times; want none", got-1)
	}
	if got := e.rollouts("control"); got != 2 {
		t.Errorf("control, whose pods predate the renewal, rolled %d times; want once", got-1)
	}
}

// workloadGauge reads a per-workload gauge (certrollout_workload_stale_pods, ...) for the workloads of ns,
// by name.
func workloadGauge(t *testing.T, name, ns string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(workloads)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns {
				out[labels["name"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestAnAppThatReloadsOnceTheKubeletRefreshesItsFilesIsNotRestarted(t *testing.T) {
	e, apps, ca := newServedEnv(t)
	e.opts.ProbeGrace = 30 * time.Second
	before := e.runApps(apps, 1, map[string]string{"late": lateReload, "cold": loadAtStart})

	// The kubelet refreshes the files 8 s after the renewal: until then the late app serves the old
	// certificate, and probes see it so.
	time.Sleep(1100 * time.Millisecond)
	apps.renewing("api-tls", 8*time.Second)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	hash := e.renewedLedgers(before, "late", "cold")
	if v := e.verification("late", hash); !v.Verified || v.How != decide.HowReloadedByItself {
		t.Errorf("late's verification: %+v; want reloaded by itself", v)
	}
	if msg := e.eventMessage("late", api.ReasonReloadedByItself); msg == "" {
		t.Error("late has no ReloadedByItself Event")
	}
	e.waitAvailable("cold")
	e.quietly(3*time.Second, "late", "cold")
	for name, want := range map[string]int{"late": 1, "cold": 2} {
		if got := e.rollouts(name); got != want {
			t.Errorf("%s rolled %d times, want %d", name, got-1, want-1)
		}
	}
}

// A RolloutPolicy governs three apps. Its CertRollout restarts only the one that cannot take the new
// certificate without a restart: the app that reloads by itself (once the kubelet has refreshed its
// files) and the app reloaded through its hook are decided by probes and never become targets, and the
// app whose hook fails is handed to the policy, which restarts it once.
func TestAPolicyRestartsOnlyTheGovernedAppsThatNeitherReloadNorReloadThroughTheirHook(t *testing.T) {
	e, apps, ca := newServedEnv(t)
	e.opts.ProbeGrace = 30 * time.Second
	hook := []testgen.DeploymentOption{testgen.WithAnnotation(api.AnnotationReload, "POST http://:8080/-/reload"), testgen.WithAnnotation(api.AnnotationReloadTimeout, "20s")}
	for name, behaviour := range map[string]string{"late": lateReload, "hooked": hooked, "broken": brokenHook} {
		apps.add(name, behaviour, "api-tls")
		opts := []testgen.DeploymentOption{testgen.WithAnnotation(api.AnnotationProbe, "8443")}
		if behaviour != lateReload {
			opts = append(opts, hook...)
		}
		d := testgen.Deployment(e.ns, name, 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, opts...)
		d.Labels = map[string]string{"role": "tls"}
		e.deploy(d)
	}
	e.createPolicy("tls", api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "tls"}}, Order: api.OrderParallel, MaxConcurrent: 3,
		HealthTimeout: metav1.Duration{Duration: 2 * time.Minute}, OnFailure: api.FailureContinue,
	})
	for _, name := range []string{"late", "hooked", "broken"} {
		e.waitAvailable(name)
	}
	apps.started(context.Background())
	e.start()
	for _, name := range []string{"late", "hooked", "broken"} {
		e.waitLedger(name, "")
	}
	before := e.get("late").Annotations[api.AnnotationCertificateHash]

	time.Sleep(1100 * time.Millisecond)
	apps.renewing("api-tls", 8*time.Second)
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api-2", testgen.WithDNSNames("api.example.com")), ca, nil)
	ro := e.waitRollout(3*time.Minute, "the policy's one CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if len(ro.Status.Targets) != 1 || ro.Status.Targets[0].Name != "broken" || ro.Status.Targets[0].State != api.TargetSucceeded {
		t.Errorf("the rollout's targets: %+v; want broken alone, Succeeded", ro.Status.Targets)
	}
	hash := e.renewedLedgers(before, "late", "hooked", "broken")

	if v := e.verification("late", hash); !v.Verified || v.How != decide.HowReloadedByItself {
		t.Errorf("late's verification: %+v; want reloaded by itself", v)
	}
	if v := e.verification("hooked", hash); !v.Verified || v.How != decide.HowReloaded {
		t.Errorf("hooked's verification: %+v; want verified, reloaded", v)
	}
	for name, want := range map[string]int{"hooked": 2, "broken": 2, "late": 0} {
		if calls := apps.hookCalls(name); calls != want {
			t.Errorf("%s's reload hook was called %d times, want %d (once per pod of a hooked app)", name, calls, want)
		}
	}
	if msg := e.eventMessage("broken", api.ReasonReloading); !strings.Contains(msg, "500 Internal Server Error") {
		t.Errorf("broken's Reloading Event does not quote the failure: %q", msg)
	}
	e.waitAvailable("broken")
	e.quietly(3*time.Second, "late", "hooked", "broken")
	for name, want := range map[string]int{"late": 1, "hooked": 1, "broken": 2} {
		if got := e.rollouts(name); got != want {
			t.Errorf("%s rolled %d times, want %d", name, got-1, want-1)
		}
	}
}
