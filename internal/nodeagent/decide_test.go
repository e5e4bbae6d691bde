package nodeagent

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

var (
	t0      = time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	fpOld   = "3f2a" + strings.Repeat("0", 60)
	fpNew   = "9b1c" + strings.Repeat("1", 60)
	fpOther = "77aa" + strings.Repeat("2", 60)
)

func file(name, path, fp string, since time.Time) api.NodeCertificateFile {
	return api.NodeCertificateFile{Name: name, Path: path, Fingerprint: fp, Since: metav1.NewTime(since),
		NotAfter: metav1.NewTime(t0.Add(365 * 24 * time.Hour))}
}

func at(t time.Time) *time.Time { return &t }

func TestDecideComponent(t *testing.T) {
	files := []api.NodeCertificateFile{
		file("apiserver", "/etc/kubernetes/pki/apiserver.crt", fpNew, t0.Add(30*time.Minute)),
		file("apiserver-etcd-client", "/etc/kubernetes/pki/apiserver-etcd-client.crt", fpNew, t0.Add(30*time.Minute)),
		file("front-proxy-client", "/etc/kubernetes/pki/front-proxy-client.crt", fpNew, t0.Add(30*time.Minute)),
	}
	serving := Use{Path: "/etc/kubernetes/pki/apiserver.crt", Use: api.UseServing, Endpoint: "198.18.0.1:6443", Flag: "--tls-cert-file"}
	etcdClient := Use{Path: "/etc/kubernetes/pki/apiserver-etcd-client.crt", Use: api.UseClient, Flag: "--etcd-certfile"}
	proxy := Use{Path: "/etc/kubernetes/pki/front-proxy-client.crt", Use: api.UseClient, Flag: "--proxy-client-cert-file", Reloads: true}
	apiserver := func(started time.Time, probe ProbeResult, uses ...Use) Observed {
		return Observed{Component: Component{Name: KubeAPIServer, Manifest: "/etc/kubernetes/manifests/kube-apiserver.yaml", Uses: uses},
			Running: true, StartedAt: at(started), Probes: []ProbeResult{probe, {}, {}}}
	}
	cases := map[string]struct {
		in           Observed
		state        string
		checks       []string
		message      string // substring of the component's message
		oldSince     *time.Time
		checkMessage string // substring of the first check's message
	}{
		"is current when it serves the file on disk and started after its client certificate was written": {
			in:    apiserver(t0.Add(time.Hour), ProbeResult{Served: fpNew}, serving, etcdClient),
			state: api.ComponentCurrent, checks: []string{api.ComponentCurrent, api.ComponentCurrent},
			checkMessage: "Serves apiserver on 198.18.0.1:6443, as on disk.",
		},
		"serves old when the endpoint presents another certificate than the file": {
			in:    apiserver(t0.Add(time.Hour), ProbeResult{Served: fpOld}, serving, etcdClient),
			state: api.ComponentServesOld, checks: []string{api.ComponentServesOld, api.ComponentCurrent},
			message: "Serves 3f2a0000… on 198.18.0.1:6443 but apiserver on disk is 9b1c1111….", oldSince: at(t0.Add(30 * time.Minute)),
		},
		"serves old when it started before a client certificate it does not reload was renewed": {
			in:    apiserver(t0.Add(10*time.Minute), ProbeResult{Served: fpNew}, serving, etcdClient),
			state: api.ComponentServesOld, checks: []string{api.ComponentCurrent, api.ComponentServesOld},
			message: "Started 2026-11-28T06:10:00Z, before apiserver-etcd-client was renewed at 2026-11-28T06:30:00Z; it does not reload it.",
		},
		"is current when it started before a client certificate it reloads itself": {
			in:    apiserver(t0.Add(10*time.Minute), ProbeResult{Served: fpNew}, serving, proxy),
			state: api.ComponentCurrent, checks: []string{api.ComponentCurrent, api.ComponentCurrent},
		},
		"counts a file written in the second it started as loaded": {
			in:    apiserver(t0.Add(30*time.Minute+500*time.Millisecond), ProbeResult{Served: fpNew}, serving, etcdClient),
			state: api.ComponentCurrent, checks: []string{api.ComponentCurrent, api.ComponentCurrent},
		},
		"is unreachable when its endpoint does not answer and nothing is old": {
			in:    apiserver(t0.Add(time.Hour), ProbeResult{Err: "connection refused"}, serving, etcdClient),
			state: api.ComponentUnreachable, checks: []string{api.ComponentUnreachable, api.ComponentCurrent},
			message: "Did not answer with TLS on 198.18.0.1:6443: connection refused.",
		},
		"serves old rather than unreachable when both are seen": {
			in:    apiserver(t0.Add(10*time.Minute), ProbeResult{Err: "connection refused"}, serving, etcdClient),
			state: api.ComponentServesOld, checks: []string{api.ComponentUnreachable, api.ComponentServesOld},
		},
		"is not running when no container of it runs": {
			in: Observed{Component: Component{Name: Etcd, Uses: []Use{{Path: "/etc/kubernetes/pki/etcd/server.crt", Use: api.UseServing, Endpoint: "127.0.0.1:2379"}}},
				NotRunning: "no mirror pod etcd-cp-1 in kube-system"},
			state: api.ComponentNotRunning, checks: []string{api.ComponentNotRunning},
			message: "Not running: no mirror pod etcd-cp-1 in kube-system.",
		},
		"checks only liveness of a certificate generated in memory": {
			in: Observed{Component: Component{Name: KubeScheduler, Uses: []Use{{Use: api.UseServing, Endpoint: "127.0.0.1:10259", LivenessOnly: true}}},
				Running: true, StartedAt: at(t0), Probes: []ProbeResult{{Served: fpOther}}},
			state: api.ComponentCurrent, checks: []string{api.ComponentCurrent},
			checkMessage: "generated in memory",
		},
		"is current when its start time is unknown": {
			in:    Observed{Component: Component{Name: KubeAPIServer, Uses: []Use{etcdClient}}, Running: true},
			state: api.ComponentCurrent, checks: []string{api.ComponentCurrent}, checkMessage: "start time is unknown",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := DecideComponent(c.in, files)
			if got.State != c.state {
				t.Errorf("state %s, want %s (%s)", got.State, c.state, got.Message)
			}
			if len(got.Checks) != len(c.checks) {
				t.Fatalf("checks %+v, want states %v", got.Checks, c.checks)
			}
			for i, s := range c.checks {
				if got.Checks[i].State != s {
					t.Errorf("check %d (%s): %s, want %s (%s)", i, got.Checks[i].File, got.Checks[i].State, s, got.Checks[i].Message)
				}
			}
			if c.message != "" && !strings.Contains(got.Message, c.message) {
				t.Errorf("message %q, want %q", got.Message, c.message)
			}
			if c.checkMessage != "" && !strings.Contains(got.Checks[0].Message, c.checkMessage) {
				t.Errorf("first check's message %q, want %q", got.Checks[0].Message, c.checkMessage)
			}
			if c.oldSince != nil && (got.OldSince == nil || !got.OldSince.Time.Equal(*c.oldSince)) {
				t.Errorf("oldSince %v, want %s", got.OldSince, c.oldSince)
			}
			if got.State != api.ComponentServesOld && got.OldSince != nil {
				t.Errorf("oldSince %s outside ServesOld", got.OldSince)
			}
		})
	}
}

