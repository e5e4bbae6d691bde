package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/klog/v2"

	"github.com/certrollout/certrollout/internal/logs"
)

func TestControllerRejectsFlagsThatCannotWork(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"a lease shorter than the renew deadline":      {[]string{"--leader-election-lease-duration=5s", "--leader-election-renew-deadline=10s"}, "--leader-election-lease-duration (5s) > --leader-election-renew-deadline (10s)"},
		"a retry period as long as the renew deadline": {[]string{"--leader-election-renew-deadline=2s", "--leader-election-retry-period=2s"}, "--leader-election-retry-period (2s) > 0"},
		"a log format nobody reads":                    {[]string{"--log-format=xml"}, `--log-format must be one of text, json, not "xml"`},
		"an empty namespace in the list":               {[]string{"--namespaces=a,,b"}, "--namespaces has an empty name"},
		"a certificate for plain HTTP":                 {[]string{"--metrics-cert-dir=/nonexistent"}, "--metrics-cert-dir needs --metrics-secure"},
		"a certificate directory without tls.crt":      {[]string{"--metrics-secure", "--metrics-cert-dir=/nonexistent"}, "--metrics-cert-dir: stat /nonexistent/tls.crt"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := run(t, "certrollout", append([]string{"controller"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestControllerLeaseFlagsAreIgnoredWithoutLeaderElection(t *testing.T) {
	o := &ControllerOptions{LogFormat: "text", QPS: 1, Burst: 1}
	o.RestartRate, o.RestartBurst = 1, 1
	o.LeaderElection = false
	o.LeaseDuration = 1 // nonsense, but unused
	if err := o.Validate(); err != nil {
		t.Fatalf("lease flags should not matter without leader election: %v", err)
	}
	o.LeaderElection = true
	if err := o.Validate(); err == nil {
		t.Fatal("with leader election, a 1 ns lease must be refused")
	}
}

func TestControllerLogsOneJSONObjectPerLineUnderLogFormatJSON(t *testing.T) {
	var buf bytes.Buffer
	o := &ControllerOptions{LogFormat: "json", Verbosity: 1, IOStreams: IOStreams{ErrOut: &buf}}
	log, err := o.logger()
	if err != nil {
		t.Fatal(err)
	}
	defer logs.UnrouteKlog()
	log.Info("Restarted Deployment", "deployment", klog.KRef("team-a", "web"), "secret", "web-tls")
	log.V(1).Info("Decided", "reason", "Stale")
	log.V(2).Info("Too verbose to show")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two lines (V(2) is above --v=1), got %d:\n%s", len(lines), buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	if first["msg"] != "Restarted Deployment" || first["secret"] != "web-tls" || first["ts"] == nil {
		t.Fatalf("missing message, key or timestamp: %v", first)
	}
	if ref, ok := first["deployment"].(map[string]any); !ok || ref["name"] != "web" || ref["namespace"] != "team-a" {
		t.Fatalf("the object reference should be structured, got %v", first["deployment"])
	}
}
