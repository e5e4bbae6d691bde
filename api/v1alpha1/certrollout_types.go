package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CertRollout is the durable record of one orchestrated restart: which workloads, why, under which
// policy, and how far it got. The controller creates one when workloads a RolloutPolicy governs run on old
// certificates; create one yourself (kubectl create -f, or certrollout restart) to restart by hand. Its
// status is the whole progress, so a controller that crashes resumes where it stopped, and every quiesced
// workload's original replica count is kept here and on the workload itself.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cro,categories=certrollout-all
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policy`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Started",type=date,JSONPath=`.status.startTime`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="(has(self.spec.policy) && size(self.spec.policy) > 0) || (has(self.spec.targets) && size(self.spec.targets) > 0) || has(self.spec.cascade)",message="a CertRollout needs a policy, targets or a cascade"
type CertRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CertRolloutSpec   `json:"spec"`
	Status CertRolloutStatus `json:"status,omitempty"`
}

// CertRolloutSpec is what to restart and why. It cannot change once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new CertRollout"
type CertRolloutSpec struct {
	// policy names the RolloutPolicy in this namespace whose windows, quiesce list, order and timeouts
	// the rollout follows. Empty: no window, nothing quiesced, serial, default timeouts.
	// +optional
	Policy string `json:"policy,omitempty"`

	// targets are the workloads to restart, in order. Empty: every workload the policy selects.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Targets []WorkloadReference `json:"targets,omitempty"`

	// trigger is why the rollout exists; Manual unless said otherwise.
	// +optional
	// +kubebuilder:default={}
	Trigger RolloutTrigger `json:"trigger,omitempty"`

	// cascade, on the rollouts the controller creates when a CA rotates (trigger CARotated), re-issues the
	// leaf Certificates a CA issuer signed under a previous CA certificate, after the workloads that trust
	// the CA have rolled onto the new one.
	// +optional
	Cascade *CascadeSpec `json:"cascade,omitempty"`

	// emergency starts the rollout at once: whatever the policy's maintenance windows say, even when the
	// policy is suspended or invalid, and ahead of other namespaces' rollouts (--max-concurrent-rollouts).
	// It still takes only its namespace's share of running rollouts, and still quiesces, orders and
	// health-gates as the policy says. Creating a CertRollout with it needs the verb "emergency" on
	// certrollouts (the admission policy checks it; the ClusterRole certrollout-emergency grants it).
	// certrollout restart --now --reason sets it.
	// +optional
	Emergency *EmergencySpec `json:"emergency,omitempty"`
}

// EmergencySpec records who asked for an emergency rollout and why.
type EmergencySpec struct {
	// reason is why the rollout cannot wait (the outage, the ticket), recorded on its Events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
	// requestedBy is the user who asked for it. The admission policy refuses a value other than the
	// creating user's name (certrollout restart --now fills it in).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	RequestedBy string `json:"requestedBy,omitempty"`
}

// CascadeSpec says which CA rotated and how fast to re-issue what it signed.
type CascadeSpec struct {
	// issuerRef is the cert-manager CA Issuer (in the rollout's namespace) or ClusterIssuer.
	IssuerRef IssuerReference `json:"issuerRef"`
	// caFingerprint is the SHA-256 fingerprint of the CA certificate the leaves are re-issued under.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	CAFingerprint string `json:"caFingerprint"`
	// maxConcurrent bounds the leaves being re-issued at once.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`
}

