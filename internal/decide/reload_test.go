package decide

import (
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/probe"
)

func TestParseReloadHook(t *testing.T) {
	for value, want := range map[string]string{
		"POST http://:8080/-/reload":            "POST http://:8080/-/reload",
		"put https://:8443/admin/reload?tls=1":  "PUT https://:8443/admin/reload?tls=1",
		"POST http://10.0.0.1:8080/-/reload":    "names no host",
		"POST http://evil.example.com/-/reload": "names no host",
		"DELETE http://:8080/":                  "GET, POST or PUT",
		"POST http:///reload":                   "needs a port",
		"POST ftp://:21/reload":                 "http or https",
		"http://:8080/-/reload":                 "a method and a URL",
	} {
		h, ok, err := ParseReloadHook(map[string]string{api.AnnotationReload: value})
		got := h.String()
		if err != nil {
			got = err.Error()
		}
		if !ok || !strings.Contains(got, want) {
			t.Errorf("%q: %q (declared %v), want %q", value, got, ok, want)
		}
	}
	if _, ok, err := ParseReloadHook(nil); ok || err != nil {
		t.Errorf("no annotation: declared %v, %v", ok, err)
	}
	h, _, err := ParseReloadHook(map[string]string{api.AnnotationReload: "POST http://:8080/r", api.AnnotationReloadTimeout: "90s"})
	if err != nil || h.Timeout != 90*time.Second || h.URL("10.0.0.7") != "http://10.0.0.7:8080/r" {
		t.Errorf("%+v %v", h, err)
	}
	if _, _, err := ParseReloadHook(map[string]string{api.AnnotationReload: "POST http://:8080/r", api.AnnotationReloadTimeout: "2h"}); err == nil {
		t.Error("a timeout over an hour is accepted")
	}
}

func TestAReloadHookIsCalledOnceThenWaitedForThenFallsBackToARestart(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	set := inventory.Set{Fingerprints: []string{"bb"}, Hash: "new", IssuedAt: now.Add(-time.Hour)}
	hook := &ReloadHook{Method: "POST", Scheme: "http", Port: 8080, Path: "/-/reload", Timeout: time.Minute}
	annotations := func(kv ...string) map[string]string {
		a := map[string]string{api.AnnotationEnabled: "true", api.AnnotationCertificateHash: "old"}
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		return a
	}
	attempt := func(hash string, ago time.Duration, failed bool) string {
		return ReloadAttempt{Hash: hash, At: now.Add(-ago), Failed: failed, Message: "POST http://:8080/-/reload answered on 0 of 1 pod(s)"}.Annotation()
	}
	old := []Pod{{Name: "a", Started: now.Add(-2 * time.Hour), Serves: probe.Old}}
	current := []Pod{{Name: "a", Started: now.Add(-2 * time.Hour), Serves: probe.Current}}
	for name, tc := range map[string]struct {
		in         Input
		wantAction Action
		wantReason string
		wantIn     string
	}{
		"calls the hook instead of restarting": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations()}, Set: set, Pods: old, Probed: true, Reload: hook},
			wantAction: ActionReload, wantReason: api.ReasonReloading, wantIn: "calling their reload hook POST http://:8080/-/reload",
		},
		"waits for the pods after the call": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("new", 10*time.Second, false))}, Set: set, Pods: old, Probed: true, Reload: hook},
			wantAction: ActionWait, wantReason: api.ReasonReloading, wantIn: "restarting at",
		},
		"records the reload once the pods serve the new certificates": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("new", 10*time.Second, false))}, Set: set, Pods: current, Probed: true, Reload: hook},
			wantAction: ActionRecord, wantReason: api.ReasonReloaded, wantIn: "reloaded through its hook",
		},
		"restarts once the timeout passed": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("new", 2*time.Minute, false))}, Set: set, Pods: old, Probed: true, Reload: hook},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantIn: "did not serve the new certificates within 1m0s of the reload hook",
		},
		"restarts at once when every call failed": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("new", time.Second, true))}, Set: set, Pods: old, Probed: true, Reload: hook},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantIn: "its reload hook failed",
		},
		"calls the hook again for the next renewal": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("older", time.Second, true))}, Set: set, Pods: old, Probed: true, Reload: hook},
			wantAction: ActionReload, wantReason: api.ReasonReloading,
		},
		"reloads a workload its policy governs before the policy may restart it": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations()}, Set: set, Pods: old, Probed: true, Reload: hook, Policy: "tls"},
			wantAction: ActionReload, wantReason: api.ReasonReloading, wantIn: "instead of restarting",
		},
		"hands a governed workload whose reload failed to its policy, saying why": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations(api.AnnotationReloadAttempt, attempt("new", time.Second, true))}, Set: set, Pods: old, Probed: true, Reload: hook, Policy: "tls"},
			wantAction: ActionDelegate, wantReason: api.ReasonGovernedByPolicy, wantIn: "RolloutPolicy tls restarts them through a CertRollout; its reload hook failed",
		},
		"calls no hook while the governing policy is suspended": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations()}, Set: set, Pods: old, Probed: true, Reload: hook, Policy: "tls", PolicySuspended: true},
			wantAction: ActionDelegate, wantReason: api.ReasonGovernedByPolicy, wantIn: "RolloutPolicy tls restarts them",
		},
		"restarts when nothing can verify the reload": {
			in:         Input{Now: now, Workload: Workload{Kind: api.KindDeployment, Annotations: annotations()}, Set: set, Pods: []Pod{{Name: "a", Started: now.Add(-2 * time.Hour)}}, Reload: hook},
			wantAction: ActionRestart, wantReason: api.ReasonCertificateRenewed, wantIn: "no TLS port to verify it by",
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := Restart(tc.in)
			if d.Action != tc.wantAction || d.Reason != tc.wantReason || !strings.Contains(d.Message, tc.wantIn) {
				t.Errorf("got %s/%s: %s; want %s/%s saying %q", d.Action, d.Reason, d.Message, tc.wantAction, tc.wantReason, tc.wantIn)
			}
		})
	}
}
