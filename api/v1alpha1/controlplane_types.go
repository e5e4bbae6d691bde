package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ControlPlanePolicyName is the name of the one ControlPlanePolicy the controller reads.
const ControlPlanePolicyName = "default"

// ControlPlaneLeaseName is the coordination Lease a node agent holds while it works on its node, in the
// agent's namespace: no two control-plane nodes are ever in progress at once.
const ControlPlaneLeaseName = "certrollout-control-plane"

// ControlPlanePolicy says how certrollout renews certificates and restarts the static pods of a kubeadm
// control plane: when (maintenance windows, an expiry deadline), in which order (nodes, components),
// what to do first (an etcd snapshot, workloads to stop) and after (kubeconfig copies). There is one,
// named "default"; without it `certrollout restart --control-plane` still works with the defaults, and
// nothing starts by itself.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cppolicy,categories=certrollout-all
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Next-Window",type=date,JSONPath=`.status.nextWindow`
// +kubebuilder:printcolumn:name="Last-Rollout",type=string,JSONPath=`.status.lastRollout.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="there is one ControlPlanePolicy and it is named default"
type ControlPlanePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ControlPlanePolicySpec   `json:"spec,omitempty"`
	Status ControlPlanePolicyStatus `json:"status,omitempty"`
}

// ControlPlanePolicySpec is how control-plane rollouts run. A rollout copies it when it starts: a change
// reaches the next rollout, never one in progress.
type ControlPlanePolicySpec struct {
	// trigger: Automatic creates a ControlPlaneRollout when a node agent reports a component serving an
	// old certificate or a kubeadm certificate within renewal.renewBefore of expiry; Manual leaves it to
	// `certrollout restart --control-plane`.
	// +optional
	// +kubebuilder:default=Automatic
	Trigger ControlPlaneTriggerMode `json:"trigger,omitempty"`
	// suspend stops rollouts from starting (an emergency rollout still starts); one in progress finishes.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// windows are when rollouts may start; none: any time.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Windows []MaintenanceWindow `json:"windows,omitempty"`
	// expiryDeadline: a rollout starts whatever the windows say once a certificate it renews or a
	// component serves expires within this long. At most 8760h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('8760h')",message="expiryDeadline is at most 8760h"
	ExpiryDeadline *metav1.Duration `json:"expiryDeadline,omitempty"`
	// renewal of the kubeadm certificates on each node before its components restart.
	// +optional
	Renewal ControlPlaneRenewal `json:"renewal,omitempty"`
	// etcdSnapshot is taken before the first node, as the runbook says (on by default).
	// +optional
	EtcdSnapshot EtcdSnapshotSettings `json:"etcdSnapshot,omitempty"`
	// nodeOrder lists nodes to do first, in this order (the primary control-plane node first); the
	// others follow by name.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	NodeOrder []string `json:"nodeOrder,omitempty"`
	// componentOrder is the order components restart on a node; default kube-apiserver,
	// kube-scheduler, kube-controller-manager, etcd. etcd, if listed, is last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:Enum=kube-apiserver;kube-scheduler;kube-controller-manager;etcd
	// +kubebuilder:validation:XValidation:rule="!self.exists(c, c == 'etcd') || self[size(self) - 1] == 'etcd'",message="etcd restarts last"
	// +kubebuilder:validation:XValidation:rule="self.all(c, self.filter(d, d == c).size() == 1)",message="a component is listed once"
	ComponentOrder []string `json:"componentOrder,omitempty"`
	// healthTimeout is how long a restarted component, and the cluster after a node, may take to be
	// healthy and serve the new certificate; default 5m, at most 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="healthTimeout is at most 1h (0: the default, 5m)"
	HealthTimeout metav1.Duration `json:"healthTimeout,omitempty"`
	// pauseBetweenNodes is how long to wait after a node before the next; default 30s, at most 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="pauseBetweenNodes is at most 1h"
	PauseBetweenNodes *metav1.Duration `json:"pauseBetweenNodes,omitempty"`
	// quiesce lists workloads to scale to zero before the first node and restore, to the replica count
	// they had, after the last (the runbook's "stop the provider first").
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Quiesce []ControlPlaneQuiesceTarget `json:"quiesce,omitempty"`
	// kubeconfigCopies are copies of kubeadm kubeconfigs that people use (the runbook's
	// /root/.kube/config from admin.conf), refreshed on each node after renewal, the previous copy kept
	// beside it. The node agent must mount the folder (chart: nodeAgent.controlPlaneRollouts.kubeconfigCopyDirs).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	KubeconfigCopies []KubeconfigCopy `json:"kubeconfigCopies,omitempty"`
}

