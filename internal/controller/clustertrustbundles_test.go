package controller

import (
	"context"
	"testing"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The controller starts on clusters without ClusterTrustBundles, and without the right to list them: it
// follows them only when it watches every namespace and may read them.
func TestBundlesAreFollowedOnlyWhenServedListableAndClusterWide(t *testing.T) {
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	gvk := certificatesv1beta1.SchemeGroupVersion.WithKind("ClusterTrustBundle")
	serving := apimeta.NewDefaultRESTMapper(nil)
	serving.Add(gvk, apimeta.RESTScopeRoot)
	notServing := apimeta.NewDefaultRESTMapper(nil)
	forbidden := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return apierrors.NewForbidden(certificatesv1beta1.Resource("clustertrustbundles"), "", nil)
		},
	}).Build()
	allowed := fake.NewClientBuilder().WithScheme(scheme).Build()
	for name, tc := range map[string]struct {
		mapper     apimeta.RESTMapper
		direct     client.Reader
		namespaces []string
		want       bool
	}{
		"served and listable by the cluster-wide controller: followed": {mapper: serving, direct: allowed, want: true},
		"a namespaced (tenant) controller never follows them":          {mapper: serving, direct: allowed, namespaces: []string{"team-a"}},
		"a cluster that does not serve them (before 1.33, gate off)":   {mapper: notServing, direct: allowed},
		"served but not granted: carried on without":                   {mapper: serving, direct: forbidden},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := bundlesServed(context.Background(), tc.mapper, scheme, tc.direct, tc.namespaces)
			if err != nil || got != tc.want {
				t.Errorf("bundlesServed = %v, %v; want %v, nil", got, err, tc.want)
			}
		})
	}
}
