// Package certmanager holds the few fields of cert-manager's API that certrollout reads: a Certificate's
// Secret, issuer and status (revision, renewal time, Ready), and an Issuer's or ClusterIssuer's CA Secret. Only these fields are decoded, so a cached
// Certificate costs little memory, and certrollout does not depend on cert-manager's module and its
// dependency tree (see design/2026-11-23-certificate-aware-restarts.md). The types are registered under
// cert-manager's own group and version; fields certrollout does not know are dropped on decode, so these
// types are for reading and for patches that name only their own fields, never for updates.
package certmanager

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is cert-manager's API group and version.
var GroupVersion = schema.GroupVersion{Group: "cert-manager.io", Version: "v1"}

// CertificateResource is the resource of Certificates, for discovery and RBAC checks.
var CertificateResource = GroupVersion.WithResource("certificates")

// IssuerResource and ClusterIssuerResource are the resources of Issuers and ClusterIssuers.
var (
	IssuerResource        = GroupVersion.WithResource("issuers")
	ClusterIssuerResource = GroupVersion.WithResource("clusterissuers")
)

// Issuer kinds, as a Certificate's spec.issuerRef.kind names them.
const (
	KindIssuer        = "Issuer"
	KindClusterIssuer = "ClusterIssuer"
)

// AddToScheme registers Certificate, Issuer and ClusterIssuer and their lists.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Certificate{}, &CertificateList{}, &Issuer{}, &IssuerList{}, &ClusterIssuer{}, &ClusterIssuerList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Certificate is a cert-manager Certificate, reduced to what certrollout reads.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              CertificateSpec   `json:"spec,omitempty"`
	Status            CertificateStatus `json:"status,omitempty"`
}

// CertificateSpec names the Secret the certificate is written to and its issuer.
type CertificateSpec struct {
	SecretName string    `json:"secretName"`
	IssuerRef  IssuerRef `json:"issuerRef"`
}

// IssuerRef names an Issuer or ClusterIssuer (or an external issuer's kind and group).
type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// CertificateStatus is what cert-manager reports about the current certificate and its renewal.
type CertificateStatus struct {
	Conditions  []Condition  `json:"conditions,omitempty"`
	NotBefore   *metav1.Time `json:"notBefore,omitempty"`
	NotAfter    *metav1.Time `json:"notAfter,omitempty"`
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`
	// Revision counts issuances: 1 for the first certificate, incremented on each renewal.
	Revision *int `json:"revision,omitempty"`
}

// Condition is one status condition (Ready, Issuing).
type Condition struct {
	Type               string       `json:"type"`
	Status             string       `json:"status"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message,omitempty"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
}

// Condition types cert-manager sets on Certificates.
const (
	ConditionReady   = "Ready"
	ConditionIssuing = "Issuing"
)

// CertificateList is a list of Certificates.
type CertificateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Certificate `json:"items"`
}

// Condition returns the condition of type t, or nil.
func (c *Certificate) Condition(t string) *Condition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == t {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

// Ready reports whether the Ready condition is True.
func (c *Certificate) Ready() bool {
	cond := c.Condition(ConditionReady)
	return cond != nil && cond.Status == string(metav1.ConditionTrue)
}

// DeepCopyObject implements runtime.Object.
func (c *Certificate) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopy returns a copy sharing no memory with c.
func (c *Certificate) DeepCopy() *Certificate {
	if c == nil {
		return nil
	}
	out := &Certificate{TypeMeta: c.TypeMeta, Spec: c.Spec}
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta) //nolint:staticcheck // ObjectMeta's, not a Certificate's DeepCopyInto
	c.Status.deepCopyInto(&out.Status)
	return out
}

