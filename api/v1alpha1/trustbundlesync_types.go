package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrustBundleSync keeps one key of a Secret or ConfigMap equal to the CA certificates found in its
// sources: the step of a CA renewal runbook that copies the renewed CA into the bundle an application
// reads (Kaptain's kubeflow-oidc-ca-bundle). The controller writes the target the moment a source
// changes, only when it runs with --trust-sync and has been granted that one object (the chart's
// trustSync.targets); the workloads that mount the target then roll through the usual path, once.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tbs,categories=certrollout-all
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.name`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.spec.target.key`
// +kubebuilder:printcolumn:name="CAs",type=integer,JSONPath=`.status.certificates`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrustBundleSync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TrustBundleSyncSpec   `json:"spec"`
	Status TrustBundleSyncStatus `json:"status,omitempty"`
}

// TrustBundleSyncSpec is where the CA certificates come from and where they go.
type TrustBundleSyncSpec struct {
	// sources are read in order; their CA certificates are concatenated, without duplicates, into the
	// target. A source that is missing, or holds no CA certificate, stops the sync (the target keeps what
	// it has) rather than drop a CA its readers trust.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Sources []TrustBundleSource `json:"sources"`

	// target is the key to keep equal to the sources' CA certificates, in this namespace. The Secret or
	// ConfigMap must exist (the controller is granted update on it by name, not create); its other keys
	// are left alone.
	Target TrustBundleTarget `json:"target"`

	// keepPrevious keeps a CA certificate that left the sources in the target for this long (and never
	// past its expiry), so readers trust both the old and the new CA while leaves signed by the old one
	// are replaced. Empty: a CA leaves the target when it leaves the sources.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('8760h')",message="keepPrevious is between 0 and 8760h (a year)"
	KeepPrevious *metav1.Duration `json:"keepPrevious,omitempty"`
}

// TrustBundleSource is one place CA certificates are read from: exactly one of secret, configMap and
// certificate.
// +kubebuilder:validation:XValidation:rule="[has(self.secret), has(self.configMap), has(self.certificate)].filter(x, x).size() == 1",message="a source is exactly one of secret, configMap and certificate"
type TrustBundleSource struct {
	// secret is a key of a Secret (for example ca.crt of a CA's Secret, or tls.crt of the CA itself).
	// +optional
	Secret *KeySelector `json:"secret,omitempty"`
	// configMap is a key of a ConfigMap (a CA bundle).
	// +optional
	ConfigMap *KeySelector `json:"configMap,omitempty"`
	// certificate is a cert-manager Certificate: the ca.crt of the Secret it issues.
	// +optional
	Certificate *ObjectSelector `json:"certificate,omitempty"`
}

// KeySelector names a key of a Secret or ConfigMap.
type KeySelector struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// namespace of the object; empty for the TrustBundleSync's own. The author must be allowed to read
	// the object (the admission policy checks it).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// key holding PEM certificates.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// ObjectSelector names an object, in this namespace or another.
type ObjectSelector struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// namespace of the object; empty for the TrustBundleSync's own.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// TrustBundleTarget is the key the sync writes.
type TrustBundleTarget struct {
	// kind: Secret or ConfigMap.
	// +kubebuilder:validation:Enum=Secret;ConfigMap
	Kind string `json:"kind"`
	// name of the object, in the TrustBundleSync's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// key to write (for example ca.crt).
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// TrustBundleSyncStatus is what the target holds and why.
type TrustBundleSyncStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (the target holds exactly the sources' CA certificates, and those kept from
	// before; False names what stops it: a missing source, a source without a CA, a missing target, no
	// right to write it, another sync writing the same key, the controller's --trust-sync off), and the
	// kstatus Stalled whenever Ready is False: nothing moves until an object or a person changes.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// certificates is how many CA certificates the target holds.
	// +optional
	Certificates int32 `json:"certificates"`
	// fingerprints are the SHA-256 fingerprints of the target's CA certificates, in the target's order
	// (a system bundle holds a few hundred).
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	Fingerprints []string `json:"fingerprints,omitempty"`
	// retained are the CA certificates kept after they left the sources (keepPrevious).
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	Retained []RetainedCA `json:"retained,omitempty"`
	// lastSyncTime is when the controller last wrote the target.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// RetainedCA is a CA certificate kept in the target after it left the sources.
type RetainedCA struct {
	// fingerprint is its SHA-256 fingerprint.
	Fingerprint string `json:"fingerprint"`
	// subject of the CA.
	// +optional
	Subject string `json:"subject,omitempty"`
	// leftSourcesAt is when the sync first saw it gone from the sources.
	LeftSourcesAt metav1.Time `json:"leftSourcesAt"`
	// until is when it leaves the target: leftSourcesAt plus keepPrevious, or its expiry if sooner.
	Until metav1.Time `json:"until"`
}

// Condition reasons of a TrustBundleSync.
const (
	ReasonSynced          = "Synced"
	ReasonSourceMissing   = "SourceMissing"
	ReasonSourceHasNoCA   = "SourceHasNoCA"
	ReasonTargetMissing   = "TargetMissing"
	ReasonTargetForbidden = "TargetForbidden"
	// ReasonTargetConflict: an older TrustBundleSync writes the same key of the same object.
	ReasonTargetConflict = "TargetConflict"
	ReasonSyncDisabled   = "SyncDisabled"
	// ReasonBundleWritten is the Event when the target changed.
	ReasonBundleWritten = "BundleWritten"
)

// +kubebuilder:object:root=true

// TrustBundleSyncList is a list of TrustBundleSyncs.
type TrustBundleSyncList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrustBundleSync `json:"items"`
}
