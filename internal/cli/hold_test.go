package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/testgen"
)

// The Akash runbook from the command line: `hold --wait` returns once the workers are at zero with no
// pod left, `status` lists the hold, and `release --wait` returns once they have their 3 replicas back.
func TestHoldWaitsUntilStoppedAndReleaseUntilRestored(t *testing.T) {
	e := newRestartEnv(t)
	e.deploy(testgen.Deployment(e.ns, "provider", 3, nil), true)
	e.startController()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out, stderr, err := runContext(ctx, t, "certrollout", "hold", "maintenance", "deploy/provider", "--for", "2h", "--wait", "--kubeconfig", e.kubeconfig, "-n", e.ns)
	if err != nil {
		t.Fatalf("hold --wait: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "MaintenanceHold "+e.ns+"/maintenance created: holding Deployment/provider") || !strings.Contains(out, "held: 1 workload(s) at zero replicas, no pod left") {
		t.Errorf("hold --wait printed:\n%s", out)
	}
	var d appsv1.Deployment
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "provider"}, &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 0 || d.Status.Replicas != 0 {
		t.Fatalf("hold --wait returned with the provider at %d replicas (%d pods)", *d.Spec.Replicas, d.Status.Replicas)
	}

	out, _, err = run(t, "certrollout", "status", "--kubeconfig", e.kubeconfig, "-n", e.ns)
	if err != nil || !strings.Contains(out, "maintenance") || !strings.Contains(out, "Deployment/provider (3→0)") {
		t.Errorf("status does not list the hold (%v):\n%s", err, out)
	}

	out, stderr, err = runContext(ctx, t, "certrollout", "release", "maintenance", "--wait", "--kubeconfig", e.kubeconfig, "-n", e.ns)
	if err != nil || !strings.Contains(out, "released (spec.release is true): 1 workload(s) restored") {
		t.Fatalf("release --wait: %v\n%s%s", err, out, stderr)
	}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "provider"}, &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 {
		t.Errorf("release --wait returned with the provider at %d replicas, want 3", *d.Spec.Replicas)
	}
}

// Mistakes are refused before anything is sent, with a sentence that says what to do.
func TestHoldRefusesWhatItCannotHold(t *testing.T) {
	for args, want := range map[string]string{
		"hold maintenance":            "name what to hold",
		"hold ds/agent":               "is a workload, not a hold name",
		"hold m ds/agent":             "a hold scales Deployments and StatefulSets",
		"hold m sts/db --timeout 1m":  "--timeout only applies with --wait",
		"hold m --selector 'a in (b'": "--selector",
		"release m --timeout 1m":      "--timeout only applies with --wait",
	} {
		_, _, err := run(t, "certrollout", strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("certrollout %s: %v, want an error saying %q", args, err, want)
		}
	}
}