// ControlPlaneTriggerMode is whether rollouts start by themselves.
// +kubebuilder:validation:Enum=Automatic;Manual
type ControlPlaneTriggerMode string

// Trigger modes.
const (
	ControlPlaneTriggerAutomatic ControlPlaneTriggerMode = "Automatic"
	ControlPlaneTriggerManual    ControlPlaneTriggerMode = "Manual"
)

// ControlPlaneRenewal is how the kubeadm certificates are renewed. A renewed certificate must outlive
// renewBefore, or it would be due again as soon as it is written and every rollout would renew it again.
// +kubebuilder:validation:XValidation:rule="!has(self.validity) || !has(self.renewBefore) || duration(self.validity) > duration(self.renewBefore)",message="validity must be longer than renewBefore (a renewed certificate would be due again at once)"
type ControlPlaneRenewal struct {
	// enabled renews, as `kubeadm certs renew` does, the files kubeadm renews that expire within
	// renewBefore; default true. The node agent needs the PKI folder writable (chart:
	// nodeAgent.controlPlaneRollouts.renew).
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// renewBefore: a file renews when it expires within this long; default 720h (30 days).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('8760h')",message="renewBefore is more than 0 and at most 8760h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
	// validity of a renewed certificate; default the cluster's kubeadm ClusterConfiguration
	// certificateValidityPeriod, else 8760h, as kubeadm does.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('87600h')",message="validity is between 1h and 87600h"
	Validity *metav1.Duration `json:"validity,omitempty"`
}

// EtcdSnapshotSettings say whether and where the etcd snapshot is kept.
type EtcdSnapshotSettings struct {
	// enabled takes a snapshot through etcd's snapshot API before the first node; default true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// hostPath is the folder on the node that takes it; default /var/lib/certrollout/etcd-snapshots. It
	// must be inside the node agent's state folder (--state-dir; the chart's
	// nodeAgent.controlPlaneRollouts.stateDir, default /var/lib/certrollout), the one folder of the host
	// it may write besides kubeadm's: elsewhere the node refuses at its Snapshot step, saying so.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="hostPath is an absolute path"
	HostPath string `json:"hostPath,omitempty"`
	// keep is how many snapshots certrollout keeps in hostPath (older ones it took are removed); default 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Keep int32 `json:"keep,omitempty"`
}

