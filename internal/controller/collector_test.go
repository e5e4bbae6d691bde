package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/testgen"
)

func TestTheExpiryCollectorReportsEachKeysEarliestCertificate(t *testing.T) {
	ca := testgen.CA(t, "root", testgen.WithValidity(time.Unix(1_700_000_000, 0), time.Unix(1_900_000_000, 0)))
	leaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(time.Unix(1_700_000_000, 0), time.Unix(1_800_000_000, 0)))
	secret := inventory.ReduceSecret(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "api-tls"},
		Data:       map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(t)},
	})
	helm := inventory.ReduceSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "helm"}, Data: map[string][]byte{"release": []byte("x")}})
	bundle := inventory.ReduceConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bundle"}, Data: map[string]string{"ca.crt": string(ca.PEM())}})
	c := &certificateCollector{}
	c.use(fake.NewClientBuilder().WithObjects(secret, helm, bundle).Build())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP certrollout_certificate_expiry_timestamp_seconds When the earliest-expiring certificate under a key of a Secret or ConfigMap expires (Unix time).
# TYPE certrollout_certificate_expiry_timestamp_seconds gauge
certrollout_certificate_expiry_timestamp_seconds{issuer="CN=root",key="ca.crt",kind="ConfigMap",name="bundle",namespace="app",subject="CN=root"} 1.9e+09
certrollout_certificate_expiry_timestamp_seconds{issuer="CN=root",key="tls.crt",kind="Secret",name="api-tls",namespace="app",subject="CN=api"} 1.8e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestWorkloadGaugesReportSetStateAndForgetDeletedWorkloads(t *testing.T) {
	g := &workloadGauges{state: map[workloadKey]workloadState{}}
	g.set(workloadKey{"app", "Deployment", "web"}, workloadState{stalePods: 3, notAfter: 1_800_000_000})
	g.set(workloadKey{"app", "StatefulSet", "db"}, workloadState{stalePods: 0, notAfter: 1_900_000_000})
	g.set(workloadKey{"app", "Deployment", "web"}, workloadState{stalePods: 0, notAfter: 1_850_000_000})
	g.set(workloadKey{"app", "DaemonSet", "gone"}, workloadState{stalePods: 1, notAfter: 1})
	g.forget(workloadKey{"app", "DaemonSet", "gone"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	want := `
# HELP certrollout_workload_certificate_expiry_timestamp_seconds When the earliest-expiring certificate a workload's pods run on expires (Unix time).
# TYPE certrollout_workload_certificate_expiry_timestamp_seconds gauge
certrollout_workload_certificate_expiry_timestamp_seconds{kind="Deployment",name="web",namespace="app"} 1.85e+09
certrollout_workload_certificate_expiry_timestamp_seconds{kind="StatefulSet",name="db",namespace="app"} 1.9e+09
# HELP certrollout_workload_stale_pods Pods of a workload that started before the certificates they use were issued.
# TYPE certrollout_workload_stale_pods gauge
certrollout_workload_stale_pods{kind="Deployment",name="web",namespace="app"} 0
certrollout_workload_stale_pods{kind="StatefulSet",name="db",namespace="app"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
