// Package certmanager holds the few fields of cert-manager's API that certrollout reads: a Certificate's
// Secret, issuer and status (revision, renewal time, Ready). Only these fields are decoded, so a cached
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

// AddToScheme registers Certificate and CertificateList.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Certificate{}, &CertificateList{})
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
