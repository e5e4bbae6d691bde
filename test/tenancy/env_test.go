package tenancy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/testgen"
)

// options are the controller's defaults made quick for tests: no settle period or cooldown to wait out.
func options(namespaces ...string) controller.Options {
	o := controller.DefaultOptions()
	o.Namespaces = namespaces
	o.SettlePeriod = time.Second
	o.MinRestartInterval = 0
	o.RestartRate, o.RestartBurst = 100, 100
	o.AllowRepeatedSetup = true
	return o
}

// startController runs a controller manager with o until the returned stop is called or the test ends.
func startController(t *testing.T, o controller.Options) (stop func()) {
	t.Helper()
	c := clustertest.Cluster(t)
	mgr, err := controller.NewManager(c.Config, controller.ManagerOptions{Options: o, MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	}
	t.Cleanup(stop)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	return stop
}

func create(t *testing.T, cl client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := cl.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// web is a Deployment of 1 replica whose pods become ready, labelled role=web.
func web(ns, name string) *appsv1.Deployment {
	d := testgen.Deployment(ns, name, 1, nil)
	d.Labels = map[string]string{"role": "web"}
	return d
}

// stuck is a Deployment whose pods are never scheduled: a restart of it never finishes.
func stuck(ns, name string) *appsv1.Deployment {
	d := testgen.Deployment(ns, name, 1, nil)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"no-such-node": "true"}
	return d
}

// workers is a Deployment whose pods take delay to terminate once deleted (kwok honours the annotation).
func workers(ns, name string, replicas int32, delay time.Duration) *appsv1.Deployment {
	return testgen.Deployment(ns, name, replicas, nil, testgen.SlowToTerminate(delay))
}

func waitAvailable(t *testing.T, cl client.Client, ns, name string) {
	t.Helper()
	clustertest.Eventually(t, 2*time.Minute, "Deployment "+name+" to be available", func(ctx context.Context) (bool, error) {
		var d appsv1.Deployment
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return false, err
		}
		want := *d.Spec.Replicas
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})
}

// manual is a CertRollout that restarts targets, following policy when it is not empty.
func manual(ns, name, policy string, targets ...string) *api.CertRollout {
	ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: api.CertRolloutSpec{Policy: policy, Trigger: api.RolloutTrigger{Type: api.TriggerManual}}}
	for _, n := range targets {
		ro.Spec.Targets = append(ro.Spec.Targets, api.WorkloadReference{Kind: "Deployment", Name: n})
	}
	return ro
}

// waitPhase waits until the CertRollout satisfies cond and returns it.
func waitPhase(t *testing.T, cl client.Client, timeout time.Duration, ns, name, what string, cond func(*api.CertRollout) bool) *api.CertRollout {
	t.Helper()
	var ro api.CertRollout
	clustertest.Eventually(t, timeout, "CertRollout "+ns+"/"+name+" "+what, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ro); err != nil {
			return false, err
		}
		if !cond(&ro) {
			return false, fmt.Errorf("phase %s: %s", ro.Status.Phase, ro.Status.Message)
		}
		return true, nil
	})
	return &ro
}

func phaseIs(phases ...api.RolloutPhase) func(*api.CertRollout) bool {
	return func(ro *api.CertRollout) bool {
		for _, p := range phases {
			if ro.Status.Phase == p {
				return true
			}
		}
		return false
	}
}

func replicas(t *testing.T, cl client.Client, ns, name string) (int32, map[string]string) {
	t.Helper()
	var d appsv1.Deployment
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Annotations
}

// hasEvent reports whether an Event of that type and reason regards the named object, its note
// containing note.
func hasEvent(cl client.Client, ns, regarding, eventType, reason, note string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == regarding && ev.Type == eventType && ev.Reason == reason && strings.Contains(ev.Note, note) {
				return true, nil
			}
		}
		return false, nil
	}
}