func (s *CertificateStatus) deepCopyInto(out *CertificateStatus) {
	out.NotBefore, out.NotAfter, out.RenewalTime = s.NotBefore.DeepCopy(), s.NotAfter.DeepCopy(), s.RenewalTime.DeepCopy()
	if s.Revision != nil {
		r := *s.Revision
		out.Revision = &r
	}
	if s.Conditions != nil {
		out.Conditions = make([]Condition, len(s.Conditions))
		for i, c := range s.Conditions {
			c.LastTransitionTime = c.LastTransitionTime.DeepCopy()
			out.Conditions[i] = c
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (l *CertificateList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &CertificateList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta) //nolint:staticcheck // ListMeta's DeepCopyInto, named for clarity
	if l.Items != nil {
		out.Items = make([]Certificate, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopy()
		}
	}
	return out
}

// Issuer is a cert-manager Issuer, reduced to what certrollout reads: whether it is a CA issuer and
// which Secret holds its CA.
type Issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IssuerSpec   `json:"spec,omitempty"`
	Status            IssuerStatus `json:"status,omitempty"`
}

// ClusterIssuer is a cluster-scoped Issuer. Its CA Secret lives in cert-manager's cluster resource
// namespace (cert-manager's --cluster-resource-namespace).
type ClusterIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IssuerSpec   `json:"spec,omitempty"`
	Status            IssuerStatus `json:"status,omitempty"`
}

// IssuerSpec is the spec of an Issuer or ClusterIssuer. Only the CA issuer type is decoded: CA is nil for
// ACME, Vault, self-signed and the other types.
type IssuerSpec struct {
	CA *CAIssuer `json:"ca,omitempty"`
}

// CAIssuer signs with the key pair in a Secret (tls.crt and tls.key).
type CAIssuer struct {
	SecretName string `json:"secretName"`
}

// IssuerStatus holds an issuer's conditions (Ready).
type IssuerStatus struct {
	Conditions []Condition `json:"conditions,omitempty"`
}

// IssuerList is a list of Issuers.
type IssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Issuer `json:"items"`
}

// ClusterIssuerList is a list of ClusterIssuers.
type ClusterIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterIssuer `json:"items"`
}

// Ready reports whether the Ready condition is True.
func (s *IssuerStatus) Ready() bool {
	for _, c := range s.Conditions {
		if c.Type == ConditionReady {
			return c.Status == string(metav1.ConditionTrue)
		}
	}
	return false
}

func (s *IssuerSpec) deepCopyInto(out *IssuerSpec) {
	if s.CA != nil {
		ca := *s.CA
		out.CA = &ca
	}
}

func (s *IssuerStatus) deepCopyInto(out *IssuerStatus) {
	if s.Conditions != nil {
		out.Conditions = make([]Condition, len(s.Conditions))
		for i, c := range s.Conditions {
			c.LastTransitionTime = c.LastTransitionTime.DeepCopy()
			out.Conditions[i] = c
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (i *Issuer) DeepCopyObject() runtime.Object { return i.DeepCopy() }

// DeepCopy returns a copy sharing no memory with i.
func (i *Issuer) DeepCopy() *Issuer {
	if i == nil {
		return nil
	}
	out := &Issuer{TypeMeta: i.TypeMeta}
	i.ObjectMeta.DeepCopyInto(&out.ObjectMeta) //nolint:staticcheck // ObjectMeta's, not an Issuer's DeepCopyInto
	i.Spec.deepCopyInto(&out.Spec)
	i.Status.deepCopyInto(&out.Status)
	return out
}

// DeepCopyObject implements runtime.Object.
func (i *ClusterIssuer) DeepCopyObject() runtime.Object { return i.DeepCopy() }

// DeepCopy returns a copy sharing no memory with i.
func (i *ClusterIssuer) DeepCopy() *ClusterIssuer {
	if i == nil {
		return nil
	}
	out := &ClusterIssuer{TypeMeta: i.TypeMeta}
	i.ObjectMeta.DeepCopyInto(&out.ObjectMeta) //nolint:staticcheck // ObjectMeta's, not a ClusterIssuer's DeepCopyInto
	i.Spec.deepCopyInto(&out.Spec)
	i.Status.deepCopyInto(&out.Status)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *IssuerList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &IssuerList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta) //nolint:staticcheck // ListMeta's DeepCopyInto, named for clarity
	if l.Items != nil {
		out.Items = make([]Issuer, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopy()
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *ClusterIssuerList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &ClusterIssuerList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta) //nolint:staticcheck // ListMeta's DeepCopyInto, named for clarity
	if l.Items != nil {
		out.Items = make([]ClusterIssuer, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopy()
		}
	}
	return out
}
