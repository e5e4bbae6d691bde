package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard()) // the managers under test log nothing; their Events and status are asserted
	clustertest.Main(m)
}

// env is one test's namespace with a controller running in it.
type env struct {
	t    *testing.T
	c    *localcluster.Cluster
	ns   string
	opts Options
	stop func()
	cr   client.Client // see crClient
	// logger, when set, is the managers' logger (the package's default discards everything).
	logger logr.Logger
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{t: t, c: clustertest.Cluster(t), ns: clustertest.Namespace(t), opts: opts}
	e.opts.Namespaces = []string{e.ns}
	clustertest.InstallCRDs(t)
	return e
}

// start runs a controller manager scoped to the test's namespace until stopController or the test ends.
func (e *env) start() {
	e.t.Helper()
	mgr, err := NewManager(e.c.Config, ManagerOptions{Options: e.opts, MetricsBindAddress: "0", HealthProbeBindAddress: "0", Logger: e.logger})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("controller: %v", err)
		}
		e.stop = nil
	}
	e.t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		e.t.Fatal("caches did not sync")
	}
}

func (e *env) deploy(d *appsv1.Deployment) {
	e.t.Helper()
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// waitAvailable waits until every replica of the Deployment runs its current template.
func (e *env) waitAvailable(name string) {
	e.t.Helper()
	clustertest.Eventually(e.t, 2*time.Minute, "Deployment "+name+" to be available", func(ctx context.Context) (bool, error) {
		d, err := e.c.Client.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := *d.Spec.Replicas
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})
}

func (e *env) get(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.c.Client.AppsV1().Deployments(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// rollouts counts the ReplicaSets of a Deployment: one per template it has had.
func (e *env) rollouts(name string) int {
	e.t.Helper()
	rs, err := e.c.Client.AppsV1().ReplicaSets(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: labels.Set{"app": name}.String()})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rs.Items)
}

func (e *env) waitLedger(name, hash string) {
	e.t.Helper()
	clustertest.Eventually(e.t, time.Minute, fmt.Sprintf("Deployment %s to record certificates %q", name, hash), func(ctx context.Context) (bool, error) {
		d, err := e.c.Client.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got := d.Annotations[api.AnnotationCertificateHash]
		if hash == "" {
			return got != "", nil
		}
		if got != hash {
			return false, fmt.Errorf("ledger says %q", got)
		}
		return true, nil
	})
}

// tlsSecret writes (creates or replaces) a TLS Secret from a generated certificate.
func (e *env) tlsSecret(name string, leaf *testgen.Cert, ca *testgen.Cert, extra map[string][]byte) {
	e.t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(e.t), "ca.crt": ca.PEM()},
	}
	for k, v := range extra {
		s.Data[k] = v
	}
	ctx := context.Background()
	_, err := e.c.Client.CoreV1().Secrets(e.ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := e.c.Client.CoreV1().Secrets(e.ns).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			e.t.Fatal(gerr)
		}
		s.ResourceVersion = cur.ResourceVersion
		s.Annotations = cur.Annotations
		_, err = e.c.Client.CoreV1().Secrets(e.ns).Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// quietly asserts that nothing rolls for a while: a restart certrollout should not make would show as a
// new ReplicaSet within a few settle periods.
func (e *env) quietly(d time.Duration, names ...string) {
	e.t.Helper()
	before := map[string]int{}
	for _, n := range names {
		before[n] = e.rollouts(n)
	}
	time.Sleep(d)
	for _, n := range names {
		if got := e.rollouts(n); got != before[n] {
			e.t.Errorf("Deployment %s rolled: %d ReplicaSets, had %d", n, got, before[n])
		}
	}
}

// webOnSecret creates Secret api-tls and an opted-in Deployment web that mounts it, starts the controller
// and waits for web's ledger. It returns the CA and leaf used and the recorded hash.
func (e *env) webOnSecret() (ca, leaf *testgen.Cert, hash string) {
	e.t.Helper()
	ca = testgen.CA(e.t, "root")
	leaf = testgen.Leaf(e.t, ca, "api")
	e.tlsSecret("api-tls", leaf, ca, nil)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")
	e.start()
	e.waitLedger("web", "")
	return ca, leaf, e.get("web").Annotations[api.AnnotationCertificateHash]
}

func (e *env) hasEvent(regarding, eventType, reason string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + regarding})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Reason == reason && ev.Type == eventType {
				return true, nil
			}
		}
		return false, nil
	}
}

