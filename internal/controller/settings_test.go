package controller

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func settingsConfigMap(t *testing.T, ns string, o Options) *corev1.ConfigMap {
	t.Helper()
	data, err := json.Marshal(SettingsOf(o))
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SettingsConfigMap, Labels: map[string]string{api.LabelSettings: "true"}},
		Data: map[string]string{SettingsKey: string(data)}}
}

func TestSettingsRoundTripThroughTheirPublishedForm(t *testing.T) {
	o := DefaultOptions()
	o.Auto, o.SettlePeriod, o.MinRestartInterval, o.MaxRestartsPerDay, o.CACascade = true, time.Minute, time.Hour, 0, true
	o.ClusterResourceNamespace, o.Namespaces = "cm", []string{"team-a"}
	got := SettingsOf(o).Apply(DefaultOptions())
	if got.Auto != o.Auto || got.SettlePeriod != o.SettlePeriod || got.MinRestartInterval != o.MinRestartInterval ||
		got.MaxRestartsPerDay != o.MaxRestartsPerDay || !got.CACascade || got.ClusterResourceNamespace != "cm" {
		t.Errorf("applying the published settings lost some: %+v", got)
	}
	// The namespaces a controller watches are what a snapshot models, not its view.
	if len(got.Namespaces) != 0 || len(got.ModelledNamespaces) != 1 || got.ModelledNamespaces[0] != "team-a" {
		t.Errorf("namespaces %v, modelled %v; want none and team-a", got.Namespaces, got.ModelledNamespaces)
	}
}

func TestFindSettingsPicksTheControllerThatWatchesTheNamespace(t *testing.T) {
	ctx := context.Background()
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	teamA, all := DefaultOptions(), DefaultOptions()
	teamA.Namespaces, teamA.Auto = []string{"team-a"}, true
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(settingsConfigMap(t, "ctl-a", teamA), settingsConfigMap(t, "ctl-all", all)).Build()

	p, found, err := FindSettings(ctx, c, "ctl-a", "")
	if err != nil || !found || !p.Auto || p.Namespace != "ctl-a" {
		t.Fatalf("named namespace: %+v %v %v", p, found, err)
	}
	if _, found, err := FindSettings(ctx, c, "elsewhere", ""); err != nil || found {
		t.Fatalf("a namespace without settings: found %v, %v", found, err)
	}
	if p, found, err := FindSettings(ctx, c, "", "team-b"); err != nil || !found || p.Namespace != "ctl-all" {
		t.Fatalf("team-b is watched by the cluster-wide controller only: %+v %v %v", p, found, err)
	}
	if _, _, err := FindSettings(ctx, c, "", "team-a"); err == nil || !strings.Contains(err.Error(), "--controller-namespace") {
		t.Fatalf("two controllers cover team-a: want an error saying how to choose, got %v", err)
	}

	// A tenant who may not list ConfigMaps across namespaces reads the default namespace's.
	forbidden := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", nil)
	}}
	tenant := fake.NewClientBuilder().WithScheme(scheme).WithObjects(settingsConfigMap(t, DefaultControllerNamespace, teamA)).WithInterceptorFuncs(forbidden).Build()
	if p, found, err := FindSettings(ctx, tenant, "", "team-a"); err != nil || !found || p.Namespace != DefaultControllerNamespace {
		t.Fatalf("forbidden list: want the default namespace's settings, got %+v %v %v", p, found, err)
	}

	broken := settingsConfigMap(t, "ctl-x", all)
	broken.Data[SettingsKey] = `{"kind":"Something"}`
	c = fake.NewClientBuilder().WithScheme(scheme).WithObjects(broken).Build()
	if _, _, err := FindSettings(ctx, c, "ctl-x", ""); err == nil || !strings.Contains(err.Error(), "does not hold certrollout controller settings") {
		t.Fatalf("a ConfigMap of that name holding something else: want a clear error, got %v", err)
	}
}
