package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// issuedCertificate creates cert-manager's test chain in the namespace (Certificate name writing
// Secret secret) and waits until it is issued.
func (e *restartEnv) issuedCertificate(name, secret string) {
	e.t.Helper()
	c := clustertest.Cluster(e.t)
	if err := localcluster.Apply(context.Background(), c.Config, []byte(testgen.CertManagerChain(e.ns, name, secret, "2160h", ""))); err != nil {
		e.t.Fatal(err)
	}
	clustertest.Eventually(e.t, 2*time.Minute, "Certificate "+name+" to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, e.ns, name)
	})
}

func (e *restartEnv) certificate(name string) certmanager.Certificate {
	e.t.Helper()
	var crt certmanager.Certificate
	if err := e.cl.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &crt); err != nil {
		e.t.Fatal(err)
	}
	return crt
}

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func TestRenewWaitsUntilTheNextRevisionIsReady(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	before := e.certificate("api")
	if before.Status.Revision == nil {
		t.Fatal("the issued Certificate has no revision")
	}
	// Usually 1; cert-manager may issue a leaf twice when its CA issuer becomes ready just after it.
	rev := *before.Status.Revision
	out, stderr, err := e.run("renew", "api", "--wait", "--timeout", "2m")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	if !strings.HasPrefix(out, fmt.Sprintf("certificate.cert-manager.io/api renewal triggered (revision %d)\n", rev)) {
		t.Errorf("first line:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !timestamped.MatchString(last) || !strings.Contains(last, fmt.Sprintf("Issued    revision %d, Ready, valid until ", rev+1)) {
		t.Errorf("last line %q", last)
	}
	after := e.certificate("api")
	if after.Status.Revision == nil || *after.Status.Revision != rev+1 || !after.Ready() {
		t.Fatalf("after: revision %v, ready %v", after.Status.Revision, after.Ready())
	}
	// The patch named only the Issuing condition: cert-manager's Ready condition was never lost, and the
	// issuance left no Issuing condition behind.
	if after.Condition(certmanager.ConditionIssuing) != nil {
		t.Errorf("Issuing condition left: %+v", after.Condition(certmanager.ConditionIssuing))
	}

	// A failed issuance leaves Issuing=False: the next renewal replaces that condition rather than adding
	// a second one (which the CRD's list-map would refuse). -o json prints the RenewReport.
	failed := e.certificate("api")
	failedCond := fmt.Sprintf(`[{"op":"add","path":"/status/conditions/-","value":{"type":"Issuing","status":"False","reason":"Failed","message":"simulated","lastTransitionTime":%q}}]`,
		time.Now().UTC().Format(time.RFC3339))
	if err := e.cl.Status().Patch(context.Background(), &failed, client.RawPatch(types.JSONPatchType, []byte(failedCond))); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = e.run("renew", "api", "--wait", "--timeout", "2m", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var report RenewReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a RenewReport: %v\n%s", err, out)
	}
	if report.Kind != "RenewReport" || len(report.Certificates) != 1 {
		t.Fatalf("report: %+v", report)
	}
	rc := report.Certificates[0]
	if rc.Result != RenewIssued || rc.SecretName != "api-tls" || *rc.PreviousRevision != rev+1 || *rc.Revision != rev+2 || !rc.Ready {
		t.Errorf("certificate: %+v", rc)
	}
	if !strings.Contains(stderr, fmt.Sprintf("renewal triggered (revision %d)", rev+1)) {
		t.Errorf("progress belongs on stderr under -o json:\n%s", stderr)
	}
}

func TestRenewSkipsACertificateAlreadyIssuingAndTimesOut(t *testing.T) {
	e := newRestartEnv(t)
	// An issuer that does not exist: cert-manager marks the Certificate Issuing and never finishes.
	stuck := `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: stuck, namespace: ` + e.ns + `}
spec: {secretName: stuck-tls, commonName: stuck, issuerRef: {name: nowhere, kind: Issuer}}
`
	if err := localcluster.Apply(context.Background(), clustertest.Cluster(t).Config, []byte(stuck)); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "cert-manager to mark Certificate stuck Issuing", func(context.Context) (bool, error) {
		c := e.certificate("stuck")
		i := c.Condition(certmanager.ConditionIssuing)
		return i != nil && i.Status == "True", nil
	})
	out, stderr, err := e.run("renew", "stuck", "--wait", "--timeout", "3s")
	var ee *exitError
	if !errors.Is(err, ErrWaitTimedOut) || !errors.As(err, &ee) || ee.code != ExitTimedOut {
		t.Fatalf("want exit %d after the timeout, got %v\n%s%s", ExitTimedOut, err, out, stderr)
	}
	if crt := e.certificate("stuck"); crt.Condition(certmanager.ConditionIssuing).Reason == reasonManuallyTriggered {
		t.Errorf("an issuing Certificate was triggered again: %+v", crt.Condition(certmanager.ConditionIssuing))
	}
	normal := strings.ReplaceAll(rfc3339.ReplaceAllString(out, "<time>")+"--- error\n"+err.Error()+"\n", e.ns, "<namespace>")
	golden(t, "renew-already-issuing", normal)
}

