package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// lines parses each line of out as one JSON object.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("not one JSON object: %v\n%s", err, l)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestJSONLinesCarryTheDocumentedKeys(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatJSON, 1)
	if err != nil {
		t.Fatal(err)
	}
	log = log.WithName("settings").WithValues("controller", "deployment")
	log.Info("Restarted Deployment", "workload", klog.KRef("team-a", "web"), "stalePods", 2)
	log.V(1).Info("Deferred restart", "reason", "SettlePeriod", "after", 90*time.Second)
	log.V(2).Info("Too verbose to show")
	log.Error(errors.New("conflict"), "Failed to patch Deployment", "workload", klog.KRef("team-a", "web"))

	objs := lines(t, buf.String())
	if len(objs) != 3 {
		t.Fatalf("want three lines (V(2) is above verbosity 1), got %d:\n%s", len(objs), buf.String())
	}
	for i, want := range []struct {
		level, msg string
		v          float64
	}{{LevelInfo, "Restarted Deployment", 0}, {LevelInfo, "Deferred restart", 1}, {LevelError, "Failed to patch Deployment", 0}} {
		o := objs[i]
		if o[KeyLevel] != want.level || o[KeyMessage] != want.msg || o[KeyVerbosity] != want.v || o[KeyLogger] != "settings" || o["controller"] != "deployment" {
			t.Errorf("line %d: %v, want level %s, msg %q, v %v, logger settings and the logger's values", i, o, want.level, want.msg, want.v)
		}
		ts, _ := o[KeyTime].(string)
		if parsed, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(parsed) > time.Minute {
			t.Errorf("line %d: %s %q is not a recent RFC 3339 UTC time (%v)", i, KeyTime, ts, err)
		}
		if caller, _ := o[KeyCaller].(string); !strings.HasPrefix(caller, "logs/logs_test.go:") {
			t.Errorf("line %d: %s %q, want this test's file and line", i, KeyCaller, caller)
		}
	}
	if ref, ok := objs[0]["workload"].(map[string]any); !ok || ref["name"] != "web" || ref["namespace"] != "team-a" || objs[0]["stalePods"] != 2.0 {
		t.Errorf("key/values %v: the object reference should be structured", objs[0])
	}
	if objs[1]["after"] != "1m30s" {
		t.Errorf("a duration %v, want 1m30s", objs[1]["after"])
	}
	if objs[2][KeyError] != "conflict" {
		t.Errorf("error line %v, want %s conflict", objs[2], KeyError)
	}
}

func TestKlogOutputGoesThroughTheSameSink(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatJSON, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := RouteKlog(log, 0); err != nil {
		t.Fatal(err)
	}
	defer UnrouteKlog()
	klog.InfoS("Attempting to acquire leader lease", "lease", "certrollout-system/certrollout-controller")
	klog.Infof("plain %s line", "printf")
	objs := lines(t, buf.String())
	if len(objs) != 2 || objs[0][KeyMessage] != "Attempting to acquire leader lease" || objs[1][KeyMessage] != "plain printf line" {
		t.Fatalf("klog's lines were not written as JSON objects: %s", buf.String())
	}
}

func TestTextIsKlogsFormatAndAnUnknownFormatIsRefused(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatText, 0)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("Restarted Deployment", "workload", klog.KRef("team-a", "web"))
	if got := buf.String(); !strings.HasPrefix(got, "I") || !strings.Contains(got, `"Restarted Deployment" workload="team-a/web"`) {
		t.Errorf("text line %q is not klog's", got)
	}
	if _, err := New(&buf, "xml", 0); err == nil || !strings.Contains(err.Error(), "text, json") {
		t.Errorf("an unknown format: %v, want an error listing text, json", err)
	}
}