// ControlPlaneQuiesceTarget is a workload stopped while the control plane restarts.
type ControlPlaneQuiesceTarget struct {
	// kind of the workload.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet
	Kind string `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// drainTimeout is how long to wait for its pods to be gone; default 1h, at most 24h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="drainTimeout is at most 24h (0: the default, 1h)"
	DrainTimeout metav1.Duration `json:"drainTimeout,omitempty"`
}

// KubeconfigCopy is a copy of a kubeadm kubeconfig on every control-plane node.
type KubeconfigCopy struct {
	// from is the kubeadm kubeconfig copied.
	// +kubebuilder:validation:Enum=admin.conf;super-admin.conf;controller-manager.conf;scheduler.conf
	From string `json:"from"`
	// to is the copy's absolute path on the node, such as /root/.kube/config. It must be inside one of
	// the node agent's copy folders (--kubeconfig-copy-dirs; the chart's
	// nodeAgent.controlPlaneRollouts.kubeconfigCopyDirs), never in kubeadm's folder or the agent's state
	// folder, and no symbolic link may lead out of them: elsewhere the node fails at its Kubeconfigs step.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && !self.contains('/../') && !self.endsWith('/..')",message="to is an absolute path without .."
	To string `json:"to"`
}

// ControlPlanePolicyStatus is what the controller observed.
type ControlPlanePolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Valid (the windows parse), Blocked (a failed rollout stops automatic ones until it is
	// deleted or a rollout is started by hand).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// dueNodes are the nodes whose agents report a component serving an old certificate or a file due
	// for renewal.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	DueNodes []string `json:"dueNodes,omitempty"`
	// nextWindow is when the next window opens.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// lastRollout is the newest ControlPlaneRollout.
	// +optional
	LastRollout *RolloutReference `json:"lastRollout,omitempty"`
}

// +kubebuilder:object:root=true

// ControlPlanePolicyList is a list of ControlPlanePolicy.
type ControlPlanePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ControlPlanePolicy `json:"items"`
}

// ControlPlaneRollout is the durable record of one pass over the control-plane nodes: per node, in
// order and one at a time (the node agent holds the Lease certrollout-control-plane while it works),
// health checks, the etcd snapshot, renewal, the static pod restarts with the served certificates
// verified, and kubeconfig copies. Created by the controller (ControlPlanePolicy trigger Automatic) or by
// `certrollout restart --control-plane`. Its status is the whole progress: a controller or agent that
// crashes resumes from it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cpro,categories=certrollout-all
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.currentNode`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ControlPlaneRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ControlPlaneRolloutSpec   `json:"spec,omitempty"`
	Status ControlPlaneRolloutStatus `json:"status,omitempty"`
}

// ControlPlaneRolloutSpec is which nodes and why. It cannot change once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new ControlPlaneRollout"
type ControlPlaneRolloutSpec struct {
	// nodes to roll, a subset of the control-plane nodes; empty: every control-plane node.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	Nodes []string `json:"nodes,omitempty"`
	// trigger is why it exists: Manual, ServingOld (a component serves or uses an old certificate) or
	// Expiring (a certificate is within renewBefore of expiry).
	// +optional
	// +kubebuilder:default=Manual
	Trigger ControlPlaneTrigger `json:"trigger,omitempty"`
	// emergency starts the rollout at once, whatever the windows and suspension say (health checks
	// still gate every node). Creating one needs the verb emergency on controlplanerollouts.
	// +optional
	Emergency *EmergencySpec `json:"emergency,omitempty"`
}

// ControlPlaneTrigger is why a control-plane rollout was created.
// +kubebuilder:validation:Enum=Manual;ServingOld;Expiring
type ControlPlaneTrigger string

// Control-plane triggers.
const (
	ControlPlaneTriggerByHand    ControlPlaneTrigger = "Manual"
	ControlPlaneTriggerServesOld ControlPlaneTrigger = "ServingOld"
	ControlPlaneTriggerExpiring  ControlPlaneTrigger = "Expiring"
)

