// Package cporchestrate decides the next step of a ControlPlaneRollout: when it may start (windows, the
// expiry deadline, suspension, emergency), whether the cluster lets it (every target control-plane Node
// Ready, every target's node agent reporting), the workloads to stop first and restore after, which
// node's turn it is (one at a time, never while the Lease ControlPlaneLeaseName is held by another node),
// and the verdict from the agents' reports. It is pure: the controller gathers an Input, calls Next, makes
// the writes Next asks for and stores the status. A controller that crashes resumes from the status it
// stored, whatever step that was.
package cporchestrate

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
	"github.com/certrollout/certrollout/internal/schedule"
)

// Node is a control-plane Node.
type Node struct {
	Name  string
	Ready bool
	// Message is why it is not Ready (its Ready condition's message), for the rollout's message.
	Message string
}

// Agent is what a node's agent reports in its NodeCertificates.
type Agent struct {
	// ObservedAt is the agent's last scan (zero: never).
	ObservedAt time.Time
	Files      []api.NodeCertificateFile
	Operation  *api.NodeOperation
	// Rollouts is what the agent says it can do (nil: it does not say).
	Rollouts *api.NodeRolloutAbilities
}

// Lease is the Lease ControlPlaneLeaseName as observed; the zero value is no Lease.
type Lease struct {
	Holder    string
	RenewTime time.Time
	Duration  time.Duration
}

// HeldBy is the node that holds the Lease at now, "" when nobody does (no holder, or it expired).
func (l Lease) HeldBy(now time.Time) string {
	if l.Holder == "" || !now.Before(l.RenewTime.Add(l.Duration)) {
		return ""
	}
	return l.Holder
}

// Key names a workload of the quiesce list.
type Key struct{ Kind, Namespace, Name string }

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Workload is a workload of the quiesce list as observed.
type Workload struct {
	Exists           bool
	Replicas         int32
	QuiescedBy       string
	QuiescedReplicas *int32
	// Pods is how many of its pods are present.
	Pods int
}

// Input is everything Next decides from.
type Input struct {
	Now     time.Time
	Rollout *api.ControlPlaneRollout
	// Policy is the ControlPlanePolicy's spec; nil when there is none (the defaults apply).
	Policy *api.ControlPlanePolicySpec
	// Nodes are the control-plane Nodes.
	Nodes []Node
	// Agents are the NodeCertificates by node name; a node without one is absent.
	Agents    map[string]*Agent
	Lease     Lease
	Workloads map[Key]Workload
	// Running are the other ControlPlaneRollouts that have started and not finished: one rollout at a
	// time, so two never hand out turns side by side.
	Running []string
}

// ActionType is a write Next asks for.
type ActionType string

// Actions.
const (
	// ScaleDown records Replicas on the workload and scales it to zero (restart.Quiesce).
	ScaleDown ActionType = "ScaleDown"
	// Restore sets the workload's replicas back to Replicas and removes its quiesce marks.
	Restore ActionType = "Restore"
	// Release removes the quiesce marks only: no count is recorded anywhere.
	Release ActionType = "Release"
)

// Action is one write.
type Action struct {
	Type     ActionType
	Key      Key
	Replicas int32
}

// Result is a step's writes and outcome.
type Result struct {
	rolloutstatus.ControlPlaneOutcome
	Actions []Action
}

// Timing of the decisions.
const (
	// pollInterval is how often a rollout looks again while it waits on the cluster.
	pollInterval = 5 * time.Second
	// silentGrace is added to twice the health timeout to say an agent in progress stopped reporting.
	silentGrace = 5 * time.Minute
)

type stepper struct {
	*rolloutstatus.ControlPlaneRecorder
	in       Input
	me       string // the rollout's quiesced-by value
	settings api.ControlPlanePolicySpec
	actions  []Action
}

// Next decides the rollout's next step.
func Next(in Input) Result {
	s := &stepper{ControlPlaneRecorder: rolloutstatus.NewControlPlane(in.Rollout, in.Now), in: in, me: api.ControlPlaneQuiescer(in.Rollout.Name)}
	s.step()
	s.Status.ObservedGeneration = in.Rollout.Generation
	if s.Status.Phase.Finished() {
		s.RequeueAfter = 0
	}
	s.SetKstatus()
	return Result{ControlPlaneOutcome: s.ControlPlaneOutcome, Actions: s.actions}
}