func TestRenewNamesUnknownCertificatesAndRenewsNone(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	_, _, err := e.run("renew", "api", "nope")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`Certificate "nope" not found in namespace %q`, e.ns)) || !strings.Contains(err.Error(), "nothing was renewed") {
		t.Fatalf("want the unknown Certificate named, got %v", err)
	}
	if crt := e.certificate("api"); crt.Condition(certmanager.ConditionIssuing) != nil {
		t.Errorf("api was triggered although the command failed: %+v", crt.Condition(certmanager.ConditionIssuing))
	}
	_, _, err = e.run("renew", "-l", "team=none")
	if err == nil || !strings.Contains(err.Error(), `no Certificate matches "team=none" in namespace `+e.ns) {
		t.Errorf("empty selection: %v", err)
	}
}

func TestRenewWithoutCertManagerSaysSo(t *testing.T) {
	// The shared cluster runs cert-manager; a REST mapper without cert-manager.io answers as a cluster
	// without it does.
	c := clustertest.Cluster(t)
	mapper := apimeta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, apimeta.RESTScopeNamespace)
	cl, err := client.NewWithWatch(c.Config, client.Options{Scheme: Scheme(), Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	o := &RenewOptions{Names: []string{"api"}, KubeFlags: KubeFlags{config: c.Config, namespace: "default"}}
	_, err = o.certificates(context.Background(), cl)
	if !errors.Is(err, ErrCertManagerMissing) || !strings.Contains(err.Error(), "install cert-manager") {
		t.Fatalf("want the cert-manager hint, got %v", err)
	}
}

func TestRenewRestartRollsTheConsumersOnce(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	// web is not opted in: only the rollout renew --restart creates restarts it.
	e.deploy(testgen.Deployment(e.ns, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}), true)
	e.deploy(testgen.Deployment(e.ns, "other", 1, nil), true)
	e.startController()
	before, beforeOther := e.replicaSets("web"), e.replicaSets("other")
	rev := *e.certificate("api").Status.Revision
	out, stderr, err := e.run("renew", "api", "--restart", "--timeout", "3m")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	ros := e.rollouts()
	if len(ros) != 1 {
		t.Fatalf("%d CertRollouts, want 1", len(ros))
	}
	ro := ros[0]
	if ro.Status.Phase != api.PhaseSucceeded || refsString(ro.Spec.Targets) != "Deployment/web" || !strings.HasPrefix(ro.Name, "web-") ||
		ro.Spec.Trigger.Message != "renewed by certrollout renew: Certificate api" {
		t.Fatalf("rollout %s: %s, targets %s, trigger %q", ro.Name, ro.Status.Phase, refsString(ro.Spec.Targets), ro.Spec.Trigger.Message)
	}
	for _, want := range []string{fmt.Sprintf("renewal triggered (revision %d)", rev), fmt.Sprintf("Issued    revision %d, Ready", rev+1), "certrollout.certrollout.io/" + ro.Name + " created: Deployment/web", "Deployment/web restarted and healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	waitDeploymentAvailable(t, e.ns, "web")
	time.Sleep(2 * time.Second) // a second restart would show as another ReplicaSet by now
	if got := e.replicaSets("web"); got != before+1 {
		t.Errorf("web has %d ReplicaSets, had %d: want exactly one new rollout", got, before)
	}
	if got := e.replicaSets("other"); got != beforeOther {
		t.Errorf("other rolled: %d ReplicaSets, had %d", got, beforeOther)
	}
}

// ledgerHash is the certificate set the controller's ledger says a Deployment's pods run on.
func (e *restartEnv) ledgerHash(name string) string {
	e.t.Helper()
	var d appsv1.Deployment
	if err := e.cl.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &d); err != nil {
		e.t.Fatal(err)
	}
	return d.Annotations[api.AnnotationCertificateHash]
}

