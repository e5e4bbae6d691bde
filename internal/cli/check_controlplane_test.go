package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/disk"
	"github.com/certrollout/certrollout/internal/htmlreport"
	"github.com/certrollout/certrollout/internal/htmlreport/htmltest"
	"github.com/certrollout/certrollout/internal/kubeadmtest"
)

// nodeCertsOption adjusts a NodeCertificates made by nodeCertificatesFrom.
type nodeCertsOption func(*api.NodeCertificates)

// componentState puts a component, and every check of it, in state (ServesOld with oldSince).
func componentState(name, state string, oldSince time.Time) nodeCertsOption {
	return func(nc *api.NodeCertificates) {
		for i := range nc.Status.Components {
			c := &nc.Status.Components[i]
			if c.Name != name {
				continue
			}
			c.State = state
			c.Message = map[string]string{
				api.ComponentServesOld:   "serves a certificate other than the file's: restart it",
				api.ComponentNotRunning:  "its manifest is there but no container of it runs",
				api.ComponentUnreachable: "its TLS endpoint did not answer",
			}[state]
			if state == api.ComponentServesOld {
				c.OldSince = &metav1.Time{Time: oldSince}
				nc.Status.ComponentsServingOld++
			}
			for j := range c.Checks {
				c.Checks[j].State = state
			}
		}
	}
}

// nodeCertificatesFrom is what the node agent would write for a node whose /etc/kubernetes is dir: the
// files as check --kubeadm reads them (with host paths under /etc/kubernetes), and kubeadm's components
// using them, all Current and started an hour before observed, unless opts say otherwise. The real agent is
// internal/nodeagent; this builder only gives the read side objects of the same shape.
func nodeCertificatesFrom(t *testing.T, node, dir string, observed time.Time, opts ...nodeCertsOption) *api.NodeCertificates {
	t.Helper()
	s := kubeadmItems(dir, disk.Kubeadm(dir))
	if len(s.items) == 0 {
		t.Fatalf("no kubeadm files in %s", dir)
	}
	nc := &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: node}}
	st := &nc.Status
	st.ObservedAt = &metav1.Time{Time: observed}
	st.AgentVersion = "v0.0.0-test"
	st.KubeadmDir = disk.DefaultKubeadmDir
	for _, it := range s.items {
		if strings.HasPrefix(it.Source.Entry, "cluster/") {
			continue
		}
		rel, err := filepath.Rel(dir, it.Source.Path)
		if err != nil {
			t.Fatal(err)
		}
		f := api.NodeCertificateFile{
			Name: it.Kubeadm.Name, Path: filepath.Join(disk.DefaultKubeadmDir, rel), Set: api.FileSetKubeadm,
			CertificateAuthority: isKubeadmCA(it), Authority: it.Kubeadm.CertificateAuthority, ExternallyManaged: it.Kubeadm.ExternallyManaged,
			RenewedBy: api.RenewedByKubeadm, Subject: it.Certificate.Subject, Issuer: it.Certificate.Issuer,
			NotBefore: metav1.Time{Time: it.Certificate.NotBefore}, NotAfter: metav1.Time{Time: it.Certificate.NotAfter},
			Fingerprint: it.Certificate.Fingerprint, Since: metav1.Time{Time: observed.Add(-2 * time.Hour)},
		}
		switch {
		case f.Name == "kubelet.conf":
			f.Name, f.Set, f.RenewedBy = "kubelet-client", api.FileSetKubelet, api.RenewedByKubelet
		case f.ExternallyManaged:
			f.RenewedBy = api.RenewedByExternal
		}
		if st.SoonestExpiry == nil || f.NotAfter.Before(st.SoonestExpiry) {
			st.SoonestExpiry = &metav1.Time{Time: f.NotAfter.Time}
		}
		st.Files = append(st.Files, f)
	}
	st.FileCount = int32(len(st.Files)) //nolint:gosec // at most 128
	started := metav1.Time{Time: observed.Add(-time.Hour)}
	component := func(name string, uses ...string) api.ControlPlaneComponent {
		c := api.ControlPlaneComponent{Name: name, State: api.ComponentCurrent, StartedAt: &started,
			Manifest: "/etc/kubernetes/manifests/" + name + ".yaml"}
		for _, u := range uses {
			use, file, _ := strings.Cut(u, ":")
			c.Checks = append(c.Checks, api.ComponentCheck{File: file, Use: use, State: api.ComponentCurrent})
		}
		return c
	}
	st.Components = []api.ControlPlaneComponent{
		component("etcd", "Serving:etcd-server", "Serving:etcd-peer"),
		component("kube-apiserver", "Serving:apiserver", "Client:apiserver-etcd-client", "Client:apiserver-kubelet-client", "Client:front-proxy-client"),
		component("kube-controller-manager", "Client:controller-manager.conf"),
		component("kube-scheduler", "Client:scheduler.conf"),
	}
	st.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: api.ReasonScanned, LastTransitionTime: metav1.Time{Time: observed}}}
	for _, o := range opts {
		o(nc)
	}
	return nc
}