func testOptions() Options {
	o := DefaultOptions()
	o.SettlePeriod = time.Second
	o.MinRestartInterval = 0
	o.RestartRate, o.RestartBurst = 100, 100
	o.AllowRepeatedSetup = true
	return o
}

func deployment(ns, name string, enabled bool, pod ...testgen.PodOption) *appsv1.Deployment {
	var opts []testgen.DeploymentOption
	if enabled {
		opts = append(opts, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	}
	return testgen.Deployment(ns, name, 2, pod, opts...)
}

func TestACertManagerRenewalRollsEachOptedInConsumerExactlyOnce(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(testgen.CertManagerChain(e.ns, "api", "api-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "Certificate api to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, e.c, e.ns, "api")
	})
	e.deploy(deployment(e.ns, "volume", true, testgen.WithSecretVolume("api-tls")))
	e.deploy(deployment(e.ns, "env", true, testgen.WithSecretEnv("api-tls", "tls.crt")))
	e.deploy(deployment(e.ns, "ca-only", true, testgen.WithSecretVolume("api-tls", "ca.crt")))
	e.deploy(deployment(e.ns, "not-enabled", false, testgen.WithSecretVolume("api-tls")))
	e.deploy(deployment(e.ns, "unrelated", true, testgen.WithSecretVolume("other")))
	all := []string{"volume", "env", "ca-only", "not-enabled", "unrelated"}
	for _, n := range all {
		e.waitAvailable(n)
	}
	e.start()
	// First sight: the pods started after the certificate was issued, so the ledger is recorded and
	// nothing restarts.
	for _, n := range []string{"volume", "env", "ca-only"} {
		e.waitLedger(n, "")
	}
	e.quietly(3*time.Second, all...)
	if h := e.get("not-enabled").Annotations[api.AnnotationCertificateHash]; h != "" {
		t.Fatalf("a workload that did not opt in got a ledger: %q", h)
	}
	oldHash := e.get("volume").Annotations[api.AnnotationCertificateHash]

	clustertest.Renew(t, e.c, e.ns, "api")
	clustertest.Eventually(t, time.Minute, "the consumers of api-tls to restart", func(ctx context.Context) (bool, error) {
		for _, n := range []string{"volume", "env"} {
			d := e.get(n)
			h := d.Annotations[api.AnnotationCertificateHash]
			if h == oldHash || d.Spec.Template.Annotations[api.AnnotationRestartHash] != h {
				return false, fmt.Errorf("%s: ledger %q, template %q", n, h, d.Spec.Template.Annotations[api.AnnotationRestartHash])
			}
		}
		return true, nil
	})
	e.waitAvailable("volume")
	e.waitAvailable("env")
	e.quietly(3*time.Second, all...)
	for name, want := range map[string]int{"volume": 2, "env": 2, "ca-only": 1, "not-enabled": 1, "unrelated": 1} {
		if got := e.rollouts(name); got != want {
			t.Errorf("Deployment %s: %d ReplicaSets, want %d", name, got, want)
		}
	}
	if ok, err := e.hasEvent("volume", corev1.EventTypeNormal, api.ReasonRestarted)(ctx); !ok {
		t.Errorf("no %s Event on Deployment volume (%v)", api.ReasonRestarted, err)
	}
	// The Event names the cert-manager Certificate and its revision; cert-manager writes the Secret before
	// its status, so the revision may not have caught up, and then the Event says so.
	evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=volume,reason=" + api.ReasonRestarted})
	if err != nil || len(evs.Items) == 0 {
		t.Fatalf("Restarted Events of volume: %v", err)
	}
	note := evs.Items[0].Note
	if !strings.Contains(note, "Secret api-tls from cert-manager Certificate api revision 2 (Ready)") &&
		!strings.Contains(note, "Secret api-tls from cert-manager Certificate api (its status still describes the previous certificate, revision 1)") {
		t.Errorf("the Restarted Event does not name the Certificate and its revision: %q", note)
	}
}