// IssuerReference names a cert-manager issuer.
type IssuerReference struct {
	// kind: Issuer or ClusterIssuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	Kind string `json:"kind"`
	// name of the issuer.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// WorkloadReference names a workload in the CertRollout's (or policy's) namespace.
type WorkloadReference struct {
	// kind of the workload.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	Kind string `json:"kind"`
	// name of the workload.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// namespace may only repeat the rollout's own; a different value fails the rollout.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// RolloutTrigger is why a rollout exists.
type RolloutTrigger struct {
	// type: CertificateRenewed (the targets' certificates changed), Deadline (a certificate the targets run
	// on expires within the policy's expiryDeadline), Manual, or CARotated (a CA issuer's certificate
	// changed: see cascade).
	// +optional
	// +kubebuilder:default=Manual
	// +kubebuilder:validation:Enum=CertificateRenewed;Deadline;Manual;CARotated
	Type TriggerType `json:"type,omitempty"`
	// certificates is the certificate set each target is restarted onto, keyed "Kind/name", as the
	// controller (or certrollout renew --restart) computed it when it created the rollout. A target whose
	// ledger already records that set, because something else restarted it, is skipped rather than
	// restarted a second time for one renewal. A target without an entry is always restarted.
	// +optional
	Certificates map[string]string `json:"certificates,omitempty"`
	// message explains the trigger (which Secrets changed, which certificate expires when).
	// +optional
	Message string `json:"message,omitempty"`
}

// TriggerType is why a rollout exists.
type TriggerType string

// Trigger types.
const (
	TriggerCertificateRenewed TriggerType = "CertificateRenewed"
	TriggerDeadline           TriggerType = "Deadline"
	TriggerManual             TriggerType = "Manual"
	TriggerCARotated          TriggerType = "CARotated"
)

// RolloutPhase is where a rollout is.
// +kubebuilder:validation:Enum=Pending;WaitingForWindow;RefreshingTrust;Reissuing;Quiescing;Restarting;Restoring;Succeeded;Failed
type RolloutPhase string

// Phases, in order.
const (
	PhasePending          RolloutPhase = "Pending"
	PhaseWaitingForWindow RolloutPhase = "WaitingForWindow"
	// PhaseRefreshingTrust: a cascade waits for the workloads that trust the CA to roll onto it.
	PhaseRefreshingTrust RolloutPhase = "RefreshingTrust"
	// PhaseReissuing: a cascade re-issues the CA's leaves.
	PhaseReissuing  RolloutPhase = "Reissuing"
	PhaseQuiescing  RolloutPhase = "Quiescing"
	PhaseRestarting RolloutPhase = "Restarting"
	PhaseRestoring  RolloutPhase = "Restoring"
	PhaseSucceeded  RolloutPhase = "Succeeded"
	PhaseFailed     RolloutPhase = "Failed"
)

// Finished reports whether the phase is final.
func (p RolloutPhase) Finished() bool { return p == PhaseSucceeded || p == PhaseFailed }

// CertRolloutStatus is the rollout's progress.
type CertRolloutStatus struct {
	// phase: Pending, WaitingForWindow, Quiescing, Restarting, Restoring, then Succeeded or Failed.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// progress reads like "2/3 restarted".
	// +optional
	Progress string `json:"progress,omitempty"`
	// message says what the rollout is doing or why it failed.
	// +optional
	Message string `json:"message,omitempty"`
	// conditions: Complete, and Failed with the reason.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// nextWindow is when the rollout may start, while it waits for a window.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// expiryDeadline is when a certificate the targets run on comes within the policy's expiryDeadline:
	// from then on the rollout starts whatever the maintenance windows say. Set while it waits to start.
	// +optional
	ExpiryDeadline *metav1.Time `json:"expiryDeadline,omitempty"`
	// startTime is when the rollout left Pending and WaitingForWindow.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when it succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// trustedBy are the workloads a cascade waits for before it re-issues any leaf: they use the CA's
	// certificate (the CA Secret, a bundle holding it, a leaf Secret's ca.crt only).
	// +optional
	// +listType=atomic
	TrustedBy []TrustingWorkload `json:"trustedBy,omitempty"`
	// certificates are the leaves a cascade re-issues, with their progress.
	// +optional
	// +listType=atomic
	Certificates []LeafStatus `json:"certificates,omitempty"`
	// quiesced are the workloads scaled to zero for the rollout, with their original replica counts.
	// +optional
	// +listType=atomic
	Quiesced []QuiescedWorkload `json:"quiesced,omitempty"`
	// targets are the restarted workloads, in order, with their progress.
	// +optional
	// +listType=atomic
	Targets []TargetStatus `json:"targets,omitempty"`
}

// QuiescedWorkload is a workload scaled to zero for a rollout.
type QuiescedWorkload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// originalReplicas is the replica count it had before it was scaled to zero, and gets back.
	// +optional
	OriginalReplicas *int32 `json:"originalReplicas,omitempty"`
	// state: Pending, Draining, Drained, DrainTimedOut, Restored.
	State QuiesceState `json:"state"`
	// scaledDownAt, drainedAt and restoredAt are when it reached those states.
	// +optional
	ScaledDownAt *metav1.Time `json:"scaledDownAt,omitempty"`
	// +optional
	DrainedAt *metav1.Time `json:"drainedAt,omitempty"`
	// +optional
	RestoredAt *metav1.Time `json:"restoredAt,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// QuiesceState is where a quiesced workload is.
type QuiesceState string

// Quiesce states.
const (
	QuiescePending       QuiesceState = "Pending"
	QuiesceDraining      QuiesceState = "Draining"
	QuiesceDrained       QuiesceState = "Drained"
	QuiesceDrainTimedOut QuiesceState = "DrainTimedOut"
	QuiesceRestored      QuiesceState = "Restored"
)

// TargetStatus is the progress of one restarted workload.
type TargetStatus struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// state: Pending, Restarting, Succeeded, Failed, Skipped, UpToDate.
	State TargetState `json:"state"`
	// step is the 1-based group the target restarts in (the policy's steps, or its certrollout.io/order
	// annotation): no target starts before every target of an earlier step has finished. Absent when the
	// rollout has a single group.
	// +optional
	Step int32 `json:"step,omitempty"`
	// restartValue is what was written to the pod template to roll it.
	// +optional
	RestartValue string `json:"restartValue,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// verification is what TLS probes of the target's new pods found once its rollout finished (targets
	// that declare TLS ports: annotation certrollout.io/probe, or container ports named https or *tls*):
	// Verified when every pod serves the certificates it was restarted onto, NotVerified when one does not
	// (the message names it) or none answered before the health timeout. Absent when not probed.
	// +optional
	// +kubebuilder:validation:Enum=Verified;NotVerified
	Verification string `json:"verification,omitempty"`
}

// Target verifications (TargetStatus.Verification).
const (
	TargetVerified    = "Verified"
	TargetNotVerified = "NotVerified"
)

// TargetState is where a target is.
type TargetState string

// Target states.
const (
	TargetPending    TargetState = "Pending"
	TargetRestarting TargetState = "Restarting"
	TargetSucceeded  TargetState = "Succeeded"
	TargetFailed     TargetState = "Failed"
	TargetSkipped    TargetState = "Skipped"
	// TargetUpToDate: the target already ran on the certificates the rollout rolls it onto (another
	// restart put it there before the rollout reached it), so it was not restarted again.
	TargetUpToDate TargetState = "UpToDate"
)

// LegacyUpToDatePrefix starts the message of an up-to-date target as controllers before TargetUpToDate
// stored it: state Skipped with this message. Still read, so a cluster upgraded mid-rollout counts
// them right.
const LegacyUpToDatePrefix = "already runs on certificates "

// IsUpToDate reports whether the target was found up to date rather than restarted: state UpToDate, or
// the Skipped form stored before that state existed.
func (t TargetStatus) IsUpToDate() bool {
	return t.State == TargetUpToDate || (t.State == TargetSkipped && strings.HasPrefix(t.Message, LegacyUpToDatePrefix))
}

// Condition types of CertRollout.
const (
	ConditionComplete = "Complete"
	ConditionFailed   = "Failed"
	// ConditionEmergency is True, reason EmergencyStart, once an emergency rollout (spec.emergency) has
	// started; its message says who asked, why, and what the start overrode.
	ConditionEmergency = "Emergency"
	// ConditionVerified is True when every restarted target that declares TLS ports serves its new
	// certificates, as probes showed, and False naming the targets and pods that do not. Absent when no
	// target was probed.
	ConditionVerified = "Verified"
)

// +kubebuilder:object:root=true

// CertRolloutList is a list of CertRollouts.
type CertRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CertRollout `json:"items"`
}