// controlPlaneFixture is three control-plane nodes over the committed kubeadm fixture: cp-1 whose
// kube-apiserver still serves the old apiserver certificate and whose etcd is not running, cp-2 whose agent
// last reported two hours ago, and cp-3 without a report.
func controlPlaneFixture(t *testing.T) *checkResult {
	t.Helper()
	fixtures(t)
	dir := filepath.Join("testdata", "kubeadm")
	cp1 := nodeCertificatesFrom(t, "cp-1", dir, checkNow.Add(-time.Minute),
		componentState("kube-apiserver", api.ComponentServesOld, checkNow.Add(-72*time.Hour)),
		componentState("etcd", api.ComponentNotRunning, time.Time{}))
	cp2 := nodeCertificatesFrom(t, "cp-2", dir, checkNow.Add(-2*time.Hour))
	return &checkResult{now: checkNow, controlPlane: buildControlPlaneSection([]api.NodeCertificates{*cp2, *cp1}, []string{"cp-1", "cp-2", "cp-3"}, nil, checkNow)}
}

func TestCheckControlPlaneGolden(t *testing.T) {
	for _, output := range []string{OutputTable, OutputWide, OutputJSON} {
		t.Run(output, func(t *testing.T) {
			r := controlPlaneFixture(t)
			var out bytes.Buffer
			o := &CheckOptions{OutputFlag: OutputFlag{Output: output}, IOStreams: IOStreams{Out: &out, ErrOut: &out}}
			rep := r.report(o)
			var err error
			if output != OutputJSON {
				err = o.printTables(r)
			} else {
				err = o.printDocument(&out, rep)
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "check-controlplane-"+output, out.String())
		})
	}
}

func TestCheckControlPlaneVerdict(t *testing.T) {
	cases := map[string]struct {
		warn       time.Duration
		status     string
		reasonPart string
	}{
		"a component on the old certificate is a warning and says what to restart": {
			status: SeverityWarning, reasonPart: "WARNING: apiserver on node cp-1 (/etc/kubernetes/pki/apiserver.crt) was renewed, but kube-apiserver on cp-1 still runs on the old certificate (since 3d): restart kube-apiserver on cp-1",
		},
		"an expiry within --warn is named before the component": {
			warn: 30 * 24 * time.Hour, status: SeverityWarning, reasonPart: "WARNING: etcd-server on node cp-1 (/etc/kubernetes/pki/etcd/server.crt) expires in 14d",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rep := controlPlaneFixture(t).report(&CheckOptions{warn: tc.warn, Warn: "30d"})
			if rep.Status != tc.status || !strings.Contains(rep.Reason, tc.reasonPart) {
				t.Errorf("status %s, reason %q; want %s containing %q", rep.Status, rep.Reason, tc.status, tc.reasonPart)
			}
		})
	}
	t.Run("a stale or missing report alone is a warning", func(t *testing.T) {
		dir := filepath.Join("testdata", "kubeadm")
		fixtures(t)
		cp2 := nodeCertificatesFrom(t, "cp-2", dir, checkNow.Add(-2*time.Hour))
		r := &checkResult{now: checkNow, controlPlane: buildControlPlaneSection([]api.NodeCertificates{*cp2}, []string{"cp-2"}, nil, checkNow)}
		rep := r.report(&CheckOptions{})
		if want := "WARNING: agent on cp-2 last reported 2h ago"; rep.Status != SeverityWarning || !strings.HasPrefix(rep.Reason, want) {
			t.Errorf("status %s, reason %q; want Warning starting %q", rep.Status, rep.Reason, want)
		}
		fresh := nodeCertificatesFrom(t, "cp-2", dir, checkNow.Add(-time.Minute))
		r = &checkResult{now: checkNow, controlPlane: buildControlPlaneSection([]api.NodeCertificates{*fresh}, []string{"cp-2"}, nil, checkNow)}
		if rep := r.report(&CheckOptions{}); rep.Status != SeverityOK {
			t.Errorf("a fresh report with every component current: status %s (%s), want OK", rep.Status, rep.Reason)
		}
	})
}