func TestNoRestartWhenTheControllerRestartsOrTheSecretIsRewrittenWithTheSameCertificates(t *testing.T) {
	e := newEnv(t, testOptions())
	ca, leaf, hash := e.webOnSecret()

	// The same certificates, re-encoded with a comment, an extra output format and new annotations.
	e.tlsSecret("api-tls", leaf, ca, map[string][]byte{"tls-combined.pem": testgen.Concat(leaf.PEM(), leaf.KeyPEM(t)), "note": []byte("rewritten")})
	e.quietly(4*time.Second, "web")

	// A controller restart (new process, fresh caches, every object seen again).
	e.stop()
	e.start()
	e.quietly(4*time.Second, "web")
	if got := e.get("web").Annotations[api.AnnotationCertificateHash]; got != hash {
		t.Fatalf("ledger changed from %s to %s without a certificate change", hash, got)
	}
	if e.rollouts("web") != 1 {
		t.Fatalf("web rolled %d times", e.rollouts("web")-1)
	}
}

func TestChangesWithinTheSettlePeriodCoalesceIntoOneRollout(t *testing.T) {
	opts := testOptions()
	opts.SettlePeriod = 4 * time.Second
	e := newEnv(t, opts)
	ca := testgen.CA(t, "root")
	e.tlsSecret("a", testgen.Leaf(t, ca, "a"), ca, nil)
	e.tlsSecret("b", testgen.Leaf(t, ca, "b"), ca, nil)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("a"), testgen.WithSecretEnv("b", "tls.crt")))
	e.waitAvailable("web")
	e.start()
	e.waitLedger("web", "")
	first := e.get("web").Annotations[api.AnnotationCertificateHash]

	e.tlsSecret("a", testgen.Leaf(t, ca, "a"), ca, nil)
	time.Sleep(time.Second)
	e.tlsSecret("b", testgen.Leaf(t, ca, "b"), ca, nil)
	clustertest.Eventually(t, time.Minute, "web to restart", func(ctx context.Context) (bool, error) {
		return e.get("web").Annotations[api.AnnotationCertificateHash] != first, nil
	})
	e.waitAvailable("web")
	e.quietly(6*time.Second, "web")
	if got := e.rollouts("web"); got != 2 {
		t.Fatalf("two Secrets renewed together: %d rollouts, want 1", got-1)
	}
}

func TestAFlappingSecretRestartsOnceWithinTheMinimumInterval(t *testing.T) {
	opts := testOptions()
	opts.MinRestartInterval = time.Hour
	e := newEnv(t, opts)
	ca, _, _ := e.webOnSecret()
	for i := range 4 {
		e.tlsSecret("api-tls", testgen.Leaf(t, ca, fmt.Sprintf("api-%d", i)), ca, nil)
		time.Sleep(2 * time.Second)
	}
	e.quietly(4*time.Second, "web")
	if got := e.rollouts("web"); got != 2 {
		t.Fatalf("four renewals within the minimum interval: %d rollouts, want 1", got-1)
	}
}

func TestFirstSightRestartsOnlyPodsThatPredateTheirCertificate(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	// The pods start with an old certificate; the Secret is then renewed while no controller runs.
	e.tlsSecret("stale-tls", testgen.Leaf(t, ca, "stale", testgen.WithValidity(time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour))), ca, nil)
	e.tlsSecret("fresh-tls", testgen.Leaf(t, ca, "fresh"), ca, nil)
	e.deploy(deployment(e.ns, "stale", true, testgen.WithSecretVolume("stale-tls")))
	e.deploy(deployment(e.ns, "fresh", true, testgen.WithSecretVolume("fresh-tls")))
	e.waitAvailable("stale")
	e.waitAvailable("fresh")
	time.Sleep(1100 * time.Millisecond) // issuance must fall in a later second than the pods' start
	e.tlsSecret("stale-tls", testgen.Leaf(t, ca, "stale"), ca, nil)

	e.start()
	clustertest.Eventually(t, time.Minute, "stale to restart", func(ctx context.Context) (bool, error) {
		d := e.get("stale")
		return d.Spec.Template.Annotations[api.AnnotationRestartHash] != "", nil
	})
	e.waitLedger("fresh", "")
	e.waitAvailable("stale")
	e.quietly(3*time.Second, "stale", "fresh")
	if e.rollouts("stale") != 2 || e.rollouts("fresh") != 1 {
		t.Fatalf("stale rolled %d times (want 1), fresh %d (want 0)", e.rollouts("stale")-1, e.rollouts("fresh")-1)
	}
}