func (s *stepper) step() {
	if s.Status.Phase.Finished() {
		return
	}
	if s.Status.Settings != nil {
		s.settings = *s.Status.Settings
	} else {
		s.settings = Settings(s.in.Policy)
	}
	switch s.Status.Phase {
	case "", api.PhasePending, api.PhaseWaitingForWindow:
		s.waitOrStart()
	case api.PhaseQuiescing:
		s.quiesce()
	case api.PhaseRestarting:
		s.restart()
	case api.PhaseRestoring:
		s.restore()
	default:
		s.Fail(api.ReasonInvalid, fmt.Sprintf("unknown phase %q", s.Status.Phase))
	}
	s.Status.Progress = s.progress()
}

func (s *stepper) progress() string {
	done := 0
	for _, n := range s.Status.Nodes {
		if n.Phase == api.NodeSucceeded {
			done++
		}
	}
	return fmt.Sprintf("%d/%d nodes", done, len(s.Status.Nodes))
}

// pending leaves the rollout Pending with a message, looking again after d.
func (s *stepper) pending(msg string, d time.Duration) {
	s.Status.Phase, s.Status.Message = api.PhasePending, msg
	s.Wait(d)
}

// waitOrStart starts the rollout when the windows, the deadline, suspension or emergency say so, and the
// cluster lets it.
func (s *stepper) waitOrStart() {
	targets, reason, msg := s.targets()
	if reason != "" {
		s.Fail(reason, msg+"; nothing was touched")
		return
	}
	emergency := s.in.Rollout.Spec.Emergency
	if emergency == nil && s.settings.Suspend {
		s.pending("the ControlPlanePolicy is suspended", time.Minute)
		return
	}
	override := ""
	if emergency == nil {
		var ok bool
		if override, ok = s.gate(targets); !ok {
			return
		}
	}
	if len(s.in.Running) > 0 {
		s.pending(fmt.Sprintf("waiting for ControlPlaneRollout %s to finish", strings.Join(s.in.Running, ", ")), pollInterval)
		return
	}
	if reason, msg := s.preflight(targets); reason != "" {
		msg += "; the rollout refused to start and nothing was touched"
		if reason == api.ReasonRenewalNotPossible {
			s.Event(rolloutstatus.Warning, reason, "%s", msg)
		}
		s.Fail(reason, msg)
		return
	}
	s.start(targets, override)
}

// targets are the nodes to roll: spec.nodes, each a control-plane Node, or every control-plane Node.
func (s *stepper) targets() ([]string, string, string) {
	known := map[string]bool{}
	var all []string
	for _, n := range s.in.Nodes {
		known[n.Name] = true
		all = append(all, n.Name)
	}
	if len(s.in.Rollout.Spec.Nodes) == 0 {
		if len(all) == 0 {
			return nil, api.ReasonUnknownNode, "no Node is labelled " + api.LabelControlPlaneRole
		}
		return all, "", ""
	}
	for _, n := range s.in.Rollout.Spec.Nodes {
		if !known[n] {
			return nil, api.ReasonUnknownNode, fmt.Sprintf("node %s is not a control-plane Node (labelled %s)", n, api.LabelControlPlaneRole)
		}
	}
	return s.in.Rollout.Spec.Nodes, "", ""
}

// gate reports whether the windows or the expiry deadline let the rollout start now, and the override
// message when the deadline does. Otherwise it sets WaitingForWindow.
func (s *stepper) gate(targets []string) (string, bool) {
	windows, err := Windows(s.settings.Windows)
	if err != nil {
		s.pending("the ControlPlanePolicy's windows do not parse: "+err.Error(), time.Minute)
		return "", false
	}
	s.Status.ExpiryDeadline = nil
	var deadline time.Time
	if s.settings.ExpiryDeadline != nil {
		if soonest := SoonestNotAfter(s.in.Agents, targets); !soonest.IsZero() {
			deadline = soonest.Add(-s.settings.ExpiryDeadline.Duration)
			s.Status.ExpiryDeadline = timePtr(deadline)
		}
	}
	st := schedule.At(windows, s.in.Now)
	switch {
	case st.Open:
		s.Status.NextWindow = nil
		return "", true
	case !deadline.IsZero() && !s.in.Now.Before(deadline):
		s.Status.NextWindow = nil
		return fmt.Sprintf("started outside the windows: a certificate expires at %s, within the expiry deadline of %s",
			deadline.Add(s.settings.ExpiryDeadline.Duration).UTC().Format(time.RFC3339), s.settings.ExpiryDeadline.Duration), true
	}
	if s.Status.Phase != api.PhaseWaitingForWindow {
		s.Event(rolloutstatus.Normal, api.ReasonWaitingForWindow, "Waiting for the next window, at %s", st.NextOpen.UTC().Format(time.RFC3339))
	}
	s.Status.Phase, s.Status.NextWindow = api.PhaseWaitingForWindow, timePtr(st.NextOpen)
	s.Status.Message = "waiting for the next window, at " + st.NextOpen.UTC().Format(time.RFC3339)
	wake := st.NextOpen
	if !deadline.IsZero() && deadline.Before(wake) {
		wake = deadline
	}
	s.Wait(min(wake.Sub(s.in.Now), time.Hour))
	return "", false
}