// ControlPlaneRolloutStatus is the rollout's progress.
type ControlPlaneRolloutStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase: Pending, WaitingForWindow, Quiescing, Restarting (node by node), Restoring, then Succeeded or
	// Failed.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// progress reads like "1/3 nodes".
	// +optional
	Progress string `json:"progress,omitempty"`
	// message says what it is doing or why it failed.
	// +optional
	Message string `json:"message,omitempty"`
	// conditions: Complete, Failed, Emergency, and kstatus' Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// nextWindow is when it may start, while it waits for a window.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// expiryDeadline is when it starts whatever the windows say.
	// +optional
	ExpiryDeadline *metav1.Time `json:"expiryDeadline,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// settings are the ControlPlanePolicy's spec (or the defaults) as it was when the rollout started.
	// +optional
	Settings *ControlPlanePolicySpec `json:"settings,omitempty"`
	// currentNode is the node in progress.
	// +optional
	CurrentNode string `json:"currentNode,omitempty"`
	// snapshot is the etcd snapshot taken before the first node.
	// +optional
	Snapshot *EtcdSnapshotStatus `json:"snapshot,omitempty"`
	// quiesced are the workloads stopped for the rollout, with their replica counts.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Quiesced []ControlPlaneQuiescedWorkload `json:"quiesced,omitempty"`
	// nodes are the nodes in the order they are done, each with its progress.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Nodes []ControlPlaneNodeStatus `json:"nodes,omitempty"`
}

// ControlPlaneQuiescedWorkload is a workload stopped for a control-plane rollout.
type ControlPlaneQuiescedWorkload struct {
	Namespace        string `json:"namespace"`
	QuiescedWorkload `json:",inline"`
}

// ControlPlaneNodeStatus is one node's progress in a rollout: the controller's decision (phase) and the
// agent's report.
type ControlPlaneNodeStatus struct {
	Name              string `json:"name"`
	NodeRolloutReport `json:",inline"`
}

// NodeRolloutReport is what the node agent did on its node for a rollout, step by step.
type NodeRolloutReport struct {
	// phase: Pending (not its turn), InProgress, Succeeded, Failed.
	// +kubebuilder:validation:Enum=Pending;InProgress;Succeeded;Failed
	Phase NodeRolloutPhase `json:"phase"`
	// step the agent is at: Health, Snapshot, Renew, Restart, Kubeconfigs, HealthAfter, Done.
	// +optional
	Step NodeRolloutStep `json:"step,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// message says what it is doing or why it failed, naming the component or member.
	// +optional
	Message string `json:"message,omitempty"`
	// health is the last health check: every API server's /readyz and every etcd member.
	// +optional
	Health *ControlPlaneHealth `json:"health,omitempty"`
	// renewed are the certificate files renewed, with their backups.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Renewed []RenewedFile `json:"renewed,omitempty"`
	// components are the node's components in restart order, each with what was done.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Components []ComponentRestart `json:"components,omitempty"`
	// kubeconfigCopies are the copies refreshed, with the previous copy's path.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	KubeconfigCopies []CopiedFile `json:"kubeconfigCopies,omitempty"`
}

// NodeRolloutPhase is where a node is in a rollout.
type NodeRolloutPhase string

// Node phases.
const (
	NodePending    NodeRolloutPhase = "Pending"
	NodeInProgress NodeRolloutPhase = "InProgress"
	NodeSucceeded  NodeRolloutPhase = "Succeeded"
	NodeFailed     NodeRolloutPhase = "Failed"
)

// NodeRolloutStep is the step the agent is at on its node.
// +kubebuilder:validation:Enum=Health;Snapshot;Renew;Restart;Kubeconfigs;HealthAfter;Done
type NodeRolloutStep string

// Node steps, in order.
const (
	StepHealth      NodeRolloutStep = "Health"
	StepSnapshot    NodeRolloutStep = "Snapshot"
	StepRenew       NodeRolloutStep = "Renew"
	StepRestart     NodeRolloutStep = "Restart"
	StepKubeconfigs NodeRolloutStep = "Kubeconfigs"
	StepHealthAfter NodeRolloutStep = "HealthAfter"
	StepDone        NodeRolloutStep = "Done"
)

// ControlPlaneHealth is one health check of the control plane, as seen from a node.
type ControlPlaneHealth struct {
	// checkedAt is when.
	CheckedAt metav1.Time `json:"checkedAt"`
	// healthy is true when every API server is ready and every etcd member healthy, with one leader
	// and no alarm.
	Healthy bool `json:"healthy"`
	// apiServers are the control-plane API servers' /readyz answers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	APIServers []EndpointHealth `json:"apiServers,omitempty"`
	// etcdMembers are etcd's members, each with its endpoint health and status.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	EtcdMembers []EndpointHealth `json:"etcdMembers,omitempty"`
	// reasons say, one sentence each, why it is not healthy.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Reasons []string `json:"reasons,omitempty"`
}