func TestAPausedDeploymentIsReportedNotChanged(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	now := time.Now()
	oldLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Hour), now.Add(2*24*time.Hour)))
	newLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Minute), now.Add(90*24*time.Hour)))
	e.tlsSecret("api-tls", oldLeaf, ca, nil)
	e.deploy(deployment(e.ns, "paused", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("paused")
	e.start()
	e.waitLedger("paused", "")
	// A patch, not get-and-update: the Deployment controller writes the status concurrently.
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), "paused", types.MergePatchType,
		[]byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	blocked, _ := sample(t, "certrollout_restarts_blocked_total", map[string]string{"reason": api.ReasonDeploymentPaused})
	decided, _ := sample(t, "certrollout_decisions_total", map[string]string{"action": "Block", "reason": api.ReasonDeploymentPaused})
	e.tlsSecret("api-tls", newLeaf, ca, nil)
	clustertest.Eventually(t, time.Minute, "a DeploymentPaused Event", e.hasEvent("paused", corev1.EventTypeWarning, api.ReasonDeploymentPaused))
	// Each blocked decision is counted twice over: as a decision and as a blocked restart.
	if got, _ := sample(t, "certrollout_restarts_blocked_total", map[string]string{"reason": api.ReasonDeploymentPaused}); got <= blocked {
		t.Errorf("restarts_blocked_total{reason=DeploymentPaused} did not rise (%g)", got)
	}
	if got, _ := sample(t, "certrollout_decisions_total", map[string]string{"action": "Block", "reason": api.ReasonDeploymentPaused}); got <= decided {
		t.Errorf("decisions_total{action=Block,reason=DeploymentPaused} did not rise (%g)", got)
	}
	if got := e.get("paused").Spec.Template.Annotations[api.AnnotationRestartHash]; got != "" {
		t.Fatalf("a paused Deployment's template was changed: %q", got)
	}
	// The metrics say what the pods run on: the old certificate, on pods a blocked restart cannot replace.
	paused := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "paused"}
	waitSample(t, "certrollout_workload_restart_blocked", map[string]string{"namespace": e.ns, "name": "paused", "reason": api.ReasonDeploymentPaused}, 1)
	waitSample(t, "certrollout_workload_stale_pods", paused, 2)
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", paused, float64(oldLeaf.X509.NotAfter.Unix()))
	waitSample(t, "certrollout_workload_certificate_expiry_timestamp_seconds", paused, float64(newLeaf.X509.NotAfter.Unix()))
}

func TestMalformedPEMGetsAnEventAndBreaksNothingElse(t *testing.T) {
	e := newEnv(t, testOptions())
	ca, leaf, hash := e.webOnSecret()

	broken := []byte("-----BEGIN CERTIFICATE-----\n@@not base64@@\n-----END CERTIFICATE-----\n")
	e.tlsSecret("api-tls", leaf, ca, map[string][]byte{"extra.crt": broken})
	clustertest.Eventually(t, time.Minute, "an InvalidCertificate Event on the Secret", func(ctx context.Context) (bool, error) {
		evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=api-tls"})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Reason == api.ReasonInvalidCertificate && ev.Type == corev1.EventTypeWarning && ev.Regarding.Kind == "Secret" {
				if !strings.Contains(ev.Note, "extra.crt") || !strings.Contains(ev.Note, "PEM block 1") {
					return false, fmt.Errorf("event does not say where: %q", ev.Note)
				}
				return true, nil
			}
		}
		return false, nil
	})
	e.quietly(3*time.Second, "web")
	if got := e.get("web").Annotations[api.AnnotationCertificateHash]; got != hash {
		t.Fatalf("a malformed extra key changed what web runs on: %s → %s", hash, got)
	}

	// The controller still works for everything else: a real renewal of the valid key rolls web.
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, map[string][]byte{"extra.crt": broken})
	clustertest.Eventually(t, time.Minute, "web to restart for the renewed leaf", func(ctx context.Context) (bool, error) {
		return e.get("web").Annotations[api.AnnotationCertificateHash] != hash, nil
	})
}

func TestHelmReleaseSecretsNeverReachTheController(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	helm := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "helm-release-web-v1", Namespace: e.ns},
		Type:       HelmReleaseSecretType,
		Data:       map[string][]byte{"release": ca.PEM()}, // even one that happens to hold a certificate
	}
	if _, err := e.c.Client.CoreV1().Secrets(e.ns).Create(ctx, helm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.deploy(deployment(e.ns, "on-helm", true, testgen.WithSecretVolume(helm.Name)))
	e.waitAvailable("on-helm")
	e.webOnSecret() // a workload on an ordinary Secret gets its ledger: the controller is running
	if h := e.get("on-helm").Annotations[api.AnnotationCertificateHash]; h != "" {
		t.Fatalf("a Helm release Secret was read as a certificate source: ledger %q", h)
	}
}
