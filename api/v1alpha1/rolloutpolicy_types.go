package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutPolicy governs how and when the workloads it selects restart onto renewed certificates: only
// inside maintenance windows (unless the certificate they run on is about to expire), after quiescing the
// workloads that must not be interrupted, in order, one health-checked step at a time. A workload selected
// by a policy is restarted only through a CertRollout that follows it; workloads no policy selects are
// restarted by the controller directly.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rpol,categories=certrollout-all
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Workloads",type=integer,JSONPath=`.status.workloads`
// +kubebuilder:printcolumn:name="Stale",type=integer,JSONPath=`.status.staleWorkloadCount`
// +kubebuilder:printcolumn:name="Next Window",type=string,JSONPath=`.status.nextWindow`
// +kubebuilder:printcolumn:name="Last Rollout",type=string,JSONPath=`.status.lastRollout.name`
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.lastRollout.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a RolloutPolicy's name is at most 63 characters: it becomes the certrollout.io/policy label of its CertRollouts"
type RolloutPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutPolicySpec   `json:"spec"`
	Status RolloutPolicyStatus `json:"status,omitempty"`
}

// RolloutPolicySpec is how the selected workloads restart.
type RolloutPolicySpec struct {
	// selector picks, by label, the Deployments, StatefulSets and DaemonSets in the policy's namespace
	// that it governs. Quiesced workloads need not match it.
	Selector metav1.LabelSelector `json:"selector"`

	// quiesce lists workloads in the policy's namespace to scale to zero before the targets restart and to
	// restore afterwards to their exact replica count (recorded on the workload itself first, so it
	// survives a controller crash). Use it for workers that must finish their work before a service they
	// depend on restarts.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Quiesce []QuiesceTarget `json:"quiesce,omitempty"`

	// onDrainTimeout says what happens when a quiesced workload's pods are not gone within its
	// drainTimeout: Abort restores the quiesced workloads and fails the rollout without restarting
	// anything; Proceed restarts the targets anyway.
	// +optional
	// +kubebuilder:default=Abort
	OnDrainTimeout DrainTimeoutAction `json:"onDrainTimeout,omitempty"`

	// windows are the maintenance windows in which rollouts may start. Empty means any time. A rollout
	// that is due outside every window waits for the next one to open.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Windows []MaintenanceWindow `json:"windows,omitempty"`

	// expiryDeadline lets a rollout start outside the windows when a certificate the targets' pods run on
	// expires within this duration (for example "72h"), so a renewal 30 days before expiry waits for a
	// quiet hour but never for an outage. Empty means windows always apply.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('8760h')",message="expiryDeadline is between 0 and 8760h (a year)"
	ExpiryDeadline *metav1.Duration `json:"expiryDeadline,omitempty"`

	// order is Serial (one target at a time, in the order of the CertRollout's targets, each healthy
	// before the next starts) or Parallel (up to maxConcurrent at once).
	// +optional
	// +kubebuilder:default=Serial
	Order RolloutOrder `json:"order,omitempty"`

	// steps restart the targets in groups, in the order listed: every target of a step finishes its
	// rollout, healthy, before any target of the next step starts (a failure halts or continues as
	// onFailure says). Inside a step, order applies: Serial restarts one target at a time, Parallel up to
	// maxConcurrent at once. A target belongs to the first step that names or selects it; targets in no
	// step form a last one. Without steps, the targets' certrollout.io/order annotations make one step
	// per distinct value, lower first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Steps []RolloutStep `json:"steps,omitempty"`

	// maxConcurrent bounds the targets restarting at once with order Parallel.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`

	// healthTimeout is how long a restarted target may take to finish its rollout (every pod updated and
	// available, as `kubectl rollout status` judges it) before it counts as failed. At most 24h: a rollout holds one of its namespace's rollout slots while it waits.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="healthTimeout is at most 24h (0: the default, 10m)"
	HealthTimeout metav1.Duration `json:"healthTimeout,omitempty"`

	// onFailure says what happens when a target fails its health check: Halt leaves the remaining
	// targets alone and fails the rollout; Continue goes on with them. Quiesced workloads are restored in
	// both cases.
	// +optional
	// +kubebuilder:default=Halt
	OnFailure FailureAction `json:"onFailure,omitempty"`

	// verification says what a restarted target must prove. After its rollout finishes, the pods of a
	// target that declares TLS ports (annotation certrollout.io/probe, or container ports named https or
	// *tls*) are probed for the certificate they serve. Optional (the default) records the result on the
	// target and the rollout's Verified condition; Required also fails a target whose pods do not all
	// serve the new certificates by the health timeout, or that declares no TLS port to probe.
	// +optional
	// +kubebuilder:default=Optional
	Verification VerificationMode `json:"verification,omitempty"`

	// minRestartInterval is the least time between two restarts of one workload under this policy; it
	// replaces the controller's --min-restart-interval for these workloads. At most 720h (30 days).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="minRestartInterval is between 0 and 720h"
	MinRestartInterval *metav1.Duration `json:"minRestartInterval,omitempty"`

	// rolloutHistoryLimit is how many finished CertRollouts of the policy to keep; older ones are deleted.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	RolloutHistoryLimit int32 `json:"rolloutHistoryLimit,omitempty"`

	// suspend stops the policy from starting rollouts. Stale workloads are still reported in the status
	// and their rollouts start once the policy is resumed; a rollout already running completes.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// RolloutStep is one group of targets of a policy's rollouts: the workloads it names, and those its
// selector picks among the targets.
// +kubebuilder:validation:XValidation:rule="(has(self.workloads) && size(self.workloads) > 0) || has(self.selector)",message="a step names workloads or has a selector"
type RolloutStep struct {
	// name labels the step in status and plan, for example "management".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name,omitempty"`
	// workloads are targets by kind and name, in the policy's namespace.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Workloads []WorkloadReference `json:"workloads,omitempty"`
	// selector picks targets by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// QuiesceTarget is a workload to scale to zero while the targets restart.
type QuiesceTarget struct {
	// kind of the workload.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet
	Kind string `json:"kind"`
	// name of the workload, in the policy's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// namespace may only repeat the policy's own: a policy never reaches another namespace. A different
	// value makes the policy invalid.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// drainTimeout is how long to wait for the workload's pods to be gone (their termination grace
	// period included) after scaling it to zero. At most 24h: the workload stays at zero replicas, and
	// the rollout holds one of its namespace's rollout slots, while it waits.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="drainTimeout is at most 24h (0: the default, 1h)"
	DrainTimeout metav1.Duration `json:"drainTimeout,omitempty"`
}

// MaintenanceWindow is a recurring period in which rollouts may start.
type MaintenanceWindow struct {
	// schedule is when the window opens, as a 5-field cron expression (minute hour day-of-month month
	// day-of-week), for example "0 2 * * 6" for Saturdays at 02:00. Across daylight-saving changes it
	// behaves like a CronJob schedule: a local time the change skips does not occur that day, one it
	// repeats occurs twice.
	// The time zone goes in timeZone: a TZ= or CRON_TZ= prefix is refused, as in a CronJob's schedule.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.trim().startsWith('TZ=') && !self.trim().startsWith('CRON_TZ=')",message="schedule must not name a time zone (TZ= or CRON_TZ=): use timeZone"
	Schedule string `json:"schedule"`
	// duration is how long the window stays open, more than 0 and at most 168h (a week); a rollout must
	// start inside it and then runs to its end.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('168h')",message="duration is more than 0 and at most 168h"
	Duration metav1.Duration `json:"duration"`
	// timeZone is the IANA time zone of the schedule, for example "Europe/Berlin"; default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
}

// DrainTimeoutAction is what happens when quiesced workloads do not drain in time.
// +kubebuilder:validation:Enum=Abort;Proceed
type DrainTimeoutAction string

// Drain timeout actions.
const (
	DrainTimeoutAbort   DrainTimeoutAction = "Abort"
	DrainTimeoutProceed DrainTimeoutAction = "Proceed"
)

// RolloutOrder is how targets are restarted.
// +kubebuilder:validation:Enum=Serial;Parallel
type RolloutOrder string

// Rollout orders.
const (
	OrderSerial   RolloutOrder = "Serial"
	OrderParallel RolloutOrder = "Parallel"
)

// FailureAction is what happens after a target fails.
// +kubebuilder:validation:Enum=Halt;Continue
type FailureAction string

// Failure actions.
const (
	FailureHalt     FailureAction = "Halt"
	FailureContinue FailureAction = "Continue"
)

// VerificationMode is how much a restarted target must prove (RolloutPolicySpec.Verification).
// +kubebuilder:validation:Enum=Optional;Required
type VerificationMode string

// Verification modes.
const (
	VerificationOptional VerificationMode = "Optional"
	VerificationRequired VerificationMode = "Required"
)

// RolloutPolicyStatus is what the controller observed of the policy and its workloads.
type RolloutPolicyStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Valid (the spec can be followed; False names what is wrong), Pending (workloads run on
	// old certificates and wait for a rollout: for a window, a resume, or one in progress),
	// LastRolloutSucceeded (the result of the most recent finished rollout), and the kstatus conditions:
	// Ready (valid, and no governed workload waits for a restart), Reconciling (a rollout runs, or stale
	// workloads wait for their settle period or cooldown), Stalled (invalid, or the rollout for the
	// certificates the workloads need failed and is not retried on its own). Each carries
	// observedGeneration.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// workloads is how many workloads the selector matches.
	// +optional
	Workloads int32 `json:"workloads"`
	// staleWorkloadCount is how many of them have pods on old certificates.
	// +optional
	StaleWorkloadCount int32 `json:"staleWorkloadCount"`
	// staleWorkloads names them (at most 50).
	// +optional
	// +kubebuilder:validation:MaxItems=50
	StaleWorkloads []WorkloadReference `json:"staleWorkloads,omitempty"`
	// nextWindow is when the next maintenance window opens; empty when a window is open now or the policy
	// has none.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// lastRollout is the policy's most recent CertRollout.
	// +optional
	LastRollout *RolloutReference `json:"lastRollout,omitempty"`
}

// RolloutReference names a CertRollout and its phase.
type RolloutReference struct {
	Name  string       `json:"name"`
	Phase RolloutPhase `json:"phase,omitempty"`
}

// Condition types and reasons of RolloutPolicy.
const (
	ConditionValid                = "Valid"
	ConditionPending              = "Pending"
	ConditionLastRolloutSucceeded = "LastRolloutSucceeded"
)

// +kubebuilder:object:root=true

// RolloutPolicyList is a list of RolloutPolicies.
type RolloutPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutPolicy `json:"items"`
}