// renewalRollouts checks what renew --restart left for one renewal of the certificates hash that
// Deployment web uses: web restarted by exactly one CertRollout, and skipped as up to date by any other
// rollout that targets it. It returns the rollout that restarted web, or nil when none did (the
// controller restarted it directly), and the rollouts that skipped it.
func (e *restartEnv) renewalRollouts(hash string) (restarted *api.CertRollout, skipped []api.CertRollout) {
	e.t.Helper()
	for _, ro := range e.rollouts() {
		if ro.Status.Phase != api.PhaseSucceeded {
			e.t.Errorf("rollout %s ended %s: %s", ro.Name, ro.Status.Phase, ro.Status.Message)
		}
		for _, tg := range ro.Status.Targets {
			if tg.Kind != "Deployment" || tg.Name != "web" {
				continue
			}
			switch {
			case tg.State == api.TargetSucceeded && tg.RestartValue == hash:
				if restarted != nil {
					e.t.Errorf("web restarted by both %s and %s", restarted.Name, ro.Name)
				}
				restarted = &ro
			case tg.State == api.TargetUpToDate && strings.HasPrefix(tg.Message, "already runs on certificates "+hash+" "):
				skipped = append(skipped, ro)
			default:
				e.t.Errorf("rollout %s: web %s (restart value %q, want %q): %s", ro.Name, tg.State, tg.RestartValue, hash, tg.Message)
			}
		}
	}
	return restarted, skipped
}

// renewRestartingWebOnce starts the controller (no settle period), waits for it to record web's
// certificates, runs renew api --restart, and checks that web rolled exactly once onto new certificates.
// It returns what renew printed and web's new certificate hash.
func (e *restartEnv) renewRestartingWebOnce() (out, renewed string) {
	t := e.t
	t.Helper()
	e.startControllerSettling(0)
	var first string
	clustertest.Eventually(t, time.Minute, "the controller to record web's certificates", func(context.Context) (bool, error) {
		first = e.ledgerHash("web")
		return first != "", nil
	})
	before := e.replicaSets("web")
	var stderr string
	var err error
	out, stderr, err = e.run("renew", "api", "--restart", "--timeout", "3m")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	t.Logf("renew --restart printed:\n%s", out)
	waitDeploymentAvailable(t, e.ns, "web")
	time.Sleep(2 * time.Second) // a second restart would show as another ReplicaSet by now
	renewed = e.ledgerHash("web")
	if renewed == first {
		t.Fatalf("web's ledger still names the certificates %s from before the renewal", first)
	}
	if got := e.replicaSets("web"); got != before+1 {
		t.Errorf("web has %d ReplicaSets, had %d: want exactly one new rollout for the renewal\n%s", got, before, out)
	}
	return out, renewed
}

func TestRenewRestartDoesNotRestartAgainWhatTheControllerRestartedOnItsOwn(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	// web is opted in: the controller restarts it on the renewal by itself, as soon as the Secret changes
	// (no settle period), normally before renew --restart has read the cluster.
	e.deploy(testgen.Deployment(e.ns, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")},
		testgen.WithAnnotation(api.AnnotationEnabled, "true")), true)
	out, renewed := e.renewRestartingWebOnce()
	ros := e.rollouts()
	if len(ros) != 1 {
		t.Fatalf("%d CertRollouts, want the 1 renew created", len(ros))
	}
	if got := ros[0].Spec.Trigger.Certificates["Deployment/web"]; got != renewed {
		t.Errorf("the rollout rolls web onto certificates %q, want the renewed %s", got, renewed)
	}
	restarted, skipped := e.renewalRollouts(renewed)
	// Which comes first is the cluster's timing; either way the output says what happened.
	switch {
	case len(skipped) == 1:
		want := "Deployment/web up to date: already runs on certificates " + renewed + " (rolled onto them before this rollout reached it); not restarted again"
		if !strings.Contains(out, want) || !strings.Contains(out, "0/1 restarted, 1 up to date") {
			t.Errorf("output lacks %q and the up-to-date count:\n%s", want, out)
		}
	case restarted != nil:
		t.Logf("renew's rollout restarted web before the controller did; the controller then left it alone")
		if !strings.Contains(out, "Deployment/web restarted and healthy") {
			t.Errorf("output lacks the restart:\n%s", out)
		}
	}
}

