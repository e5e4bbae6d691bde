package cporchestrate

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
)

// restart settles the node in progress from its agent's report, then hands the next node its turn:
// never two at once, never while the Lease is held by another node, never before the pause after the
// previous node.
func (s *stepper) restart() {
	for i := range s.Status.Nodes {
		n := &s.Status.Nodes[i]
		if n.Phase != api.NodeInProgress {
			continue
		}
		if !s.settle(n) {
			return // still in progress: nobody else gets a turn
		}
		if n.Phase == api.NodeFailed {
			msg := fmt.Sprintf("node %s failed: %s", n.Name, n.Message)
			s.SetCondition(api.ConditionFailed, metav1.ConditionTrue, api.ReasonNodeFailed, msg)
			s.Status.Phase, s.Status.Message, s.Status.CurrentNode = api.PhaseRestoring, msg, ""
			s.Wait(time.Second)
			return
		}
	}
	for i := range s.Status.Nodes {
		if n := &s.Status.Nodes[i]; n.Phase == api.NodePending {
			s.handTurn(n)
			return
		}
	}
	s.Status.Phase, s.Status.Message, s.Status.CurrentNode = api.PhaseRestoring, "every node done; restoring", ""
	s.Wait(time.Second)
}

// settle copies the agent's report on the node in progress into the status and reports whether the
// node has ended (Succeeded or Failed).
func (s *stepper) settle(n *api.ControlPlaneNodeStatus) bool {
	s.Status.CurrentNode = n.Name
	a := s.in.Agents[n.Name]
	var op *api.NodeOperation
	if a != nil && a.Operation != nil && a.Operation.RolloutUID == string(s.in.Rollout.UID) {
		op = a.Operation
	}
	if op != nil {
		started := n.StartedAt
		n.NodeRolloutReport = *op.NodeRolloutReport.DeepCopy()
		if n.StartedAt == nil {
			n.StartedAt = started
		}
		if op.Snapshot != nil {
			s.Status.Snapshot = op.Snapshot.DeepCopy()
		}
	}
	switch {
	case op != nil && op.Phase == api.NodeSucceeded:
		if n.CompletedAt == nil {
			n.CompletedAt = s.Now()
		}
		s.Status.CurrentNode = ""
		s.Event(rolloutstatus.Normal, api.ReasonNodeSucceeded, "Node %s done", n.Name)
		return true
	case op != nil && op.Phase == api.NodeFailed:
		if n.CompletedAt == nil {
			n.CompletedAt = s.Now()
		}
		s.Event(rolloutstatus.Warning, api.ReasonNodeFailed, "Node %s failed: %s", n.Name, n.Message)
		return true
	}
	n.Phase = api.NodeInProgress // an agent's report without a phase yet does not take the turn back
	s.Status.Message = s.inProgressMessage(n, a, op)
	s.Wait(pollInterval)
	return false
}

// inProgressMessage says what the node in progress is doing, or that its agent went silent: the
// rollout then keeps waiting (the agent resumes from its journal) and hands no other node a turn.
func (s *stepper) inProgressMessage(n *api.ControlPlaneNodeStatus, a *Agent, op *api.NodeOperation) string {
	silentAfter := 2*s.settings.HealthTimeout.Duration + silentGrace
	if a == nil || a.ObservedAt.IsZero() || s.in.Now.Sub(a.ObservedAt) > silentAfter {
		last := time.Time{}
		if a != nil {
			last = a.ObservedAt
		}
		return fmt.Sprintf("node %s: its node agent has not reported since %s (more than %s); waiting for it to resume from its journal, no other node gets a turn",
			n.Name, formatTime(last), silentAfter)
	}
	if op == nil {
		return fmt.Sprintf("node %s: waiting for its node agent to start", n.Name)
	}
	msg := fmt.Sprintf("node %s: %s", n.Name, n.Step)
	if n.Message != "" {
		msg += ": " + n.Message
	}
	return msg
}

// handTurn gives n its turn when nothing stands in the way, else says what it waits for.
func (s *stepper) handTurn(n *api.ControlPlaneNodeStatus) {
	if until := s.pauseUntil(); s.in.Now.Before(until) {
		s.Status.Message = fmt.Sprintf("pausing between nodes; node %s starts at %s", n.Name, until.UTC().Format(time.RFC3339))
		s.Wait(until.Sub(s.in.Now))
		return
	}
	if holder := s.in.Lease.HeldBy(s.in.Now); holder != "" && holder != n.Name {
		msg := fmt.Sprintf("node %s waits: the Lease %s is held by node %s", n.Name, api.ControlPlaneLeaseName, holder)
		if s.Status.Message != msg {
			s.Event(rolloutstatus.Normal, api.ReasonLeaseHeld, "%s", msg)
		}
		s.Status.Message = msg
		s.Wait(min(pollInterval, s.in.Lease.RenewTime.Add(s.in.Lease.Duration).Sub(s.in.Now)))
		return
	}
	if msg := s.unfit(n.Name); msg != "" {
		s.Status.Message = fmt.Sprintf("node %s waits: %s", n.Name, msg)
		s.Wait(pollInterval)
		return
	}
	n.Phase, n.StartedAt, n.Message = api.NodeInProgress, s.Now(), ""
	s.Status.CurrentNode = n.Name
	s.Status.Message = fmt.Sprintf("node %s: waiting for its node agent to start", n.Name)
	s.Event(rolloutstatus.Normal, api.ReasonNodeStarted, "Node %s has its turn", n.Name)
	s.Wait(pollInterval)
}

// pauseUntil is when the pause after the last node done ends.
func (s *stepper) pauseUntil() time.Time {
	var last time.Time
	for _, n := range s.Status.Nodes {
		if n.Phase == api.NodeSucceeded && n.CompletedAt != nil && n.CompletedAt.After(last) {
			last = n.CompletedAt.Time
		}
	}
	if last.IsZero() || s.settings.PauseBetweenNodes == nil {
		return time.Time{}
	}
	return last.Add(s.settings.PauseBetweenNodes.Duration)
}

// unfit says why a node cannot have its turn now (its Node not Ready, its agent silent), "" when it can.
// Mid-rollout this waits rather than fails: the previous node's restarts may leave a Node briefly
// NotReady, and the agent's own health check gates the node anyway.
func (s *stepper) unfit(name string) string {
	ready := false
	for _, n := range s.in.Nodes {
		ready = ready || (n.Name == name && n.Ready)
	}
	if !ready {
		return "its Node is not Ready (or no longer a control-plane Node)"
	}
	a := s.in.Agents[name]
	if a == nil || a.ObservedAt.IsZero() || s.in.Now.Sub(a.ObservedAt) > api.AgentFreshness {
		return "its node agent is not reporting"
	}
	return ""
}
