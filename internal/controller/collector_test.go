package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// testPods is a pod cache of one unstarted informer whose store the test fills by hand.
func testPods(t *testing.T, pods ...*cachedPod) (*podCache, toolscache.Indexer) {
	t.Helper()
	inf := toolscache.NewSharedIndexInformerWithOptions(&toolscache.ListWatch{}, &corev1.Pod{}, toolscache.SharedIndexInformerOptions{
		Indexers: toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, podUsesIndex: indexPodUses, podLabelIndex: indexPodLabels},
	})
	for _, p := range pods {
		if err := inf.GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return &podCache{informers: map[string]toolscache.SharedIndexInformer{"": inf}}, inf.GetIndexer()
}

func testPod(name string, started time.Time, ready bool) *cachedPod {
	return &cachedPod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		podLabels:  newPodLabels(map[string]string{"app": "web"}),
		Started:    started, Ready: ready,
	}
}

func TestStalePodsAreCountedFromThePodsThatExistAtEachScrape(t *testing.T) {
	issued := time.Unix(1_800_000_000, 0)
	old1, old2 := testPod("web-old-1", issued.Add(-time.Hour), true), testPod("web-old-2", issued.Add(-time.Hour), true)
	pods, store := testPods(t, old1, old2, testPod("web-new", issued.Add(time.Minute), true))
	g := newWorkloadGauges()
	k := workloadKey{"app", "Deployment", "web"}
	// After the restart: the ledger records the new set, the pods that predate it are still there.
	g.set(k, workloadState{
		pods:     podMatcher{cache: pods, selectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"app": "web"})}},
		issuedAt: issued, hash: "new", current: 1_900_000_000, older: 1_800_100_000,
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	scrape := func(want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "certrollout_workload_stale_pods", "certrollout_workload_running_certificate_expiry_timestamp_seconds"); err != nil {
			t.Fatal(err)
		}
	}
	scrape(stalePodsHelp + `certrollout_workload_stale_pods{kind="Deployment",name="web",namespace="app"} 2
` + runningHelp + `certrollout_workload_running_certificate_expiry_timestamp_seconds{kind="Deployment",name="web",namespace="app"} 1.8001e+09
`)
	// Nothing reconciles the workload when its old pods go: the count follows the pods anyway.
	if err := store.Delete(old1); err != nil {
		t.Fatal(err)
	}
	gone := old2.DeepCopyObject().(*cachedPod)
	gone.Finished = true
	if err := store.Update(gone); err != nil {
		t.Fatal(err)
	}
	scrape(stalePodsHelp + `certrollout_workload_stale_pods{kind="Deployment",name="web",namespace="app"} 0
` + runningHelp + `certrollout_workload_running_certificate_expiry_timestamp_seconds{kind="Deployment",name="web",namespace="app"} 1.9e+09
`)
}

const (
	stalePodsHelp = `# HELP certrollout_workload_stale_pods Pods of a workload that exist now and run on old certificates, counted when scraped: they started before the certificates they use were issued, or a probe after its restart saw them serve an old one.
# TYPE certrollout_workload_stale_pods gauge
`
	runningHelp = `# HELP certrollout_workload_running_certificate_expiry_timestamp_seconds When the earliest-expiring certificate a workload's pods actually run on expires (Unix time): the older set while any pod predates the current one.
# TYPE certrollout_workload_running_certificate_expiry_timestamp_seconds gauge
`
)

func TestARestartIsTimedUntilEveryPodIsNewAndReady(t *testing.T) {
	restarted := time.Unix(1_800_000_000, 500_000_000)
	old := testPod("web-old", restarted.Add(-time.Hour), true)
	pods, store := testPods(t, old)
	g := newWorkloadGauges()
	k := workloadKey{"app", "Deployment", "web"}
	g.set(k, workloadState{pods: podMatcher{cache: pods, selectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"app": "web"})}}, hash: "h"})
	g.restarted(k, restarted)
	count := func() uint64 {
		var m dto.Metric
		if err := restartToReady.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	n0 := count()
	// A new pod that started in the restart's second but is not ready yet, and the old pod still there.
	fresh := testPod("web-new", restarted.Truncate(time.Second), false)
	if err := store.Add(fresh); err != nil {
		t.Fatal(err)
	}
	g.settle("app", restarted.Add(10*time.Second))
	if count() != n0 {
		t.Fatal("observed before the old pod went and the new one was ready")
	}
	if err := store.Delete(old); err != nil {
		t.Fatal(err)
	}
	g.settle("app", restarted.Add(20*time.Second))
	if count() != n0 {
		t.Fatal("observed before the new pod was ready")
	}
	ready := fresh.DeepCopyObject().(*cachedPod)
	ready.Ready = true
	if err := store.Update(ready); err != nil {
		t.Fatal(err)
	}
	g.settle("app", restarted.Add(30*time.Second))
	g.settle("app", restarted.Add(40*time.Second)) // observed once
	if got := count(); got != n0+1 {
		t.Fatalf("restart_to_ready observed %d times, want once", got-n0)
	}
}

