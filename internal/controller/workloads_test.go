package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/labels"
)

// A workload certrollout may not touch has no ledger: what its stale pods run on is known only from the
// set the reconciler saw before the renewal. Later reconciles of the same certificates must not forget
// it, or the running expiry (the headline alert's series) vanishes while the old pods still serve.
func TestTheRunningExpiryWithoutALedgerOutlivesLaterReconcilesOfTheSameCertificates(t *testing.T) {
	renewed := time.Unix(1_800_000_000, 0)
	pods, _ := testPods(t, testPod("web-1", renewed.Add(-time.Hour), true), testPod("web-2", renewed.Add(-time.Hour), true))
	matcher := podMatcher{cache: pods, selectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"app": "web"})}}
	g := newWorkloadGauges()
	k := workloadKey{"app", "Deployment", "web"}
	g.set(k, workloadState{pods: matcher, issuedAt: renewed.Add(-2 * time.Hour), hash: "old", current: 1_810_000_000})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	want := runningHelp + `certrollout_workload_running_certificate_expiry_timestamp_seconds{kind="Deployment",name="web",namespace="app"} 1.81e+09
`
	for i := range 3 { // the renewal's reconcile, then two more with nothing new (a resync, an annotation)
		g.set(k, workloadState{pods: matcher, issuedAt: renewed, hash: "new", current: 1_900_000_000})
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "certrollout_workload_running_certificate_expiry_timestamp_seconds"); err != nil {
			t.Fatalf("after reconcile %d of the renewed certificates: %v", i+1, err)
		}
	}
	// The certificates change again: the stale pods still run on the first set.
	g.set(k, workloadState{pods: matcher, issuedAt: renewed.Add(time.Hour), hash: "newer", current: 1_950_000_000})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "certrollout_workload_running_certificate_expiry_timestamp_seconds"); err != nil {
		t.Fatalf("after a second renewal: %v", err)
	}
}