// preflight is the cluster-level health a rollout needs to start: every target Node Ready, and its agent
// present, reporting within api.AgentFreshness, doing rollouts, and able to renew when renewal is on.
func (s *stepper) preflight(targets []string) (string, string) {
	nodes := map[string]Node{}
	for _, n := range s.in.Nodes {
		nodes[n.Name] = n
	}
	for _, name := range targets {
		if n := nodes[name]; !n.Ready {
			msg := fmt.Sprintf("control-plane node %s is not Ready", name)
			if n.Message != "" {
				msg += ": " + n.Message
			}
			return api.ReasonClusterDegraded, msg
		}
	}
	for _, name := range targets {
		a := s.in.Agents[name]
		switch {
		case a == nil:
			return api.ReasonAgentMissing, fmt.Sprintf("node %s has no NodeCertificates: its node agent does not run", name)
		case a.ObservedAt.IsZero() || s.in.Now.Sub(a.ObservedAt) > api.AgentFreshness:
			return api.ReasonAgentMissing, fmt.Sprintf("the node agent on %s has not reported for more than %s (last %s)", name, api.AgentFreshness, formatTime(a.ObservedAt))
		}
	}
	return s.abilities(targets)
}

// abilities refuses a rollout that the targets' agents could not carry out: one that does not do
// rollouts at all, or, with renewal on, one that cannot write the kubeadm PKI. Every such node is named.
func (s *stepper) abilities(targets []string) (string, string) {
	var off, readOnly, why []string
	for _, name := range targets {
		switch r := s.in.Agents[name].Rollouts; {
		case r == nil || !r.Enabled:
			off = append(off, name)
		case !r.CanRenew:
			readOnly = append(readOnly, name)
			if r.Message != "" {
				why = append(why, name+": "+r.Message)
			}
		}
	}
	if len(off) > 0 {
		return api.ReasonAgentMissing, fmt.Sprintf("the node agent on %s does not do ControlPlaneRollouts (chart: nodeAgent.controlPlaneRollouts.enabled; node-agent --control-plane-rollouts)",
			strings.Join(off, ", "))
	}
	if len(readOnly) == 0 || s.settings.Renewal.Enabled == nil || !*s.settings.Renewal.Enabled {
		return "", ""
	}
	msg := fmt.Sprintf("renewal is on, and the node agent on %s cannot write the kubeadm PKI", strings.Join(readOnly, ", "))
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return api.ReasonRenewalNotPossible, msg + ": set the chart key nodeAgent.controlPlaneRollouts.renew to true, or spec.renewal.enabled to false in the ControlPlanePolicy"
}

// start records the settings, the node list and the quiesce list: the first status written past
// waiting, before anything is touched.
func (s *stepper) start(targets []string, override string) {
	settings := s.settings
	s.Status.Settings = &settings
	s.Status.StartTime, s.Status.NextWindow = s.Now(), nil
	s.Status.Nodes = nil
	for _, n := range Order(targets, settings.NodeOrder) {
		s.Status.Nodes = append(s.Status.Nodes, api.ControlPlaneNodeStatus{Name: n, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}})
	}
	s.Status.Quiesced = nil
	for _, q := range settings.Quiesce {
		s.Status.Quiesced = append(s.Status.Quiesced, api.ControlPlaneQuiescedWorkload{Namespace: q.Namespace,
			QuiescedWorkload: api.QuiescedWorkload{Kind: q.Kind, Name: q.Name, State: api.QuiescePending}})
	}
	switch e := s.in.Rollout.Spec.Emergency; {
	case e != nil:
		msg := "emergency: started at once, whatever the windows and suspension say: " + e.Reason
		if e.RequestedBy != "" {
			msg += " (requested by " + e.RequestedBy + ")"
		}
		s.SetCondition(api.ConditionEmergency, metav1.ConditionTrue, api.ReasonEmergencyStart, msg)
		s.Event(rolloutstatus.Warning, api.ReasonEmergencyStart, "%s", msg)
	case override != "":
		s.Event(rolloutstatus.Warning, api.ReasonDeadlineOverride, "%s", override)
	default:
		s.Event(rolloutstatus.Normal, api.ReasonStarted, "Started on %d control-plane node(s)", len(targets))
	}
	s.Status.Phase, s.Status.Message = api.PhaseQuiescing, "quiescing"
	if len(s.Status.Quiesced) == 0 {
		s.Status.Phase, s.Status.Message = api.PhaseRestarting, "restarting"
	}
	s.Wait(time.Second)
}

func timePtr(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
