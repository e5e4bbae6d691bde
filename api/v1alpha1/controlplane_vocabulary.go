package v1alpha1

import (
	"strings"
	"time"
)

// ControlPlaneQuiescerPrefix starts the AnnotationQuiescedBy value of a workload a ControlPlaneRollout
// stopped: "ControlPlaneRollout/<name>".
const ControlPlaneQuiescerPrefix = "ControlPlaneRollout/"

// ControlPlaneQuiescer is the value of AnnotationQuiescedBy on a workload the ControlPlaneRollout name
// quiesced. A CertRollout's name cannot contain "/", so neither is mistaken for the other.
func ControlPlaneQuiescer(name string) string { return ControlPlaneQuiescerPrefix + name }

// ControlPlaneRolloutOf returns the ControlPlaneRollout an AnnotationQuiescedBy value names, and whether
// it names one.
func ControlPlaneRolloutOf(quiescedBy string) (string, bool) {
	name, ok := strings.CutPrefix(quiescedBy, ControlPlaneQuiescerPrefix)
	return name, ok && name != ""
}

// LabelControlPlaneRole marks a control-plane Node (kubeadm's label).
const LabelControlPlaneRole = "node-role.kubernetes.io/control-plane"

// ConditionBlocked is a ControlPlanePolicy's condition: True while a failed rollout stops automatic ones.
const ConditionBlocked = "Blocked"

// Reasons of ControlPlaneRollouts' and the ControlPlanePolicy's Events and conditions.
const (
	// ReasonClusterDegraded: a target control-plane Node is not Ready; the rollout refused to start.
	ReasonClusterDegraded = "ClusterDegraded"
	// ReasonUnknownNode: a node of spec.nodes is not a control-plane Node, or there is none.
	ReasonUnknownNode = "UnknownNode"
	// ReasonAgentMissing: a target node has no NodeCertificates, its agent has not reported lately, or it
	// does not do ControlPlaneRollouts (status.rollouts.enabled).
	ReasonAgentMissing = "AgentMissing"
	// ReasonRenewalNotPossible: renewal is on, and the agent of a target node cannot write the kubeadm
	// PKI (NodeCertificates status.rollouts.canRenew false); the rollout refused to start.
	ReasonRenewalNotPossible = "RenewalNotPossible"
	// ReasonNodeStarted: a node was given its turn. ReasonNodeSucceeded and ReasonNodeFailed: its agent
	// reported the end.
	ReasonNodeStarted   = "NodeStarted"
	ReasonNodeSucceeded = "NodeSucceeded"
	ReasonNodeFailed    = "NodeFailed"
	// ReasonAgentSilent: the agent of the node in progress stopped reporting; the rollout waits for it.
	ReasonAgentSilent = "AgentSilent"
	// ReasonLeaseHeld: the Lease ControlPlaneLeaseName is held by another node; the next turn waits.
	ReasonLeaseHeld = "LeaseHeld"
	// ReasonPreviousRolloutFailed: the newest ControlPlaneRollout failed; automatic ones wait until it is
	// deleted or a newer one exists.
	ReasonPreviousRolloutFailed = "PreviousRolloutFailed"
	// ReasonNotBlocked: the policy's Blocked condition when no failed rollout blocks it (Valid uses
	// ReasonValid and ReasonInvalidPolicy, the policy creates rollouts with ReasonRolloutCreated).
	ReasonNotBlocked = "NotBlocked"
)

// Defaults of a ControlPlanePolicy (or of its absence): the one place they are written.
const (
	DefaultControlPlaneHealthTimeout = 5 * time.Minute
	DefaultPauseBetweenNodes         = 30 * time.Second
	DefaultRenewBefore               = 720 * time.Hour
	DefaultEtcdSnapshotHostPath      = "/var/lib/certrollout/etcd-snapshots"
	DefaultEtcdSnapshotKeep          = 3
	// AgentFreshness is how recently a target node's agent must have reported for a rollout to start.
	AgentFreshness = 15 * time.Minute
)

// DefaultComponentOrder is the runbook's order: kube-apiserver, kube-scheduler, kube-controller-manager,
// etcd.
func DefaultComponentOrder() []string {
	return []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager", "etcd"}
}
