package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// nodeFile is a NodeCertificateFile with what the metrics read.
func nodeFile(name, set string, notAfter time.Time) api.NodeCertificateFile {
	return api.NodeCertificateFile{Name: name, Path: "/etc/kubernetes/pki/" + name + ".crt", Set: set, RenewedBy: api.RenewedByKubeadm,
		Subject: "CN=" + name, NotBefore: metav1.NewTime(notAfter.Add(-365 * 24 * time.Hour)), NotAfter: metav1.NewTime(notAfter),
		Fingerprint: strings.Repeat("ab", 32), Since: metav1.NewTime(notAfter.Add(-365 * 24 * time.Hour))}
}

// collectedNode is collectNode's output in the text format.
func collectedNode(t *testing.T, nc *api.NodeCertificates) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(collectorFunc(func(ch chan<- prometheus.Metric) { collectNode(ch, nc) })); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("the registry refuses the node's series: %v", err)
	}
	var b strings.Builder
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			fmt.Fprintf(&b, "%s{%s} %g\n", f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue())
		}
	}
	return b.String()
}

// collectorFunc is an unchecked collector (no Describe), for the pedantic registry to check what is collected.
type collectorFunc func(chan<- prometheus.Metric)

func (collectorFunc) Describe(chan<- *prometheus.Desc)      {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestANodesSeriesAreOnePerFileAndComponentWithTheEarliestExpiryAndServesOldWinning(t *testing.T) {
	soon, later := time.Unix(1_800_000_000, 0), time.Unix(1_900_000_000, 0)
	observed := metav1.NewTime(time.Unix(1_700_000_000, 0))
	for name, tc := range map[string]struct {
		status api.NodeCertificatesStatus
		want   string
	}{
		"a scanned node": {api.NodeCertificatesStatus{
			ObservedAt: &observed,
			Files:      []api.NodeCertificateFile{nodeFile("apiserver", api.FileSetKubeadm, soon), nodeFile("kubelet-client", api.FileSetKubelet, later)},
			Components: []api.ControlPlaneComponent{{Name: "kube-apiserver", State: api.ComponentServesOld}, {Name: "etcd", State: api.ComponentCurrent}, {Name: "kube-scheduler", State: api.ComponentNotRunning}},
		}, `certrollout_control_plane_certificate_expiry_timestamp_seconds{certificate=apiserver,node=cp-1,set=kubeadm} 1.8e+09
certrollout_control_plane_certificate_expiry_timestamp_seconds{certificate=kubelet-client,node=cp-1,set=kubelet} 1.9e+09
certrollout_control_plane_component_serving_old{component=etcd,node=cp-1} 0
certrollout_control_plane_component_serving_old{component=kube-apiserver,node=cp-1} 1
certrollout_control_plane_component_serving_old{component=kube-scheduler,node=cp-1} 0
certrollout_node_agent_last_report_timestamp_seconds{node=cp-1} 1.7e+09
`},
		"a file and a component twice (which the agent never writes) count once, with the earliest expiry and ServesOld": {api.NodeCertificatesStatus{
			Files:      []api.NodeCertificateFile{nodeFile("ca", api.FileSetKubeadm, later), nodeFile("ca", api.FileSetKubeadm, soon)},
			Components: []api.ControlPlaneComponent{{Name: "etcd", State: api.ComponentCurrent}, {Name: "etcd", State: api.ComponentServesOld}},
		}, `certrollout_control_plane_certificate_expiry_timestamp_seconds{certificate=ca,node=cp-1,set=kubeadm} 1.8e+09
certrollout_control_plane_component_serving_old{component=etcd,node=cp-1} 1
`},
		"a NodeCertificates the agent has not written yet has no series": {api.NodeCertificatesStatus{}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			nc := &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: "cp-1"}, Status: tc.status}
			if got := collectedNode(t, nc); got != tc.want {
				t.Errorf("series:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestControlPlaneSeriesAreLintClean(t *testing.T) {
	problems, err := testutil.CollectAndLint(collectorFunc(func(ch chan<- prometheus.Metric) {
		collectNode(ch, &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: "cp-1"}, Status: api.NodeCertificatesStatus{
			ObservedAt: &metav1.Time{Time: time.Unix(1, 0)},
			Files:      []api.NodeCertificateFile{nodeFile("apiserver", api.FileSetKubeadm, time.Unix(2, 0))},
			Components: []api.ControlPlaneComponent{{Name: "etcd", State: api.ComponentCurrent}},
		}})
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("promlint: %v", problems)
	}
}

// The cluster-wide controller reports the NodeCertificates in the cluster from its cache: each change of
// the agent's status shows at the next scrape, and a deleted NodeCertificates takes its series with it.
func TestTheClusterWideControllerReportsNodeCertificatesFromItsCache(t *testing.T) {
	e := newEnv(t, testOptions())
	e.opts.Namespaces = nil // NodeCertificates are cluster-scoped: only the cluster-wide controller reads them
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(e.c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e.start()

	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	node := "cp-metrics-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	nc := &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := cl.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Delete(context.Background(), &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: node}})
	})
	now := time.Now().Truncate(time.Second)
	observed := metav1.NewTime(now)
	apiserverExpiry, caExpiry := now.Add(20*24*time.Hour), now.Add(3650*24*time.Hour)
	nc.Status = api.NodeCertificatesStatus{
		ObservedAt: &observed,
		Files:      []api.NodeCertificateFile{nodeFile("apiserver", api.FileSetKubeadm, apiserverExpiry), nodeFile("ca", api.FileSetKubeadm, caExpiry)},
		FileCount:  2,
		Components: []api.ControlPlaneComponent{
			{Name: "kube-apiserver", State: api.ComponentServesOld, Message: "serves an older certificate"},
			{Name: "etcd", State: api.ComponentCurrent},
		},
		ComponentsServingOld: 1,
	}
	if err := cl.Status().Update(ctx, nc); err != nil {
		t.Fatal(err)
	}
	waitSample(t, "certrollout_control_plane_certificate_expiry_timestamp_seconds", map[string]string{"node": node, "certificate": "apiserver", "set": "kubeadm"}, float64(apiserverExpiry.Unix()))
	waitSample(t, "certrollout_control_plane_certificate_expiry_timestamp_seconds", map[string]string{"node": node, "certificate": "ca", "set": "kubeadm"}, float64(caExpiry.Unix()))
	waitSample(t, "certrollout_control_plane_component_serving_old", map[string]string{"node": node, "component": "kube-apiserver"}, 1)
	waitSample(t, "certrollout_control_plane_component_serving_old", map[string]string{"node": node, "component": "etcd"}, 0)
	waitSample(t, "certrollout_node_agent_last_report_timestamp_seconds", map[string]string{"node": node}, float64(now.Unix()))
	if _, ok := sample(t, "certrollout_control_plane_component_serving_old", map[string]string{"node": node, "component": "kube-scheduler"}); ok {
		t.Error("a component the agent did not report has a series")
	}

	// The agent renews and restarts: the next scan's status is the next scrape's series.
	renewed := now.Add(365 * 24 * time.Hour)
	later := metav1.NewTime(now.Add(time.Minute))
	nc.Status.ObservedAt = &later
	nc.Status.Files[0] = nodeFile("apiserver", api.FileSetKubeadm, renewed)
	nc.Status.Components[0].State = api.ComponentCurrent
	nc.Status.ComponentsServingOld = 0
	if err := cl.Status().Update(ctx, nc); err != nil {
		t.Fatal(err)
	}
	waitSample(t, "certrollout_control_plane_certificate_expiry_timestamp_seconds", map[string]string{"node": node, "certificate": "apiserver", "set": "kubeadm"}, float64(renewed.Unix()))
	waitSample(t, "certrollout_control_plane_component_serving_old", map[string]string{"node": node, "component": "kube-apiserver"}, 0)
	waitSample(t, "certrollout_node_agent_last_report_timestamp_seconds", map[string]string{"node": node}, float64(later.Unix()))

	if err := cl.Delete(ctx, nc); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the deleted node's series to go", func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Name: node}, &api.NodeCertificates{}); !apierrors.IsNotFound(err) {
			return false, errors.Join(errors.New("still there"), err)
		}
		for _, name := range []string{"certrollout_control_plane_certificate_expiry_timestamp_seconds", "certrollout_control_plane_component_serving_old", "certrollout_node_agent_last_report_timestamp_seconds"} {
			if _, ok := sample(t, name, map[string]string{"node": node}); ok {
				return false, fmt.Errorf("%s is still there", name)
			}
		}
		return true, nil
	})
}