// TrustingWorkload is a workload that uses a rotated CA's certificate, as a cascade waits for it.
type TrustingWorkload struct {
	// kind of the workload.
	Kind string `json:"kind"`
	// namespace and name of the workload.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// state: Pending (its pods run on the previous CA), Current (they run on the new one), or NotWaitedFor
	// (certrollout may not or cannot restart it: not enabled, paused, OnDelete; see message).
	State TrustState `json:"state"`
	// message says why, for NotWaitedFor.
	// +optional
	Message string `json:"message,omitempty"`
}

// TrustState is where a trusting workload is.
// +kubebuilder:validation:Enum=Pending;Current;NotWaitedFor
type TrustState string

// Trust states.
const (
	TrustPending      TrustState = "Pending"
	TrustCurrent      TrustState = "Current"
	TrustNotWaitedFor TrustState = "NotWaitedFor"
)

// LeafStatus is one leaf Certificate a cascade re-issues.
type LeafStatus struct {
	// namespace and name of the cert-manager Certificate.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// state: Pending, Issuing, Issued or Failed.
	State LeafState `json:"state"`
	// previousRevision is status.revision when the cascade triggered it; revision the one it reached.
	// +optional
	PreviousRevision *int32 `json:"previousRevision,omitempty"`
	// +optional
	Revision *int32 `json:"revision,omitempty"`
	// startedAt is when re-issuance was triggered; finishedAt when it was issued or failed.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// message is cert-manager's, when it failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// LeafState is where a leaf's re-issuance is.
// +kubebuilder:validation:Enum=Pending;Issuing;Issued;Failed
type LeafState string

// Leaf states.
const (
	LeafPending LeafState = "Pending"
	LeafIssuing LeafState = "Issuing"
	LeafIssued  LeafState = "Issued"
	LeafFailed  LeafState = "Failed"
)

// Key is "<kind>/<name>", the way status, Events, the CLI and the rollout trigger name a workload.
func (r WorkloadReference) Key() string { return r.Kind + "/" + r.Name }
