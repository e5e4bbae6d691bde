package cporchestrate

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

func agentReport(name string, observed time.Time, servesOld bool, expires time.Duration) api.NodeCertificates {
	state := api.ComponentCurrent
	if servesOld {
		state = api.ComponentServesOld
	}
	return api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: api.NodeCertificatesStatus{
		ObservedAt: at(observed),
		Files:      []api.NodeCertificateFile{{Name: "apiserver", RenewedBy: api.RenewedByKubeadm, NotAfter: metav1.NewTime(now.Add(expires))}},
		Components: []api.ControlPlaneComponent{{Name: "kube-apiserver", State: state}},
	}}
}

func cpRolloutAt(name string, created time.Duration, phase api.RolloutPhase, completed time.Duration) api.ControlPlaneRollout {
	ro := api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-created))}}
	ro.Status.Phase, ro.Status.Message = phase, "node cp-1 failed: kube-apiserver did not become ready"
	if phase.Finished() {
		ro.Status.CompletionTime = at(now.Add(-completed))
	}
	return ro
}

func TestTriggerDecidesWhenToCreateARollout(t *testing.T) {
	year := 365 * 24 * time.Hour
	for name, tc := range map[string]struct {
		spec     api.ControlPlanePolicySpec
		agents   []api.NodeCertificates
		rollouts []api.ControlPlaneRollout
		create   api.ControlPlaneTrigger
		due      string
		blocked  bool
	}{
		"nothing due creates nothing": {
			agents: []api.NodeCertificates{agentReport("cp-1", now, false, year)},
		},
		"a component serving an old certificate creates a ServingOld rollout": {
			agents: []api.NodeCertificates{agentReport("cp-1", now, false, year), agentReport("cp-2", now, true, year)},
			create: api.ControlPlaneTriggerServesOld, due: "cp-2",
		},
		"a kubeadm file within renewBefore creates an Expiring rollout": {
			agents: []api.NodeCertificates{agentReport("cp-1", now, false, 10*24*time.Hour)},
			create: api.ControlPlaneTriggerExpiring, due: "cp-1",
		},
		"ServingOld wins over Expiring": {
			agents: []api.NodeCertificates{agentReport("cp-1", now, false, 10*24*time.Hour), agentReport("cp-2", now, true, year)},
			create: api.ControlPlaneTriggerServesOld, due: "cp-1,cp-2",
		},
		"with renewal off an expiring file creates nothing (no rollout would renew it)": {
			spec:   api.ControlPlanePolicySpec{Renewal: api.ControlPlaneRenewal{Enabled: ptr.To(false)}},
			agents: []api.NodeCertificates{agentReport("cp-1", now, false, 10*24*time.Hour)},
		},
		"trigger Manual creates nothing but lists the due nodes": {
			spec:   api.ControlPlanePolicySpec{Trigger: api.ControlPlaneTriggerManual},
			agents: []api.NodeCertificates{agentReport("cp-1", now, true, year)},
			due:    "cp-1",
		},
		"a suspended policy creates nothing": {
			spec:   api.ControlPlanePolicySpec{Suspend: true},
			agents: []api.NodeCertificates{agentReport("cp-1", now, true, year)},
			due:    "cp-1",
		},
		"an unfinished rollout means no second one": {
			agents:   []api.NodeCertificates{agentReport("cp-1", now, true, year)},
			rollouts: []api.ControlPlaneRollout{cpRolloutAt("control-plane-a", time.Hour, api.PhaseRestarting, 0)},
			due:      "cp-1",
		},
		"a failed newest rollout blocks creation": {
			agents:   []api.NodeCertificates{agentReport("cp-1", now, true, year)},
			rollouts: []api.ControlPlaneRollout{cpRolloutAt("control-plane-a", 2*time.Hour, api.PhaseSucceeded, 90*time.Minute), cpRolloutAt("control-plane-b", time.Hour, api.PhaseFailed, 30*time.Minute)},
			due:      "cp-1", blocked: true,
		},
		"a failed rollout with a newer succeeded one does not block": {
			agents:   []api.NodeCertificates{agentReport("cp-1", now, true, year)},
			rollouts: []api.ControlPlaneRollout{cpRolloutAt("control-plane-a", 2*time.Hour, api.PhaseFailed, 90*time.Minute), cpRolloutAt("control-plane-b", time.Hour, api.PhaseSucceeded, 30*time.Minute)},
			create:   api.ControlPlaneTriggerServesOld, due: "cp-1",
		},
		"a report from before the newest rollout finished does not start another": {
			agents:   []api.NodeCertificates{agentReport("cp-1", now.Add(-time.Hour), true, year)},
			rollouts: []api.ControlPlaneRollout{cpRolloutAt("control-plane-b", 2*time.Hour, api.PhaseSucceeded, 30*time.Minute)},
			due:      "cp-1",
		},
	} {
		t.Run(name, func(t *testing.T) {
			spec := tc.spec
			if spec.Trigger == "" {
				spec.Trigger = api.ControlPlaneTriggerAutomatic
			}
			p := &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "default", Generation: 2}, Spec: spec}
			d := Trigger(TriggerInput{Now: now, Policy: p, Agents: tc.agents, Rollouts: tc.rollouts})
			if d.Create != tc.create {
				t.Errorf("create %q, want %q", d.Create, tc.create)
			}
			if got := strings.Join(d.Status.DueNodes, ","); got != tc.due {
				t.Errorf("dueNodes %s, want %s", got, tc.due)
			}
			c := apimeta.FindStatusCondition(d.Status.Conditions, api.ConditionBlocked)
			if c == nil || (c.Status == metav1.ConditionTrue) != tc.blocked {
				t.Errorf("Blocked %+v, want blocked=%v", c, tc.blocked)
			}
			if tc.blocked && (c.Reason != api.ReasonPreviousRolloutFailed || !strings.Contains(c.Message, "control-plane-b")) {
				t.Errorf("Blocked %+v does not name the failed rollout", c)
			}
			if d.Status.ObservedGeneration != 2 {
				t.Errorf("observedGeneration %d", d.Status.ObservedGeneration)
			}
		})
	}
}

func TestThePolicyStatusSaysWhetherItsWindowsParseAndWhenTheNextOpens(t *testing.T) {
	p := &api.ControlPlanePolicy{Spec: api.ControlPlanePolicySpec{Windows: []api.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}}}
	st := Trigger(TriggerInput{Now: now, Policy: p}).Status
	if !apimeta.IsStatusConditionTrue(st.Conditions, api.ConditionValid) || st.NextWindow == nil || !st.NextWindow.Time.Equal(time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("conditions %+v, nextWindow %v", st.Conditions, st.NextWindow)
	}
	p.Spec.Windows[0].TimeZone = "Mars/Olympus"
	st = Trigger(TriggerInput{Now: now, Policy: p}).Status
	if c := apimeta.FindStatusCondition(st.Conditions, api.ConditionValid); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "Mars/Olympus") || st.NextWindow != nil {
		t.Errorf("Valid %+v, nextWindow %v", c, st.NextWindow)
	}
}
