package cli

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// The names kubectl users type must reach one kind each: the category once equalled CertRollout's
// singular name, so `kubectl delete certrollout build` also deleted a RolloutPolicy named build.
func TestEachNameKubectlAcceptsResolvesToOneKind(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	cached := memory.NewMemCacheClient(dc)
	// As kubectl builds it: short names expand before the discovery mapper resolves.
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, func(string) {})
	categories := restmapper.NewDiscoveryCategoryExpander(cached)

	rollouts := api.GroupVersion.WithResource("certrollouts")
	policies := api.GroupVersion.WithResource("rolloutpolicies")
	for typed, want := range map[string]schema.GroupVersionResource{
		"certrollout": rollouts, "certrollouts": rollouts, "cro": rollouts,
		"rolloutpolicy": policies, "rolloutpolicies": policies, "rpol": policies,
	} {
		if got, ok := categories.Expand(typed); ok {
			t.Errorf("%q is a category too (%v): kubectl would act on every kind in it", typed, got)
		}
		gvr, err := mapper.ResourceFor(schema.GroupVersionResource{Resource: typed})
		if err != nil {
			t.Errorf("%q does not resolve: %v", typed, err)
			continue
		}
		if gvr != want {
			t.Errorf("%q resolves to %v, want %v", typed, gvr, want)
		}
	}
	all, ok := categories.Expand("certrollout-all")
	var kinds []string
	for _, gr := range all {
		kinds = append(kinds, gr.Resource)
	}
	slices.Sort(kinds)
	if want := []string{"certrollouts", "controlplanepolicies", "controlplanerollouts", "maintenanceholds", "nodecertificates", "rolloutpolicies", "trustbundlesyncs"}; !ok || !slices.Equal(kinds, want) {
		t.Fatalf("the certrollout-all category should name %v, got %v (found: %v)", want, all, ok)
	}
	if crl, err := mapper.ResourceFor(schema.GroupVersionResource{Resource: "crl"}); err == nil && crl.Group == api.GroupVersion.Group {
		t.Errorf(`"crl" (read as a certificate revocation list) still names %v`, crl)
	}
}

// kubectl prints a date column lying in the future as <invalid>; a policy's next window always does.
func TestNextWindowPrintsAsATimestampInKubectl(t *testing.T) {
	c := clustertest.Cluster(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	cl, p := policyNamedBuild(t, ns)
	next := metav1.NewTime(time.Now().Add(36 * time.Hour).UTC().Truncate(time.Second))
	p.Status.NextWindow = &next
	if err := cl.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	want := next.Format(time.RFC3339)

	// The server-side table is what kubectl prints.
	raw, err := c.Client.Discovery().RESTClient().Get().AbsPath("/apis", api.GroupVersion.Group, api.GroupVersion.Version, "namespaces", ns, "rolloutpolicies", "build").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, d := range table.ColumnDefinitions {
		if d.Name == "Next Window" {
			col = i
			if d.Type == "date" {
				t.Errorf("Next Window is a date column: kubectl prints a future date as <invalid>")
			}
		}
	}
	if col < 0 || len(table.Rows) != 1 {
		t.Fatalf("want one row with a Next Window column, got columns %v and %d rows", table.ColumnDefinitions, len(table.Rows))
	}
	if got := table.Rows[0].Cells[col]; got != want {
		t.Errorf("Next Window cell = %v, want %s", got, want)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl is not installed: checked the server-side table only")
		return
	}
	out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "rpol", "-n", ns).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get rpol: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "<invalid>") || !strings.Contains(string(out), want) {
		t.Errorf("kubectl should print the next window as %s:\n%s", want, out)
	}
}

// `kubectl get certrollout build` once listed a RolloutPolicy named build as well.
func TestKubectlGetCertrolloutNameShowsOnlyTheCertRollout(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; TestEachNameKubectlAcceptsResolvesToOneKind covers the mapping")
	}
	c := clustertest.Cluster(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	cl, _ := policyNamedBuild(t, ns)
	if err := cl.Create(ctx, &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "build", Namespace: ns},
		Spec:       api.CertRolloutSpec{Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "build"}}},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "certrollout", "build", "-n", ns, "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get certrollout build: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "certrollout.certrollout.io/build" {
		t.Errorf("kubectl get certrollout build printed %q, want only the CertRollout", got)
	}
	out, err = exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "certrollout-all", "-n", ns, "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get certrollout-all: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 2 {
		t.Errorf("the certrollout-all category should list both objects, got %q", got)
	}
}

// policyNamedBuild creates RolloutPolicy ns/build (CRDs installed) and returns a client and the policy.
func policyNamedBuild(t *testing.T, ns string) (client.Client, *api.RolloutPolicy) {
	t.Helper()
	clustertest.InstallCRDs(t)
	cl, err := client.New(clustertest.Cluster(t).Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	p := &api.RolloutPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "build", Namespace: ns},
		Spec:       api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "build"}}},
	}
	if err := cl.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return cl, p
}
