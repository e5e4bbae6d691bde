package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

func dur(s string) metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return metav1.Duration{Duration: d}
}

// The API server refuses, with a message naming the field, every policy that could hold rollout slots
// for ever or reach the window parser's panic; the same policy within bounds is accepted.
func TestTheAPIRefusesPoliciesThatCouldHoldSlotsForEverOrCrashTheParser(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	valid := func() *api.RolloutPolicy {
		return &api.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "p-"},
			Spec: api.RolloutPolicySpec{
				Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				HealthTimeout: dur("24h"),
				Windows:       []api.MaintenanceWindow{{Schedule: "0 2 * * 6", Duration: dur("168h"), TimeZone: "Europe/Berlin"}},
				Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: dur("24h")}},
			},
		}
	}
	ctx := context.Background()
	if err := cl.Create(ctx, valid()); err != nil {
		t.Fatalf("a policy at every bound is refused: %v", err)
	}
	d := func(s string) *metav1.Duration { v := dur(s); return &v }
	for name, tc := range map[string]struct {
		edit func(*api.RolloutPolicy)
		want string
	}{
		"a year-long health timeout":      {func(p *api.RolloutPolicy) { p.Spec.HealthTimeout = dur("8760h") }, "healthTimeout is at most 24h"},
		"a negative health timeout":       {func(p *api.RolloutPolicy) { p.Spec.HealthTimeout = dur("-1s") }, "healthTimeout is at most 24h"},
		"a 25h drain timeout":             {func(p *api.RolloutPolicy) { p.Spec.Quiesce[0].DrainTimeout = dur("25h") }, "drainTimeout is at most 24h"},
		"a window open for a month":       {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Duration = dur("720h") }, "duration is more than 0 and at most 168h"},
		"a window of no length":           {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Duration = dur("0s") }, "duration is more than 0"},
		"TZ= in the schedule":             {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Schedule = "TZ=" }, "must not name a time zone"},
		"CRON_TZ= in the schedule":        {func(p *api.RolloutPolicy) { p.Spec.Windows[0].Schedule = "CRON_TZ=Europe/Berlin 0 2 * * *" }, "must not name a time zone"},
		"an expiry deadline of ten years": {func(p *api.RolloutPolicy) { p.Spec.ExpiryDeadline = d("87600h") }, "expiryDeadline is between 0 and 8760h"},
		"a minimum interval of a year":    {func(p *api.RolloutPolicy) { p.Spec.MinRestartInterval = d("8760h") }, "minRestartInterval is between 0 and 720h"},
		"a name longer than a label value": {func(p *api.RolloutPolicy) {
			p.GenerateName, p.Name = "", strings.Repeat("p", 64)
		}, "at most 63 characters"},
	} {
		t.Run(name, func(t *testing.T) {
			p := valid()
			tc.edit(p)
			err := cl.Create(ctx, p)
			if err == nil {
				t.Fatalf("created %s; want it refused", p.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %q; want the message to say %q", err, tc.want)
			}
		})
	}
}

