package cli

import (
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// RolloutStatusList is what `status -o json|yaml` prints without a name (kind RolloutStatusList), and
// RolloutStatus what it prints for one name. They are documented in docs/status.md; fields are only
// added within a version.
type RolloutStatusList struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      []RolloutStatus `json:"items"`
	// Holds are the MaintenanceHolds of the same namespaces (omitted when there are none).
	Holds []HoldStatus `json:"holds,omitempty"`
	// ControlPlaneRollouts are every ControlPlaneRollout (cluster-scoped), oldest first; omitted when there
	// are none or you may not list them.
	ControlPlaneRollouts []ControlPlaneRolloutStatus `json:"controlPlaneRollouts,omitempty"`
}

// HoldStatus is one MaintenanceHold: its phase, until when, and each workload it holds.
type HoldStatus struct {
	Namespace  string         `json:"namespace"`
	Name       string         `json:"name"`
	Phase      string         `json:"phase"`
	Ready      bool           `json:"ready"`
	Message    string         `json:"message,omitempty"`
	ExpiresAt  *time.Time     `json:"expiresAt,omitempty"`
	HeldAt     *time.Time     `json:"heldAt,omitempty"`
	ReleasedAt *time.Time     `json:"releasedAt,omitempty"`
	Workloads  []HeldWorkload `json:"workloads"`
}

// HeldWorkload is one workload of a hold.
type HeldWorkload struct {
	Kind             string `json:"kind"`
	Name             string `json:"name"`
	State            string `json:"state"`
	OriginalReplicas *int32 `json:"originalReplicas,omitempty"`
	// Enforced counts the scale-ups the hold undid.
	Enforced int32  `json:"enforced,omitempty"`
	Message  string `json:"message,omitempty"`
}

// RolloutStatus is one CertRollout: what it restarts, why, and each step with its times.
type RolloutStatus struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Policy is the RolloutPolicy it follows; empty for none.
	Policy  string         `json:"policy,omitempty"`
	Trigger RolloutTrigger `json:"trigger"`
	// Phase is Pending, WaitingForWindow, RefreshingTrust, Reissuing, Quiescing, Restarting, Restoring, Succeeded or Failed; empty
	// until a controller picks the rollout up.
	Phase    string `json:"phase"`
	Progress string `json:"progress,omitempty"`
	Message  string `json:"message,omitempty"`
	// Created, Started (left Pending and WaitingForWindow) and Completed, RFC 3339.
	Created    *time.Time `json:"created,omitempty"`
	Started    *time.Time `json:"started,omitempty"`
	Completed  *time.Time `json:"completed,omitempty"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// DurationSeconds is Completed-Started, or now-Started while it runs.
	DurationSeconds *int64 `json:"durationSeconds,omitempty"`
	// RequestedTargets are spec.targets; empty when the rollout takes all its policy governs.
	RequestedTargets []string `json:"requestedTargets,omitempty"`
	// Cascade is spec.cascade: the CA issuer whose leaves a CA cascade re-issues.
	Cascade *CascadeInfo `json:"cascade,omitempty"`
	// TrustedBy are the workloads a cascade waits for; Certificates the leaves it re-issues.
	TrustedBy    []TrustStep        `json:"trustedBy,omitempty"`
	Certificates []LeafStep         `json:"certificates,omitempty"`
	Quiesced     []QuiescedStep     `json:"quiesced,omitempty"`
	Targets      []TargetStep       `json:"targets,omitempty"`
	Conditions   []RolloutCondition `json:"conditions,omitempty"`
}

// CascadeInfo is a cascade's issuer and CA certificate.
type CascadeInfo struct {
	IssuerKind    string `json:"issuerKind"`
	IssuerName    string `json:"issuerName"`
	CAFingerprint string `json:"caFingerprint"`
	MaxConcurrent int32  `json:"maxConcurrent,omitempty"`
}

// TrustStep is a workload that trusts the rotated CA: Pending, Current or NotWaitedFor.
type TrustStep struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Message   string `json:"message,omitempty"`
}

// LeafStep is a leaf Certificate a cascade re-issues: Pending, Issuing, Issued or Failed.
type LeafStep struct {
	Namespace        string     `json:"namespace"`
	Name             string     `json:"name"`
	State            string     `json:"state"`
	PreviousRevision *int32     `json:"previousRevision,omitempty"`
	Revision         *int32     `json:"revision,omitempty"`
	StartedAt        *time.Time `json:"startedAt,omitempty"`
	FinishedAt       *time.Time `json:"finishedAt,omitempty"`
	DurationSeconds  *int64     `json:"durationSeconds,omitempty"`
	Message          string     `json:"message,omitempty"`
}

// RolloutTrigger is why a rollout exists.
type RolloutTrigger struct {
	// Type is CertificateRenewed, Deadline, Manual or CARotated.
	Type    string `json:"type"`
	Message string `json:"message,omitempty"`
}

// QuiescedStep is a workload scaled to zero for the rollout.
type QuiescedStep struct {
	// Namespace is set for a ControlPlaneRollout's (a CertRollout's are in its own namespace).
	Namespace        string     `json:"namespace,omitempty"`
	Kind             string     `json:"kind"`
	Name             string     `json:"name"`
	OriginalReplicas *int32     `json:"originalReplicas,omitempty"`
	State            string     `json:"state"`
	ScaledDownAt     *time.Time `json:"scaledDownAt,omitempty"`
	DrainedAt        *time.Time `json:"drainedAt,omitempty"`
	RestoredAt       *time.Time `json:"restoredAt,omitempty"`
	Message          string     `json:"message,omitempty"`
}

// TargetStep is a restarted workload.
type TargetStep struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	State string `json:"state"`
	// Step is the 1-based group the target restarts in (the policy's steps or certrollout.io/order);
	// absent when the rollout has one group.
	Step            int32      `json:"step,omitempty"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	DurationSeconds *int64     `json:"durationSeconds,omitempty"`
	Message         string     `json:"message,omitempty"`
	// Verification is what probes of its new pods found: Verified or NotVerified; absent when not probed.
	Verification string `json:"verification,omitempty"`
}