// EndpointHealth is one API server or etcd member.
type EndpointHealth struct {
	// name is the node (API server) or the member name (etcd).
	Name string `json:"name"`
	// endpoint is the URL checked.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	Healthy  bool   `json:"healthy"`
	// leader is true for etcd's leader.
	// +optional
	Leader bool `json:"leader,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// EtcdSnapshotStatus is an etcd snapshot taken for a rollout.
type EtcdSnapshotStatus struct {
	// node whose folder holds it.
	Node string `json:"node"`
	// path on that node.
	Path string `json:"path"`
	// sha256 of the file.
	SHA256 string `json:"sha256"`
	// size in bytes.
	Size int64 `json:"size"`
	// revision of etcd's keyspace in it.
	// +optional
	Revision int64 `json:"revision,omitempty"`
	// member that streamed it.
	// +optional
	Member  string      `json:"member,omitempty"`
	TakenAt metav1.Time `json:"takenAt"`
}

// RenewedFile is a certificate file renewed on a node.
type RenewedFile struct {
	// name is kubeadm's ("apiserver", "admin.conf").
	Name string `json:"name"`
	// +optional
	OldNotAfter *metav1.Time `json:"oldNotAfter,omitempty"`
	NewNotAfter metav1.Time  `json:"newNotAfter"`
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// backup is the folder on the node holding the files it replaced.
	// +optional
	Backup string `json:"backup,omitempty"`
}

// ComponentRestart is one component's part in a node's rollout.
type ComponentRestart struct {
	// name: kube-apiserver, kube-scheduler, kube-controller-manager or etcd.
	Name string `json:"name"`
	// state: Pending, Stopping (manifest moved out), Starting (manifest back), Verified (ready and serving
	// the certificates on disk), Skipped (nothing to do: see reason), Failed.
	// +kubebuilder:validation:Enum=Pending;Stopping;Starting;Verified;Skipped;Failed
	State ComponentRestartState `json:"state"`
	// reason for a skip or a restart, in a word: ServesOld, UsesOld, Current, ReloadsItself,
	// NoManifest, SystemdEtcd.
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	StoppedAt *metav1.Time `json:"stoppedAt,omitempty"`
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// ComponentRestartState is where a component's restart is.
type ComponentRestartState string

// Component restart states.
const (
	RestartPending  ComponentRestartState = "Pending"
	RestartStopping ComponentRestartState = "Stopping"
	RestartStarting ComponentRestartState = "Starting"
	RestartVerified ComponentRestartState = "Verified"
	RestartSkipped  ComponentRestartState = "Skipped"
	RestartFailed   ComponentRestartState = "Failed"
)

// CopiedFile is a file written on a node, and where its previous content went.
type CopiedFile struct {
	Path string `json:"path"`
	// +optional
	Backup string `json:"backup,omitempty"`
}

// NodeOperation is, in a NodeCertificates, the agent's report on the rollout it is working on (or last
// worked on) for its node.
type NodeOperation struct {
	// rollout is the ControlPlaneRollout's name, rolloutUID its UID (a rollout recreated under the same
	// name is another).
	Rollout    string `json:"rollout"`
	RolloutUID string `json:"rolloutUID"`
	// +optional
	Snapshot          *EtcdSnapshotStatus `json:"snapshot,omitempty"`
	NodeRolloutReport `json:",inline"`
}

// +kubebuilder:object:root=true

// ControlPlaneRolloutList is a list of ControlPlaneRollout.
type ControlPlaneRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ControlPlaneRollout `json:"items"`
}