func TestDecideStatus(t *testing.T) {
	files := []api.NodeCertificateFile{
		file("apiserver", "/etc/kubernetes/pki/apiserver.crt", fpNew, t0),
		file("ca", "/etc/kubernetes/pki/ca.crt", fpOther, t0),
	}
	files[1].NotAfter = metav1.NewTime(t0.Add(48 * time.Hour))
	old := Observed{Component: Component{Name: KubeAPIServer, Uses: []Use{{Path: "/etc/kubernetes/pki/apiserver.crt", Use: api.UseServing, Endpoint: "a:1"}}},
		Running: true, Probes: []ProbeResult{{Served: fpOld}}}
	cases := map[string]struct {
		in                 Input
		ready              metav1.ConditionStatus
		reason             string
		servingOld, nFiles int32
	}{
		"is ready and counts what serves old when the folder was read": {
			in:    Input{Now: t0, KubeadmFound: true, KubeadmDir: "/etc/kubernetes", Files: files, Components: []Observed{old}},
			ready: metav1.ConditionTrue, reason: api.ReasonScanned, servingOld: 1, nFiles: 2,
		},
		"is not ready without a kubeadm folder": {
			in:    Input{Now: t0, KubeadmDir: "/etc/kubernetes"},
			ready: metav1.ConditionFalse, reason: api.ReasonNoKubeadmFolder,
		},
		"is not ready when a file could not be read": {
			in:    Input{Now: t0, KubeadmFound: true, Files: files, Problems: []api.NodeProblem{{Path: "/etc/kubernetes/pki/apiserver.crt", Message: "permission denied"}}},
			ready: metav1.ConditionFalse, reason: api.ReasonScanIncomplete, nFiles: 2,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			st := Decide(c.in)
			if st.FileCount != c.nFiles || st.ComponentsServingOld != c.servingOld {
				t.Errorf("fileCount %d componentsServingOld %d, want %d %d", st.FileCount, st.ComponentsServingOld, c.nFiles, c.servingOld)
			}
			if len(st.Conditions) != 1 || st.Conditions[0].Status != c.ready || st.Conditions[0].Reason != c.reason {
				t.Errorf("conditions %+v, want Ready %s %s", st.Conditions, c.ready, c.reason)
			}
			if st.ObservedAt == nil || !st.ObservedAt.Time.Equal(t0) {
				t.Errorf("observedAt %v", st.ObservedAt)
			}
			if c.nFiles > 0 && (st.SoonestExpiry == nil || !st.SoonestExpiry.Time.Equal(t0.Add(48*time.Hour))) {
				t.Errorf("soonestExpiry %v, want ca's notAfter", st.SoonestExpiry)
			}
		})
	}

	// A condition that did not change keeps its transition time; the status compares equal but for
	// observedAt, so the publisher does not rewrite it.
	first := Decide(Input{Now: t0, KubeadmFound: true, Files: files})
	second := Decide(Input{Now: t0.Add(time.Minute), KubeadmFound: true, Files: files, PrevConditions: first.Conditions})
	if !second.Conditions[0].LastTransitionTime.Time.Equal(t0) {
		t.Errorf("lastTransitionTime moved to %s", second.Conditions[0].LastTransitionTime)
	}
	if !SameStatus(first, second) {
		t.Error("two scans that saw the same differ")
	}
	if SameStatus(first, Decide(Input{Now: t0, KubeadmFound: true, Files: files[:1]})) {
		t.Error("a file less compares equal")
	}
}

