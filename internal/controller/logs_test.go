package controller

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/logs"
	"github.com/certrollout/certrollout/internal/testgen"
)

// logBuffer collects what the controller logs, from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logJSON points the env's managers and klog (client-go) at one JSON logger at verbosity v, as
// `certrollout controller --log-format json -v=<v>` does, and returns what it writes.
func (e *env) logJSON(v int) *logBuffer {
	e.t.Helper()
	out := &logBuffer{}
	logger, err := logs.New(out, logs.FormatJSON, v)
	if err != nil {
		e.t.Fatal(err)
	}
	e.logger = logger
	if err := logs.RouteKlog(logger, v); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(logs.UnrouteKlog)
	return out
}

// eventsJSON returns every Event of the namespace, of both APIs, encoded whole.
func (e *env) eventsJSON() (string, int) {
	e.t.Helper()
	ctx := context.Background()
	evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	core, err := e.c.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	data, err := json.Marshal([]any{evs.Items, core.Items})
	if err != nil {
		e.t.Fatal(err)
	}
	return string(data), len(evs.Items) + len(core.Items)
}

// checkJSONLines parses every line as one object with the documented keys and returns them.
func checkJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i+1, err, l)
		}
		for _, k := range []string{logs.KeyTime, logs.KeyLevel, logs.KeyVerbosity, logs.KeyMessage} {
			if _, ok := obj[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i+1, k, l)
			}
		}
		if lvl := obj[logs.KeyLevel]; lvl != logs.LevelInfo && lvl != logs.LevelError {
			t.Errorf("line %d: level %v", i+1, lvl)
		}
		if _, ok := obj[logs.KeyError]; obj[logs.KeyLevel] == logs.LevelError && !ok {
			t.Errorf("line %d: an error line without %q: %s", i+1, logs.KeyError, l)
		}
		lines = append(lines, obj)
	}
	return lines
}

// logged says whether a line has the message, at verbosity v, with the key.
func logged(lines []map[string]any, msg string, v float64, key string) bool {
	for _, l := range lines {
		if _, ok := l[key]; ok && l[logs.KeyMessage] == msg && l[logs.KeyVerbosity] == v {
			return true
		}
	}
	return false
}

func TestLogsAndEventsNeverCarrySecretData(t *testing.T) {
	opts := testOptions()
	opts.MaxRestartsPerDay = 1 // the second renewal is blocked: RestartBudgetExhausted
	e := newEnv(t, opts)
	out := e.logJSON(2)
	marker := "s3cr3t-MARKER-" + e.ns
	// A value that is no certificate, and one that looks like one but is not: the controller reads and
	// reports on both (InvalidCertificate), and must quote neither.
	extra := map[string][]byte{"password": []byte(marker), "extra.crt": []byte("-----BEGIN CERTIFICATE-----\n" + marker + "\n-----END CERTIFICATE-----\n")}
	ca := testgen.CA(t, "root")
	leaves := []*testgen.Cert{testgen.Leaf(t, ca, "api"), testgen.Leaf(t, ca, "api"), testgen.Leaf(t, ca, "api"), testgen.Leaf(t, ca, "gov")}
	e.tlsSecret("api-tls", leaves[0], ca, extra)
	e.tlsSecret("gov-tls", leaves[3], ca, extra)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("api-tls")))
	gov := deployment(e.ns, "gov", false, testgen.WithSecretVolume("gov-tls"))
	gov.Labels = map[string]string{"role": "gov"}
	e.deploy(gov)
	e.waitAvailable("web")
	e.waitAvailable("gov")
	e.createPolicy("gov", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "gov"}}})
	decided := decisions(t)
	e.start()
	e.waitLedger("web", "")
	first := e.get("web").Annotations[api.AnnotationCertificateHash]

	e.tlsSecret("api-tls", leaves[1], ca, extra) // a renewal: web restarts
	clustertest.Eventually(t, time.Minute, "web to restart", func(context.Context) (bool, error) {
		return e.get("web").Annotations[api.AnnotationCertificateHash] != first, nil
	})
	e.waitAvailable("web")
	e.tlsSecret("api-tls", leaves[2], ca, extra) // another: over the budget, blocked
	clustertest.Eventually(t, time.Minute, "a RestartBudgetExhausted Event", e.hasEvent("web", corev1.EventTypeWarning, api.ReasonRestartBudget))
	e.tlsSecret("gov-tls", testgen.Leaf(t, ca, "gov"), ca, extra) // a renewal under a policy: a CertRollout
	e.waitRollout(2*time.Minute, "the policy's CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	clustertest.Eventually(t, time.Minute, "an InvalidCertificate Event", e.hasEvent("api-tls", corev1.EventTypeWarning, api.ReasonInvalidCertificate))
	e.stop() // every decision made is logged and counted

	events, n := e.eventsJSON()
	text := out.String()
	forbidden := []string{marker, base64.StdEncoding.EncodeToString([]byte(marker)), "PRIVATE KEY"}
	for _, l := range leaves {
		key := l.KeyPEM(t)
		body := strings.Split(string(key), "\n")[1] // the first line of the key's base64 DER
		forbidden = append(forbidden, base64.StdEncoding.EncodeToString(key), body)
	}
	for _, s := range forbidden {
		if strings.Contains(text, s) {
			t.Errorf("the logs carry Secret data %.40q", s)
		}
		if strings.Contains(events, s) {
			t.Errorf("the Events carry Secret data %.40q", s)
		}
	}
	lines := checkJSONLines(t, text)
	if n < 3 || len(lines) < 10 {
		t.Fatalf("%d Events and %d log lines: the test saw too little to prove anything", n, len(lines))
	}
	for _, want := range []struct {
		msg string
		v   float64
		key string
	}{{"Restarted Deployment", 0, "workload"}, {"Decided", 1, "action"}, {"Decided the next step of CertRollout", 1, "rollout"}, {"Decided for RolloutPolicy", 1, "policy"}} {
		if !logged(lines, want.msg, want.v, want.key) {
			t.Errorf("no line %q at v=%v with key %q", want.msg, want.v, want.key)
		}
	}
	checkDocumentedKeys(t, lines)
	checkOneLinePerDecision(t, lines, decided)
	if t.Failed() || os.Getenv("CERTROLLOUT_SHOW_LOGS") != "" {
		t.Logf("logs:\n%s", text)
	}
}
