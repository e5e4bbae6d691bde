package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/clustertest"
)

// Started without the RBAC it needs, the controller once waited two minutes and exited naming a cache
// sync timeout of some other type. It must refuse at once, in the API server's words.
func TestTheControllerRefusesToStartWithoutAccessNamingWhatItCannotRead(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ns := clustertest.Namespace(t)
	for name, tc := range map[string]struct {
		user, group string
		namespaces  []string
		want        string
	}{
		"a user without any RBAC, cluster-wide":  {"nobody@example.com", "", nil, `User "nobody@example.com" cannot list resource "secrets" in API group "" at the cluster scope`},
		"a user without any RBAC, one namespace": {"nobody@example.com", "", []string{ns}, `cannot list resource "secrets" in API group "" in the namespace "` + ns + `"`},
		// system:masters may do anything: the check itself must not refuse a controller that can run.
		"an administrator": {"admin@example.com", "system:masters", []string{ns}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := rest.CopyConfig(c.Config)
			cfg.Impersonate = rest.ImpersonationConfig{UserName: tc.user}
			if tc.group != "" {
				cfg.Impersonate.Groups = []string{tc.group}
			}
			o := ManagerOptions{Options: testOptions(), MetricsBindAddress: "0", HealthProbeBindAddress: "0"}
			o.Namespaces = tc.namespaces
			o.AllowRepeatedSetup = true
			_, err := NewManager(cfg, o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want a manager, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "grant its ServiceAccount")):
				t.Fatalf("want an error containing %q and what to grant, got %v", tc.want, err)
			}
		})
	}
}

// Watching every namespace, the controller reads NodeCertificates (the control-plane metrics): without
// list on them it refuses to start, naming them, rather than waiting on an informer that never syncs.
func TestTheClusterWideControllerNeedsNodeCertificatesAndWhatControlPlaneRolloutsRead(t *testing.T) {
	for _, tc := range []struct{ resource, group string }{
		{"nodecertificates", `"certrollout.io"`}, {"controlplanerollouts", `"certrollout.io"`}, {"nodes", `""`},
	} {
		t.Run(tc.resource, func(t *testing.T) { clusterWideControllerNeeds(t, tc.resource, tc.group) })
	}
}

// clusterWideControllerNeeds asserts that a user who may read everything but resource cannot start the
// cluster-wide controller, which says so, and can start a namespaced one.
func clusterWideControllerNeeds(t *testing.T, resource, group string) {
	cfg := readerOfAllBut(t, resource)
	o := ManagerOptions{Options: testOptions(), MetricsBindAddress: "0", HealthProbeBindAddress: "0"}
	o.AllowRepeatedSetup = true
	want := `cannot list resource "` + resource + `" in API group ` + group + ` at the cluster scope`
	clustertest.Eventually(t, time.Minute, "the controller to refuse to start for want of "+resource, func(context.Context) (bool, error) {
		_, err := NewManager(cfg, o)
		if err == nil || !strings.Contains(err.Error(), want) {
			return false, fmt.Errorf("want an error containing %q, got %w", want, err)
		}
		return true, nil
	})
	// The same user may run a controller of one namespace: it does not read NodeCertificates.
	o.Namespaces = []string{clustertest.Namespace(t)}
	if _, err := NewManager(cfg, o); err != nil {
		t.Errorf("a namespaced controller needs %s: %v", resource, err)
	}
}

// The controller reads one Lease, the node agents' certrollout-control-plane in its own namespace: the
// rights for it are a Role there, on that name only (config/rbac/control_plane_lease_role.yaml), never
// Leases cluster-wide (every node's heartbeat). Without the Role it refuses to start, naming the Lease;
// with it, it starts and its cache lists and watches the Lease.
func TestTheClusterWideControllerReadsTheAgentsLeaseWithARoleOnItsNameInItsNamespace(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	cfg := readerOfAllBut(t, "leases")
	o := ManagerOptions{Options: testOptions(), MetricsBindAddress: "0", HealthProbeBindAddress: "0"}
	o.AllowRepeatedSetup = true
	o.ControlPlaneLeaseNamespace = ns
	want := `the node agents' Lease ` + ns + `/` + api.ControlPlaneLeaseName
	clustertest.Eventually(t, time.Minute, "the controller to refuse to start without the Lease Role", func(context.Context) (bool, error) {
		_, err := NewManager(cfg, o)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `in the namespace "`+ns+`"`) {
			return false, fmt.Errorf("want an error containing %q, got %w", want, err)
		}
		return true, nil
	})

	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "control-plane-lease"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"}, ResourceNames: []string{api.ControlPlaneLeaseName}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: cfg.Impersonate.UserName}}}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: api.ControlPlaneLeaseName}}
	if _, err := c.Client.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var mgr manager.Manager
	clustertest.Eventually(t, time.Minute, "the controller to start with the Lease Role", func(context.Context) (bool, error) {
		var err error
		mgr, err = NewManager(cfg, o)
		if err != nil && strings.Contains(err.Error(), want) {
			return false, nil // the RoleBinding is not in the authorizer's cache yet
		}
		return err == nil, err
	})
	cacheCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	go func() { _ = mgr.GetCache().Start(cacheCtx) }()
	if !mgr.GetCache().WaitForCacheSync(cacheCtx) {
		t.Fatal("the cache did not start")
	}
	var got coordinationv1.Lease
	if err := mgr.GetCache().Get(cacheCtx, client.ObjectKeyFromObject(lease), &got); err != nil {
		t.Fatalf("the cache did not list and watch the Lease with the Role: %v", err)
	}
}

// readerOfAllBut returns a config that impersonates a user who may get, list and watch every resource the
// API server serves but resource, cluster-wide.
func readerOfAllBut(t *testing.T, resource string) *rest.Config {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	ctx := context.Background()
	user := "no-" + resource + "@example.com"
	// Read everything but resource: RBAC has no deny, so every other resource is named.
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-no-" + resource}}
	_, resources, err := c.Client.Discovery().ServerGroupsAndResources()
	if err != nil && len(resources) == 0 {
		t.Fatal(err)
	}
	for _, l := range resources {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if r.Name != resource {
				role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{gv.Group}, Resources: []string{r.Name}, Verbs: []string{"get", "list", "watch"}})
			}
		}
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	for _, create := range []func() error{
		func() error {
			_, err := c.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
			return err
		},
	} {
		if err := create(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}