// TestCheckControlPlaneKubeadmTextIsTheFoldersText: -o kubeadm from a node's report prints what -o kubeadm
// prints for the folder it was made from (which the parity test compares with real kubeadm).
func TestCheckControlPlaneKubeadmTextIsTheFoldersText(t *testing.T) {
	fixtures(t)
	dir := filepath.Join("testdata", "kubeadm")
	want, _, _ := runCheck(t, checkNow, "--kubeadm="+dir, "-o", "kubeadm")
	var got bytes.Buffer
	if err := printKubeadmExpiration(&got, kubeadmExpirationFromNode(nodeCertificatesFrom(t, "cp-1", dir, checkNow)), checkNow); err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Errorf("from the node's report:\n%s\n--- from the folder:\n%s", visible(got.String()), visible(want))
	}
	if !strings.Contains(want, "!MISSING! super-admin.conf") || strings.Contains(want, "kubelet.conf") {
		t.Errorf("kubeadm lists super-admin.conf (missing in the fixture) and never kubelet.conf:\n%s", want)
	}
}

func TestCheckControlPlaneFlags(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"--node without --control-plane":    {[]string{"--kubeadm=testdata/kubeadm", "--node", "cp-1"}, "--node selects control-plane nodes: add --control-plane"},
		"-o kubeadm with two nodes":         {[]string{"--control-plane", "--node", "cp-1,cp-2", "-o", "kubeadm"}, "-o kubeadm prints one node, as kubeadm does, and --node names 2 (cp-1, cp-2)"},
		"-o kubeadm with --files":           {[]string{"--kubeadm=testdata/kubeadm", "--files", "testdata/files", "-o", "kubeadm"}, "-o kubeadm prints what 'kubeadm certs check-expiration' prints for one control plane"},
		"-o kubeadm on the cluster":         {[]string{"-o", "kubeadm"}, "use it with --kubeadm [DIR] or with --control-plane --node NAME"},
		"-n with --control-plane":           {[]string{"--control-plane", "-n", "x"}, "--namespace selects what to read from the cluster"},
		"-o kubeadm with both control sets": {[]string{"--kubeadm=testdata/kubeadm", "--control-plane", "-o", "kubeadm"}, "use it with --kubeadm [DIR] or with --control-plane --node NAME"},
	}
	kubeconfig := closedKubeconfig(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := runCheck(t, checkNow, append(tc.args, "--kubeconfig", kubeconfig)...)
			if code != checkExitUnknown || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d (want %d), stderr should contain %q:\n%s", code, checkExitUnknown, tc.want, stderr)
			}
		})
	}
}