func TestRenewRestartRollsAGovernedConsumerOnceWithItsPolicy(t *testing.T) {
	e := newRestartEnv(t)
	e.issuedCertificate("api", "api-tls")
	// The policy governs web: on the renewal its controller creates a CertificateRenewed rollout at once
	// (no settle period), and renew --restart must not add a second restart of web.
	e.deploy(withLabels(testgen.Deployment(e.ns, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}), map[string]string{"tier": "web"}), true)
	e.policy("web", api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
		HealthTimeout: metav1.Duration{Duration: 2 * time.Minute},
	})
	out, renewed := e.renewRestartingWebOnce()
	restarted, skipped := e.renewalRollouts(renewed)
	if restarted == nil {
		t.Fatalf("no rollout restarted web (skipped by %d)\n%s", len(skipped), out)
	}
	all := e.rollouts()
	created := func(ro *api.CertRollout) string {
		return "certrollout.certrollout.io/" + ro.Name + " created: policy web: Deployment/web\n"
	}
	// Which comes first is the cluster's timing; each way, one rollout restarts web and the output says
	// which.
	switch {
	case restarted.Spec.Trigger.Type == api.TriggerCertificateRenewed &&
		strings.Contains(out, "certrollout.certrollout.io/"+restarted.Name+" exists for policy web: Deployment/web (CertificateRenewed, "):
		if len(all) != 1 || !strings.Contains(out, "following it instead of creating another") || !strings.Contains(out, "Deployment/web restarted and healthy") {
			t.Errorf("%d rollouts; renew should follow the policy's and create none:\n%s", len(all), out)
		}
	case restarted.Spec.Trigger.Type == api.TriggerCertificateRenewed:
		t.Logf("the policy's rollout %s finished before renew looked; renew's own found web up to date", restarted.Name)
		if len(skipped) != 1 || !strings.Contains(out, created(&skipped[0])) || !strings.Contains(out, "Deployment/web up to date: already runs on certificates "+renewed) {
			t.Errorf("renew's rollout should have skipped web (skipped by %d):\n%s", len(skipped), out)
		}
	default:
		t.Logf("renew created the policy's rollout before the controller did; the controller then created none")
		if len(all) != 1 || restarted.Spec.Policy != "web" || restarted.Spec.Trigger.Certificates["Deployment/web"] != renewed ||
			!strings.Contains(out, created(restarted)) || !strings.Contains(out, "Deployment/web restarted and healthy") {
			t.Errorf("%d rollouts; renew's %s: policy %q, certificates %v\n%s", len(all), restarted.Name, restarted.Spec.Policy, restarted.Spec.Trigger.Certificates, out)
		}
	}
}

func TestARenewalIsDoneOnlyWhenTheStatusDescribesTheNewCertificate(t *testing.T) {
	old := time.Date(2027, 2, 22, 1, 38, 32, 0, time.UTC)
	renewed := old.Add(25 * time.Second)
	ready := []certmanager.Condition{{Type: certmanager.ConditionReady, Status: "True"}}
	crt := func(revision int, notAfter time.Time, conds []certmanager.Condition) *certmanager.Certificate {
		return &certmanager.Certificate{Status: certmanager.CertificateStatus{Revision: &revision, NotAfter: &metav1.Time{Time: notAfter}, Conditions: conds}}
	}
	prevRev := 1
	cases := map[string]struct {
		crt  *certmanager.Certificate
		done bool
	}{
		"the revision moved but the status still has the old expiry (readiness not updated yet)": {crt(2, old, ready), false},
		"the revision moved and the expiry is the new certificate's":                             {crt(2, renewed, ready), true},
		"the revision has not moved":       {crt(1, renewed, ready), false},
		"the new certificate is not Ready": {crt(2, renewed, nil), false},
	}
	for sentence, c := range cases {
		if got := renewDone(c.crt, &prevRev, &old); got != c.done {
			t.Errorf("%s: done %v, want %v", sentence, got, c.done)
		}
	}
	if !renewDone(crt(1, renewed, ready), nil, nil) {
		t.Error("a first issuance is done when Ready")
	}
}
