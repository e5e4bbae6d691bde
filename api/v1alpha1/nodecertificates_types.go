package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeCertificates is what the node agent (`certrollout node-agent`, a DaemonSet on control-plane nodes)
// found on one node: the kubeadm PKI and kubeconfigs, the kubelet's client and serving certificates, an
// external etcd's certificate folder, and, for each control-plane component running there, whether it
// serves or uses the certificates now on disk. One object per node, named after it, written only by the
// agent on that node (the admission policy compares the name with the node its token is bound to); the
// Node owns it, so it goes when the node goes. `certrollout check --control-plane` reads these, so nobody
// needs ssh to see every node's certificates.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nodecerts,categories=certrollout-all
// +kubebuilder:printcolumn:name="Files",type=integer,JSONPath=`.status.fileCount`
// +kubebuilder:printcolumn:name="Soonest",type=date,JSONPath=`.status.soonestExpiry`
// +kubebuilder:printcolumn:name="Serving-Old",type=integer,JSONPath=`.status.componentsServingOld`
// +kubebuilder:printcolumn:name="Observed",type=date,JSONPath=`.status.observedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeCertificates struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status NodeCertificatesStatus `json:"status,omitempty"`
}

// NodeCertificatesStatus is one scan of a node.
type NodeCertificatesStatus struct {
	// observedAt is when the agent last scanned the node. The agent writes at least every few minutes even
	// when nothing changed, so an old observedAt means the agent is gone.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
	// agentVersion is the version of the agent that wrote this.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// kubeadmDir is the host folder read as kubeadm's (normally /etc/kubernetes).
	// +optional
	KubeadmDir string `json:"kubeadmDir,omitempty"`
	// files are the certificates found, CAs included, in kubeadm's order (kubeadm's, then the kubelet's,
	// then an external etcd's).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Files []NodeCertificateFile `json:"files,omitempty"`
	// fileCount is len(files), for kubectl's columns.
	// +optional
	FileCount int32 `json:"fileCount,omitempty"`
	// soonestExpiry is the earliest notAfter of files.
	// +optional
	SoonestExpiry *metav1.Time `json:"soonestExpiry,omitempty"`
	// components are the control-plane components of the node (from its static pod manifests) and the
	// kubelet, each with what it serves or uses.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Components []ControlPlaneComponent `json:"components,omitempty"`
	// componentsServingOld counts components in state ServesOld.
	// +optional
	ComponentsServingOld int32 `json:"componentsServingOld,omitempty"`
	// problems are files that could not be read or parsed, and why.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Problems []NodeProblem `json:"problems,omitempty"`
	// operation is the agent's report on the ControlPlaneRollout it works on, or last worked on, for this
	// node.
	// +optional
	Operation *NodeOperation `json:"operation,omitempty"`
	// rollouts says what the agent can do for ControlPlaneRollouts on this node. Absent: an agent that
	// does not say (older than the field), which the controller takes as not taking part.
	// +optional
	Rollouts *NodeRolloutAbilities `json:"rollouts,omitempty"`
	// conditions: Ready is True when the last scan found a kubeadm folder and read it.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeCertificateFile is one certificate file (or kubeconfig) on the node.
type NodeCertificateFile struct {
	// name is kubeadm's name for it ("apiserver", "etcd-peer", "admin.conf", "ca"), "kubelet-client" and
	// "kubelet-serving" for the kubelet's, or "etcd/<file>" for an external etcd's.
	Name string `json:"name"`
	// path is the file on the host.
	Path string `json:"path"`
	// set is which set it belongs to: kubeadm, kubelet or etcd (an external etcd's folder).
	// +kubebuilder:validation:Enum=kubeadm;kubelet;etcd
	Set string `json:"set"`
	// certificateAuthority is true for a CA (kubeadm's second table).
	// +optional
	CertificateAuthority bool `json:"certificateAuthority,omitempty"`
	// authority is the name of the node's CA that signed it ("ca", "etcd-ca", "front-proxy-ca"); empty
	// for a CA, a self-signed certificate or a signer not found on the node.
	// +optional
	Authority string `json:"authority,omitempty"`
	// externallyManaged: its CA's key is not on the node, so `kubeadm certs renew` cannot renew it.
	// +optional
	ExternallyManaged bool `json:"externallyManaged,omitempty"`
	// renewedBy says who renews it: Kubeadm (`kubeadm certs renew`), Kubelet (client certificate
	// rotation), Nobody (nothing renews it but a person: kubeadm's own CAs, which `certs renew` skips, and
	// the kubelet's self-signed serving certificate) or External (signed by a CA whose key is elsewhere,
	// an external etcd's folder).
	// +kubebuilder:validation:Enum=Kubeadm;Kubelet;Nobody;External
	RenewedBy string `json:"renewedBy"`
	// subject and issuer, as distinguished names.
	Subject string `json:"subject"`
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// notBefore and notAfter of the certificate (for a kubeconfig, of its client certificate).
	NotBefore metav1.Time `json:"notBefore"`
	NotAfter  metav1.Time `json:"notAfter"`
	// fingerprint is the certificate's SHA-256 fingerprint.
	Fingerprint string `json:"fingerprint"`
	// since is when this certificate appeared at this path: when the agent first saw the fingerprint
	// change, or, the first time it looked, the file's modification time. kubeadm backdates notBefore,
	// so notBefore does not say when a file was renewed; a component started before since has not
	// loaded it.
	Since metav1.Time `json:"since"`
}

// Component states.
const (
	// ComponentCurrent: it serves the certificates on disk and started after its client certificates
	// were written (or reloads them itself).
	ComponentCurrent = "Current"
	// ComponentServesOld: it serves a certificate other than the file's, or started before a client
	// certificate it cannot reload was renewed: a restart is needed.
	ComponentServesOld = "ServesOld"
	// ComponentNotRunning: its manifest is there but no container of it runs.
	ComponentNotRunning = "NotRunning"
	// ComponentUnreachable: it runs but its TLS endpoint did not answer.
	ComponentUnreachable = "Unreachable"
)

// How a component uses a file.
const (
	// UseServing: the component serves the file's certificate on an endpoint; the agent connects and
	// compares.
	UseServing = "Serving"
	// UseClient: the component presents the file's certificate as a client; the agent compares the
	// component's start time with the file's since.
	UseClient = "Client"
)

// ControlPlaneComponent is one component on the node and what it serves or uses.
type ControlPlaneComponent struct {
	// name: kube-apiserver, kube-controller-manager, kube-scheduler, etcd or kubelet.
	Name string `json:"name"`
	// state sums up checks: ServesOld if any check is, else Unreachable, else Current; NotRunning when no
	// container of it runs.
	// +kubebuilder:validation:Enum=Current;ServesOld;NotRunning;Unreachable
	State string `json:"state"`
	// manifest is its static pod manifest on the host; empty for the kubelet.
	// +optional
	Manifest string `json:"manifest,omitempty"`
	// startedAt is when its running container started (the kubelet's report on the mirror pod).
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// oldSince is, in state ServesOld, the earliest since of a file it has not picked up.
	// +optional
	OldSince *metav1.Time `json:"oldSince,omitempty"`
	// message says why, in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
	// checks are the files it serves or uses, one check each.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Checks []ComponentCheck `json:"checks,omitempty"`
}

// ComponentCheck is one file a component serves or uses, and what was seen.
type ComponentCheck struct {
	// file is the name of the file (as in files).
	File string `json:"file"`
	// use is Serving or Client.
	// +kubebuilder:validation:Enum=Serving;Client
	Use string `json:"use"`
	// endpoint is the host:port connected to, for Serving.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// expected is the fingerprint of the file now.
	// +optional
	Expected string `json:"expected,omitempty"`
	// served is the fingerprint of the leaf the endpoint presented, for Serving.
	// +optional
	Served string `json:"served,omitempty"`
	// reloads: the component reloads this file by itself (a Client check is then Current whenever it
	// started).
	// +optional
	Reloads bool `json:"reloads,omitempty"`
	// state of this check: Current, ServesOld, NotRunning or Unreachable.
	// +kubebuilder:validation:Enum=Current;ServesOld;NotRunning;Unreachable
	State string `json:"state"`
	// message says why, in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeProblem is a file the agent could not read or parse.
type NodeProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Values of NodeCertificateFile.Set and .RenewedBy.
const (
	FileSetKubeadm = "kubeadm"
	FileSetKubelet = "kubelet"
	FileSetEtcd    = "etcd"

	RenewedByKubeadm  = "Kubeadm"
	RenewedByKubelet  = "Kubelet"
	RenewedByNobody   = "Nobody"
	RenewedByExternal = "External"
)

// Reasons of a NodeCertificates' Ready condition.
const (
	ReasonScanned         = "Scanned"
	ReasonNoKubeadmFolder = "NoKubeadmFolder"
	ReasonScanIncomplete  = "ScanIncomplete"
)

// +kubebuilder:object:root=true

// NodeCertificatesList is a list of NodeCertificates.
type NodeCertificatesList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeCertificates `json:"items"`
}

// NodeRolloutAbilities say what a node agent can do for ControlPlaneRollouts on its node, so the
// controller refuses a rollout its agents could not carry out before it touches anything.
type NodeRolloutAbilities struct {
	// enabled: the agent does its node's part of ControlPlaneRollouts (node-agent
	// --control-plane-rollouts; chart: nodeAgent.controlPlaneRollouts.enabled).
	Enabled bool `json:"enabled"`
	// canRenew: the agent can write the kubeadm folder and its pki folder, so it can renew certificates
	// and kubeconfigs (chart: nodeAgent.controlPlaneRollouts.renew mounts them writable). The agent tries
	// at every scan, creating and removing a hidden file in each.
	CanRenew bool `json:"canRenew"`
	// message says why it cannot renew.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}