// RolloutCondition is one status condition (Complete, Failed).
type RolloutCondition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// ControlPlaneRolloutStatus is one ControlPlaneRollout: which nodes and why, and per node each step
// (`status --control-plane -o json|yaml`, kind ControlPlaneRolloutStatus).
type ControlPlaneRolloutStatus struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
	// Trigger is Manual, ServingOld or Expiring.
	Trigger string `json:"trigger"`
	// RequestedNodes are spec.nodes; empty: every control-plane node.
	RequestedNodes []string           `json:"requestedNodes,omitempty"`
	Emergency      *api.EmergencySpec `json:"emergency,omitempty"`
	// Phase is Pending, WaitingForWindow, Quiescing, Restarting, Restoring, Succeeded or Failed; empty
	// until the controller picks the rollout up.
	Phase       string     `json:"phase"`
	Progress    string     `json:"progress,omitempty"`
	Message     string     `json:"message,omitempty"`
	CurrentNode string     `json:"currentNode,omitempty"`
	Created     *time.Time `json:"created,omitempty"`
	Started     *time.Time `json:"started,omitempty"`
	Completed   *time.Time `json:"completed,omitempty"`
	NextWindow  *time.Time `json:"nextWindow,omitempty"`
	// DurationSeconds is Completed-Started, or now-Started while it runs.
	DurationSeconds *int64                  `json:"durationSeconds,omitempty"`
	Snapshot        *api.EtcdSnapshotStatus `json:"snapshot,omitempty"`
	Quiesced        []QuiescedStep          `json:"quiesced,omitempty"`
	Nodes           []ControlPlaneNodeStep  `json:"nodes,omitempty"`
	Conditions      []RolloutCondition      `json:"conditions,omitempty"`
}

// ControlPlaneNodeStep is one node of a ControlPlaneRollout, as its node agent reported it.
type ControlPlaneNodeStep struct {
	Name string `json:"name"`
	// Phase is Pending, InProgress, Succeeded or Failed; Step Health, Snapshot, Renew, Restart,
	// Kubeconfigs, HealthAfter or Done.
	Phase            string                  `json:"phase"`
	Step             string                  `json:"step,omitempty"`
	StartedAt        *time.Time              `json:"startedAt,omitempty"`
	CompletedAt      *time.Time              `json:"completedAt,omitempty"`
	DurationSeconds  *int64                  `json:"durationSeconds,omitempty"`
	Message          string                  `json:"message,omitempty"`
	Health           *api.ControlPlaneHealth `json:"health,omitempty"`
	Renewed          []api.RenewedFile       `json:"renewed,omitempty"`
	Components       []api.ComponentRestart  `json:"components,omitempty"`
	KubeconfigCopies []api.CopiedFile        `json:"kubeconfigCopies,omitempty"`
}