func TestWorkloadGaugesReportSetStateAndForgetDeletedWorkloads(t *testing.T) {
	g := newWorkloadGauges()
	web, db, gone := workloadKey{"app", "Deployment", "web"}, workloadKey{"app", "StatefulSet", "db"}, workloadKey{"app", "DaemonSet", "gone"}
	g.set(web, workloadState{hash: "a", current: 1_800_000_000})
	g.set(db, workloadState{hash: "d", current: 1_900_000_000, blocked: "OnDeleteStrategy"})
	// The certificates changed and the ledger does not say what the pods run on: the set seen before does.
	g.set(web, workloadState{hash: "b", current: 1_850_000_000})
	g.set(gone, workloadState{hash: "g", current: 1})
	g.forget(gone)
	if got := g.state[web].older; got != 1_800_000_000 {
		t.Errorf("older set of web: %d, want the previous set's 1800000000", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	want := `
# HELP certrollout_workload_certificate_expiry_timestamp_seconds When the earliest-expiring certificate a workload should run on (its current certificates) expires (Unix time).
# TYPE certrollout_workload_certificate_expiry_timestamp_seconds gauge
certrollout_workload_certificate_expiry_timestamp_seconds{kind="Deployment",name="web",namespace="app"} 1.85e+09
certrollout_workload_certificate_expiry_timestamp_seconds{kind="StatefulSet",name="db",namespace="app"} 1.9e+09
# HELP certrollout_workload_restart_blocked 1 while a workload's due restart is blocked, with the reason.
# TYPE certrollout_workload_restart_blocked gauge
certrollout_workload_restart_blocked{kind="StatefulSet",name="db",namespace="app",reason="OnDeleteStrategy"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "certrollout_workload_certificate_expiry_timestamp_seconds", "certrollout_workload_restart_blocked"); err != nil {
		t.Fatal(err)
	}
}

func TestTheExpiryCollectorParsesEachObjectVersionOnce(t *testing.T) {
	ca := testgen.CA(t, "root")
	secret := inventory.ReduceSecret(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "api-tls", UID: "u1"},
		Data:       map[string][]byte{"tls.crt": testgen.Leaf(t, ca, "api").PEM()},
	})
	cl := fake.NewClientBuilder().WithObjects(secret).Build()
	c := &certificateCollector{}
	c.use(cl)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	scrape := func() {
		t.Helper()
		if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
			t.Fatalf("scrape: %d series, %v", n, err)
		}
	}
	scrape()
	scrape()
	scrape()
	if c.parses != 1 {
		t.Fatalf("parsed %d times over three scrapes of one unchanged Secret", c.parses)
	}
	var s corev1.Secret
	if err := cl.Get(context.Background(), client.ObjectKeyFromObject(secret), &s); err != nil {
		t.Fatal(err)
	}
	s.Data["tls.crt"] = testgen.Leaf(t, ca, "api-2").PEM()
	if err := cl.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	scrape()
	if c.parses != 2 {
		t.Fatalf("parsed %d times; a changed Secret is parsed again once", c.parses)
	}
}

// BenchmarkExpiryScrape compares a scrape of 1,000 certificate Secrets that parses them all (the first
// scrape, or every scrape before certificates were kept per object version) with one that parses none.
// The Secrets come from a reader that hands out its list as the cache does with UnsafeDisableDeepCopy, so
// the numbers are the collector's own.
func BenchmarkExpiryScrape(b *testing.B) {
	ca := testgen.CA(b, "root")
	r := &secretsReader{}
	for i := range 1000 {
		r.items = append(r.items, *inventory.ReduceSecret(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: fmt.Sprintf("tls-%d", i), UID: types.UID(fmt.Sprint(i)), ResourceVersion: "1"},
			Data:       map[string][]byte{"tls.crt": testgen.Concat(testgen.Leaf(b, ca, fmt.Sprint(i)).PEM(), ca.PEM())},
		}))
	}
	for _, bc := range []struct {
		name  string
		reset bool
	}{{"parse-every-scrape", true}, {"parse-once", false}} {
		b.Run(bc.name, func(b *testing.B) {
			c := &certificateCollector{}
			c.use(r)
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			for b.Loop() {
				if bc.reset {
					c.parsed = nil
				}
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// secretsReader lists its Secrets and no ConfigMaps.
type secretsReader struct {
	client.Reader
	items []corev1.Secret
}

func (r *secretsReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	if l, ok := list.(*corev1.SecretList); ok {
		l.Items = r.items
	}
	return nil
}