func TestSince(t *testing.T) {
	mtime := t0.Add(-time.Hour).Add(700 * time.Millisecond)
	scanned := func(fp string) []ScannedFile {
		return []ScannedFile{{File: api.NodeCertificateFile{Name: "apiserver", Path: "/p", Fingerprint: fp}, ModTime: mtime}}
	}
	prev := []api.NodeCertificateFile{{Name: "apiserver", Path: "/p", Fingerprint: fpOld, Since: metav1.NewTime(t0.Add(-24 * time.Hour))}}
	cases := map[string]struct {
		files []ScannedFile
		prev  []api.NodeCertificateFile
		want  time.Time
	}{
		"is the modification time, in whole seconds, the first time":                                                {scanned(fpOld), nil, t0.Add(-time.Hour)},
		"keeps the previous since while the fingerprint is the same":                                                {scanned(fpOld), prev, t0.Add(-24 * time.Hour)},
		"is the modification time when the fingerprint changed (a renewal before a reboot the agent sees after it)": {scanned(fpNew), prev, t0.Add(-time.Hour)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := Since(c.files, c.prev, t0.Add(-2*time.Hour), t0)
			if !got[0].Since.Time.Equal(c.want) {
				t.Errorf("since %s, want %s", got[0].Since, c.want)
			}
		})
	}
	// A changed fingerprint changed after the previous scan and by now, whatever the modification time
	// says (a file restored with cp -p keeps an old one; a clock ahead gives a future one).
	if got := Since(scanned(fpNew), prev, t0.Add(-30*time.Minute), t0); !got[0].Since.Time.Equal(t0.Add(-30 * time.Minute)) {
		t.Errorf("an old modification time: since %s, want the previous scan %s", got[0].Since, t0.Add(-30*time.Minute))
	}
	future := []ScannedFile{{File: api.NodeCertificateFile{Name: "apiserver", Path: "/p", Fingerprint: fpNew}, ModTime: t0.Add(time.Hour)}}
	if got := Since(future, prev, t0.Add(-2*time.Hour), t0); !got[0].Since.Time.Equal(t0) {
		t.Errorf("a future modification time: since %s, want now %s", got[0].Since, t0)
	}
}

func TestDecideKeepsTheListsWithinTheAPIsBounds(t *testing.T) {
	var in Input
	in.Now, in.KubeadmFound = t0, true
	for range 130 {
		in.Files = append(in.Files, file("etcd/x", "/etc/ssl/etcd/x", fpNew, t0))
	}
	for range 70 {
		in.Problems = append(in.Problems, api.NodeProblem{Path: "/p", Message: "unreadable"})
	}
	st := Decide(in)
	if len(st.Files) != maxFiles || st.FileCount != maxFiles || len(st.Problems) != maxProblems {
		t.Errorf("files %d fileCount %d problems %d", len(st.Files), st.FileCount, len(st.Problems))
	}
	if last := st.Problems[maxProblems-1].Message; !strings.Contains(last, "more problems, left out") {
		t.Errorf("last problem %q", last)
	}
}
