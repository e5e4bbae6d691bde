package cporchestrate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/schedule"
)

// Settings are policy's spec with every default filled in (api.Default*), or the defaults alone when
// there is no policy: what a rollout copies into its status when it starts, so that the agents and
// `certrollout status` read one complete record. The windows, suspension and trigger are copied as
// written.
func Settings(policy *api.ControlPlanePolicySpec) api.ControlPlanePolicySpec {
	var s api.ControlPlanePolicySpec
	if policy != nil {
		s = *policy.DeepCopy()
	}
	if s.HealthTimeout.Duration <= 0 {
		s.HealthTimeout = metav1.Duration{Duration: api.DefaultControlPlaneHealthTimeout}
	}
	if s.PauseBetweenNodes == nil {
		s.PauseBetweenNodes = &metav1.Duration{Duration: api.DefaultPauseBetweenNodes}
	}
	if s.Renewal.Enabled == nil {
		s.Renewal.Enabled = ptrTo(true)
	}
	if s.Renewal.RenewBefore == nil {
		s.Renewal.RenewBefore = &metav1.Duration{Duration: api.DefaultRenewBefore}
	}
	if s.EtcdSnapshot.Enabled == nil {
		s.EtcdSnapshot.Enabled = ptrTo(true)
	}
	if s.EtcdSnapshot.HostPath == "" {
		s.EtcdSnapshot.HostPath = api.DefaultEtcdSnapshotHostPath
	}
	if s.EtcdSnapshot.Keep == 0 {
		s.EtcdSnapshot.Keep = api.DefaultEtcdSnapshotKeep
	}
	if len(s.ComponentOrder) == 0 {
		s.ComponentOrder = api.DefaultComponentOrder()
	}
	if s.Trigger == "" {
		s.Trigger = api.ControlPlaneTriggerManual
		if policy != nil {
			s.Trigger = api.ControlPlaneTriggerAutomatic // the CRD's default
		}
	}
	for i := range s.Quiesce {
		if s.Quiesce[i].DrainTimeout.Duration <= 0 {
			s.Quiesce[i].DrainTimeout = metav1.Duration{Duration: api.DefaultDrainTimeout}
		}
	}
	return s
}

func ptrTo[T any](v T) *T { return &v }

// Windows parses a policy's windows; the error names the first that does not parse.
func Windows(ws []api.MaintenanceWindow) ([]schedule.Window, error) {
	out := make([]schedule.Window, 0, len(ws))
	var errs []error
	for i, w := range ws {
		win, err := schedule.Parse(w.Schedule, w.Duration.Duration, w.TimeZone)
		if err != nil {
			errs = append(errs, fmt.Errorf("windows[%d]: %w", i, err))
			continue
		}
		out = append(out, win)
	}
	return out, errors.Join(errs...)
}

// Order is the order nodes are done in: those settings.NodeOrder lists first, in its order, then the
// others by name. Only nodes of targets are returned.
func Order(targets []string, nodeOrder []string) []string {
	rest := slices.Clone(targets)
	slices.Sort(rest)
	rest = slices.Compact(rest)
	var out []string
	for _, n := range nodeOrder {
		if i := slices.Index(rest, n); i >= 0 {
			out = append(out, n)
			rest = slices.Delete(rest, i, i+1)
		}
	}
	return append(out, rest...)
}

// Due reports why a node's agent report asks for a rollout: a component a rollout restarts (one of
// components, the settings' component order) serving an old certificate (ServingOld, which wins) or a
// kubeadm-renewed file expiring within renewBefore (Expiring); "" when neither. A component no rollout
// restarts (the kubelet, a static pod not in the order) never asks: the rollout would end with it still
// old, and the next report would ask again, for ever.
func Due(nc *api.NodeCertificates, components []string, renewBefore time.Duration, now time.Time) api.ControlPlaneTrigger {
	for _, c := range nc.Status.Components {
		if c.State == api.ComponentServesOld && slices.Contains(components, c.Name) {
			return api.ControlPlaneTriggerServesOld
		}
	}
	for _, f := range nc.Status.Files {
		if f.RenewedBy == api.RenewedByKubeadm && f.NotAfter.Time.Before(now.Add(renewBefore)) {
			return api.ControlPlaneTriggerExpiring
		}
	}
	return ""
}

// SoonestNotAfter is the earliest notAfter among the files the agents report, zero when none.
func SoonestNotAfter(agents map[string]*Agent, nodes []string) time.Time {
	var soonest time.Time
	for _, n := range nodes {
		a := agents[n]
		if a == nil {
			continue
		}
		for _, f := range a.Files {
			if soonest.IsZero() || f.NotAfter.Time.Before(soonest) {
				soonest = f.NotAfter.Time
			}
		}
	}
	return soonest
}