// The control-plane kinds are cluster-scoped: only what a cluster admin may create, with the same bounds.
// There is one ControlPlanePolicy, named default; etcd restarts last; a rollout's spec never changes.
func TestTheAPIRefusesControlPlanePoliciesOutOfBoundsAndKeepsRolloutsAsCreated(t *testing.T) {
	cl := admin(t)
	ctx := context.Background()
	d := func(s string) *metav1.Duration { v := dur(s); return &v }
	valid := func() *api.ControlPlanePolicy {
		return &api.ControlPlanePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: api.ControlPlanePolicyName},
			Spec: api.ControlPlanePolicySpec{
				Windows:           []api.MaintenanceWindow{{Schedule: "0 2 * * 6", Duration: dur("4h"), TimeZone: "Europe/Berlin"}},
				ExpiryDeadline:    d("168h"),
				Renewal:           api.ControlPlaneRenewal{RenewBefore: d("720h"), Validity: d("8760h")},
				EtcdSnapshot:      api.EtcdSnapshotSettings{HostPath: "/var/backups/etcd", Keep: 5},
				NodeOrder:         []string{"cp-1"},
				ComponentOrder:    []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"},
				HealthTimeout:     dur("1h"),
				PauseBetweenNodes: d("1h"),
				Quiesce:           []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: "akash-services", Name: "akash-provider", DrainTimeout: dur("24h")}},
				KubeconfigCopies:  []api.KubeconfigCopy{{From: "admin.conf", To: "/root/.kube/config"}},
			},
		}
	}
	p := valid()
	if err := cl.Create(ctx, p); err != nil {
		t.Fatalf("a policy at every bound is refused: %v", err)
	}
	if p.Spec.Trigger != api.ControlPlaneTriggerAutomatic || p.Spec.Renewal.Enabled == nil || !*p.Spec.Renewal.Enabled || p.Spec.EtcdSnapshot.Enabled == nil || !*p.Spec.EtcdSnapshot.Enabled {
		t.Errorf("defaults: want trigger Automatic, renewal and snapshot enabled; got %+v", p.Spec)
	}
	if err := cl.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*api.ControlPlanePolicy)
		want string
	}{
		"another name":                {func(p *api.ControlPlanePolicy) { p.Name = "mine" }, "named default"},
		"etcd before the API server":  {func(p *api.ControlPlanePolicy) { p.Spec.ComponentOrder = []string{"etcd", "kube-apiserver"} }, "etcd restarts last"},
		"a component twice":           {func(p *api.ControlPlanePolicy) { p.Spec.ComponentOrder = []string{"kube-apiserver", "kube-apiserver"} }, "listed once"},
		"a component we do not know":  {func(p *api.ControlPlanePolicy) { p.Spec.ComponentOrder = []string{"kubelet"} }, "Unsupported value"},
		"a two-hour health timeout":   {func(p *api.ControlPlanePolicy) { p.Spec.HealthTimeout = dur("2h") }, "healthTimeout is at most 1h"},
		"a day between nodes":         {func(p *api.ControlPlanePolicy) { p.Spec.PauseBetweenNodes = d("24h") }, "pauseBetweenNodes is at most 1h"},
		"renewing a year ahead":       {func(p *api.ControlPlanePolicy) { p.Spec.Renewal.RenewBefore = d("9000h") }, "renewBefore is more than 0"},
		"certificates valid a minute": {func(p *api.ControlPlanePolicy) { p.Spec.Renewal.Validity = d("1m") }, "validity is between 1h"},
		"renewing certificates due again at once": {func(p *api.ControlPlanePolicy) {
			p.Spec.Renewal = api.ControlPlaneRenewal{RenewBefore: d("720h"), Validity: d("720h")}
		}, "validity must be longer than renewBefore"},
		"a relative snapshot folder":  {func(p *api.ControlPlanePolicy) { p.Spec.EtcdSnapshot.HostPath = "backups" }, "absolute path"},
		"keeping no snapshot":         {func(p *api.ControlPlanePolicy) { p.Spec.EtcdSnapshot.Keep = -1 }, "should be greater than or equal to 1"},
		"a quiesce without namespace": {func(p *api.ControlPlanePolicy) { p.Spec.Quiesce[0].Namespace = "" }, "namespace"},
		"a kubeconfig copy out of /":  {func(p *api.ControlPlanePolicy) { p.Spec.KubeconfigCopies[0].To = "/root/../etc/shadow" }, "without .."},
		"a window open for a month":   {func(p *api.ControlPlanePolicy) { p.Spec.Windows[0].Duration = dur("720h") }, "at most 168h"},
	} {
		t.Run(name, func(t *testing.T) {
			p := valid()
			tc.edit(p)
			err := cl.Create(ctx, p)
			if err == nil {
				_ = cl.Delete(ctx, p)
				t.Fatalf("created %s; want it refused", p.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %q; want the message to say %q", err, tc.want)
			}
		})
	}

	r := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{GenerateName: "cp-"}, Spec: api.ControlPlaneRolloutSpec{Nodes: []string{"cp-1"}}}
	if err := cl.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Delete(context.Background(), r) })
	if r.Spec.Trigger != api.ControlPlaneTriggerByHand {
		t.Errorf("a rollout's trigger defaults to Manual, got %q", r.Spec.Trigger)
	}
	r.Spec.Nodes = []string{"cp-2"}
	if err := cl.Update(ctx, r); err == nil || !strings.Contains(err.Error(), "spec is immutable") {
		t.Errorf("changing a rollout's nodes: want spec is immutable, got %v", err)
	}
}
