package controller

import (
	"strings"
	"testing"

	"k8s.io/client-go/rest"

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