// TestCheckControlPlaneOnACluster writes NodeCertificates made from a real kubeadm folder to the test
// cluster and reads them back with check --control-plane.
func TestCheckControlPlaneOnACluster(t *testing.T) {
	kubeadm := kubeadmtest.Binary(t)
	clustertest.InstallCRDs(t)
	cl := clustertest.Cluster(t)
	c, err := client.New(cl.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b) // NodeCertificates and Nodes are cluster-scoped: names unique per run
	cp1, cp2, cp3 := "cp-1-"+suffix, "cp-2-"+suffix, "cp-3-"+suffix
	n := kubeadmtest.NewNode(t, kubeadm, cp1)
	now := time.Now()
	put := func(nc *api.NodeCertificates) {
		t.Helper()
		status := nc.Status
		if err := c.Create(ctx, nc); err != nil {
			t.Fatal(err)
		}
		nc.Status = status
		if err := c.Status().Update(ctx, nc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), nc) })
	}
	put(nodeCertificatesFrom(t, cp1, n.Dir, now.Add(-time.Minute), componentState("kube-apiserver", api.ComponentServesOld, now.Add(-72*time.Hour))))
	put(nodeCertificatesFrom(t, cp2, n.Dir, now.Add(-2*time.Hour)))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cp3, Labels: map[string]string{controlPlaneLabel: ""}}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), node) })
	kc := cl.Kubeconfig

	t.Run("the table names each node, the old certificate and the nodes without a recent report", func(t *testing.T) {
		out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane")
		if code != checkExitWarning {
			t.Errorf("exit %d, want %d (a component on an old certificate)\n%s", code, checkExitWarning, stderr)
		}
		for _, want := range []string{
			"NODE", "SERVING",
			cp1 + " ", "old certificate since 3d (kube-apiserver)",
			"CERTIFICATE AUTHORITY",
			"COMPONENT", "ServesOld",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		for _, want := range []string{
			"Warning: agent on " + cp2 + " last reported 2h ago",
			"Warning: no agent report from " + cp3 + ": is the node agent installed (chart nodeAgent.enabled)",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("JSON has the items by node, the serving state and the nodes' reports", func(t *testing.T) {
		out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane", "--node", cp1+","+cp3, "-o", "json", "--warn", "400d")
		if code != checkExitWarning {
			t.Errorf("exit %d, want %d\n%s", code, checkExitWarning, stderr)
		}
		var rep CheckReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var apiserver *CheckItem
		for i, it := range rep.Items {
			if it.Source.Kind != checkKindControlPlane || it.Source.Node != cp1 {
				t.Errorf("item from elsewhere: %+v", it.Source)
			}
			if it.Source.Name == "apiserver" {
				apiserver = &rep.Items[i]
			}
		}
		if apiserver == nil || apiserver.ControlPlane == nil || len(apiserver.ControlPlane.Serving) == 0 || apiserver.ControlPlane.Serving[0].State != api.ComponentServesOld {
			t.Fatalf("apiserver item without its ServesOld serving state: %+v", apiserver)
		}
		if apiserver.Severity != SeverityWarning {
			t.Errorf("apiserver severity %s, want Warning (within --warn 400d)", apiserver.Severity)
		}
		reports := map[string]string{}
		for _, nd := range rep.Nodes {
			reports[nd.Name] = nd.Report
		}
		if reports[cp1] != NodeReportCurrent || reports[cp3] != NodeReportMissing || len(reports) != 2 {
			t.Errorf("node reports %v, want %s Current and %s Missing only", reports, cp1, cp3)
		}
	})

	t.Run("exit 2 within --critical", func(t *testing.T) {
		_, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane", "--node", cp2, "--critical", "400d")
		if code != checkExitCritical || !strings.Contains(stderr, "CRITICAL: ") || !strings.Contains(stderr, "on node "+cp2) {
			t.Errorf("exit %d, want %d naming a file on %s:\n%s", code, checkExitCritical, cp2, stderr)
		}
	})

	t.Run("-o kubeadm for one node is kubeadm's text for its folder", func(t *testing.T) {
		sameAsKubeadm(t, n, func(t *testing.T) string {
			out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane", "--node", cp1, "-o", "kubeadm")
			if code == checkExitUnknown {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			return out
		})
	})

	t.Run("with --include-cluster the namespace's Secrets are read as well", func(t *testing.T) {
		ns := clustertest.Namespace(t)
		out, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane", "--node", cp2, "--include-cluster", "-n", ns)
		if code != checkExitWarning {
			t.Errorf("exit %d, want %d (cp-2's stale report)\n%s", code, checkExitWarning, stderr)
		}
		// A fresh namespace holds the kube-root-ca.crt ConfigMap: the cluster table lists it.
		if !strings.Contains(out, cp2+" ") || !strings.Contains(out, "configmap/kube-root-ca.crt") {
			t.Errorf("want cp-2's tables and the namespace's ConfigMap:\n%s\n%s", out, stderr)
		}
	})

	t.Run("-o kubeadm refuses several nodes", func(t *testing.T) {
		_, stderr, code := runCheck(t, time.Now(), "--kubeconfig", kc, "--control-plane", "-o", "kubeadm")
		if code != checkExitUnknown || !strings.Contains(stderr, "pick one with --node NAME") {
			t.Errorf("exit %d, want %d asking for --node:\n%s", code, checkExitUnknown, stderr)
		}
	})
}

func TestCheckPageHasASectionPerControlPlaneNode(t *testing.T) {
	r := controlPlaneFixture(t)
	rep := r.report(&CheckOptions{})
	var b bytes.Buffer
	if err := htmlreport.Render(&b, checkPage(rep, nil, "", nil)); err != nil {
		t.Fatal(err)
	}
	doc := htmltest.Parse(t, b.String())
	sections := map[string]*html.Node{}
	for _, s := range htmltest.All(doc, "section") {
		sections[htmltest.Attr(s, "id")] = s
	}
	for _, id := range []string{"control-plane-node-cp-1", "control-plane-node-cp-2", "control-plane-node-cp-3"} {
		if sections[id] == nil {
			t.Fatalf("no section %q (have %v)", id, slices.Collect(maps.Keys(sections)))
		}
	}
	if _, ok := sections["cluster-certificates"]; ok {
		t.Error("--control-plane alone read no Secrets: the page has no cluster section")
	}
	apiserver := rowByText(t, htmltest.All(sections["control-plane-node-cp-1"], "tr"), "/etc/kubernetes/pki/apiserver.crt")
	if bad := htmltest.All(apiserver, "span", "bad"); len(bad) != 1 || htmltest.Text(bad[0]) != "old certificate since 3d (kube-apiserver)" {
		t.Errorf("cp-1's apiserver row marks the old certificate: %q", htmltest.Text(apiserver))
	}
	if !htmltest.HasClass(apiserver, string(htmlreport.ClassOK)) {
		t.Errorf("apiserver expires in 36d: class %q", htmltest.Attr(apiserver, "class"))
	}
	if s := htmltest.Text(sections["control-plane-node-cp-2"]); !strings.Contains(s, "agent on cp-2 last reported 2h ago") {
		t.Errorf("cp-2's section says its report is stale: %q", s)
	}
	if s := htmltest.Text(sections["control-plane-node-cp-3"]); !strings.Contains(s, "No agent report from this node") {
		t.Errorf("cp-3's section says there is no report: %q", s)
	}
	if rows := htmltest.All(doc, "g", "tl-row"); len(rows) < 20 {
		t.Errorf("the timeline draws every node's files: %d rows", len(rows))
	}
}

func TestCheckExplainsNodeCertificatesNotServed(t *testing.T) {
	o := &CheckOptions{}
	for name, err := range map[string]error{
		"no such kind (CRDs absent or older than NodeCertificates)": &apimeta.NoKindMatchError{GroupKind: schema.GroupKind{Group: api.GroupVersion.Group, Kind: "NodeCertificates"}},
		"the resource not served": &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
			Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{Group: api.GroupVersion.Group, Kind: "nodecertificates"}}},
	} {
		t.Run(name, func(t *testing.T) {
			got := o.explainNodeCertificates(err)
			if !errors.Is(got, ErrCRDsMissing) || !strings.Contains(got.Error(), "does not serve NodeCertificates") || !strings.Contains(got.Error(), "kubectl apply -k config/crd") {
				t.Errorf("got %v, want ErrCRDsMissing saying what to install", got)
			}
		})
	}
}

// TestCheckControlPlaneHTMLInABrowser renders the control-plane sections in headless Chromium, as
// TestCheckHTMLInABrowser does for the cluster's.
func TestCheckControlPlaneHTMLInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium (skipped with -short)")
	}
	rep := controlPlaneFixture(t).report(&CheckOptions{})
	var b bytes.Buffer
	if err := htmlreport.Render(&b, checkPage(rep, nil, "", nil)); err != nil {
		t.Fatal(err)
	}
	dom := htmltest.Parse(t, string(chromium(t, "--dump-dom", writePage(t, "control-plane.html", b.String()))))
	ids := map[string]bool{}
	for _, s := range htmltest.All(dom, "section") {
		ids[htmltest.Attr(s, "id")] = true
	}
	for _, id := range []string{"control-plane-node-cp-1", "control-plane-node-cp-2", "control-plane-node-cp-3"} {
		if !ids[id] {
			t.Errorf("the rendered page has no section %q", id)
		}
	}
	apiserver := rowByText(t, htmltest.All(dom, "tr"), "/etc/kubernetes/pki/apiserver.crt")
	if len(htmltest.All(apiserver, "span", "bad")) != 1 {
		t.Errorf("the old certificate is marked in the rendered row: %q", htmltest.Text(apiserver))
	}
	if rows := htmltest.All(dom, "g", "tl-row"); len(rows) < 20 || !strings.Contains(htmltest.Text(rows[0]), "cp-") {
		t.Errorf("the timeline draws the nodes' files, labelled by node: %d rows", len(rows))
	}
}
