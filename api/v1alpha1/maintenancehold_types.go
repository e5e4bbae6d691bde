package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaintenanceHold keeps Deployments and StatefulSets at zero replicas for the length of a maintenance:
// the controller records each one's replica count (on the workload and in the status), scales it to
// zero, verifies no pod is left, and scales it back to zero whenever something (an HPA, a person)
// scales it up, until spec.release is set, spec.expiresAt passes or the hold is deleted. Then every
// workload gets back exactly the count it had.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mhold,categories=certrollout-all
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Release",type=boolean,JSONPath=`.spec.release`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MaintenanceHold struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MaintenanceHoldSpec   `json:"spec"`
	Status MaintenanceHoldStatus `json:"status,omitempty"`
}

// MaintenanceHoldSpec is what to hold and until when.
type MaintenanceHoldSpec struct {
	// targets are the workloads to hold at zero replicas. They are resolved once, when the hold starts,
	// and recorded in status.workloads: a workload that matches the selector later is not held. They
	// cannot change once set: create another hold.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="targets are immutable: release this hold and create another"
	Targets HoldTargets `json:"targets"`

	// expiresAt releases the hold at this time (RFC 3339) if nothing released it before. Empty: the hold
	// lasts until released or deleted.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// release, once true, scales every held workload back to its recorded count; the hold stays, with
	// phase Released, as the record of the maintenance. Deleting the hold releases it too. A released
	// hold cannot be held again (setting release back to false changes nothing): create another.
	// +optional
	Release bool `json:"release,omitempty"`
}

// HoldTargets picks the workloads of the hold's namespace to hold: by label, by name, or both.
// +kubebuilder:validation:XValidation:rule="has(self.selector) || (has(self.workloads) && size(self.workloads) > 0)",message="a MaintenanceHold needs targets: a selector or workloads"
type HoldTargets struct {
	// selector picks, by label, the Deployments and StatefulSets of the hold's namespace to hold.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// workloads names Deployments and StatefulSets of the hold's namespace to hold.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Workloads []ScalableWorkloadReference `json:"workloads,omitempty"`
}

// ScalableWorkloadReference names a workload that can be scaled to zero, in the referrer's namespace.
type ScalableWorkloadReference struct {
	// kind of the workload.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet
	Kind string `json:"kind"`
	// name of the workload.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// namespace may only repeat the hold's own: a hold never reaches another namespace. A different value
	// makes the hold invalid (Stalled).
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Key is "<kind>/<name>".
func (r ScalableWorkloadReference) Key() string { return r.Kind + "/" + r.Name }

// HoldPhase is where a hold is.
// +kubebuilder:validation:Enum=Pending;Draining;Held;Releasing;Released
type HoldPhase string

// Hold phases, in order.
const (
	// HoldPhasePending: the targets are not resolved yet, or cannot be (see the Stalled condition).
	HoldPhasePending HoldPhase = "Pending"
	// HoldPhaseDraining: workloads are being scaled to zero, or still have pods.
	HoldPhaseDraining HoldPhase = "Draining"
	// HoldPhaseHeld: every workload is at zero replicas with no pod left (verified).
	HoldPhaseHeld HoldPhase = "Held"
	// HoldPhaseReleasing: the hold was released (or expired, or is being deleted) and workloads are being
	// restored.
	HoldPhaseReleasing HoldPhase = "Releasing"
	// HoldPhaseReleased: every workload got its recorded count back.
	HoldPhaseReleased HoldPhase = "Released"
)

// HeldState is where one held workload is.
// +kubebuilder:validation:Enum=Pending;Draining;Held;Restored
type HeldState string

// Held workload states.
const (
	HeldPending  HeldState = "Pending"
	HeldDraining HeldState = "Draining"
	HeldHeld     HeldState = "Held"
	HeldRestored HeldState = "Restored"
)

// MaintenanceHoldStatus is the hold's progress.
type MaintenanceHoldStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase: Pending, Draining, Held, Releasing, Released.
	// +optional
	Phase HoldPhase `json:"phase,omitempty"`
	// message says what the hold is doing or waiting for, and whether something fights it.
	// +optional
	Message string `json:"message,omitempty"`
	// conditions are the kstatus ones: Ready (True when every workload is held and verified to have no
	// pod left, or, once released, when every one is restored), Reconciling (while draining or restoring),
	// Stalled (the targets cannot be held: another namespace, a workload that does not exist, a selector
	// that matches nothing). Each carries observedGeneration.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// heldAt is when every workload was first verified to have no pod left.
	// +optional
	HeldAt *metav1.Time `json:"heldAt,omitempty"`
	// releasedAt is when every workload was restored.
	// +optional
	ReleasedAt *metav1.Time `json:"releasedAt,omitempty"`
	// workloads are the held workloads with their original replica counts.
	// +optional
	// +listType=atomic
	Workloads []HeldWorkload `json:"workloads,omitempty"`
}

// HeldWorkload is one workload of a hold.
type HeldWorkload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// originalReplicas is the replica count it had before the hold scaled it to zero, and gets back.
	// +optional
	OriginalReplicas *int32 `json:"originalReplicas,omitempty"`
	// state: Pending, Draining, Held, Restored.
	State HeldState `json:"state"`
	// scaledDownAt, drainedAt and restoredAt are when it reached those states (drainedAt: the last time
	// it was verified to have no pod left).
	// +optional
	ScaledDownAt *metav1.Time `json:"scaledDownAt,omitempty"`
	// +optional
	DrainedAt *metav1.Time `json:"drainedAt,omitempty"`
	// +optional
	RestoredAt *metav1.Time `json:"restoredAt,omitempty"`
	// enforced counts the times the hold scaled it back to zero after something scaled it up.
	// +optional
	Enforced int32 `json:"enforced,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// +kubebuilder:object:root=true

// MaintenanceHoldList is a list of MaintenanceHolds.
type MaintenanceHoldList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MaintenanceHold `json:"items"`
}

// HoldQuiescer is the value of AnnotationQuiescedBy on a workload the MaintenanceHold name holds. A
// CertRollout's name cannot contain "/", so no rollout is ever mistaken for a hold, nor a hold for a
// rollout.
func HoldQuiescer(name string) string { return HoldQuiescerPrefix + name }

// HoldOf returns the MaintenanceHold an AnnotationQuiescedBy value names, and whether it names one.
func HoldOf(quiescedBy string) (string, bool) {
	name, ok := strings.CutPrefix(quiescedBy, HoldQuiescerPrefix)
	return name, ok && name != ""
}
