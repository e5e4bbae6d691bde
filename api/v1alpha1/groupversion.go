// Package v1alpha1 is certrollout's API: RolloutPolicy, which governs how and when the workloads it
// selects restart for renewed certificates, and CertRollout, the durable record of one orchestrated
// restart.
// +kubebuilder:object:generate=true
// +groupName=certrollout.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is certrollout.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "certrollout.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the API's types (and their lists) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RolloutPolicy{}, &RolloutPolicyList{}, &CertRollout{}, &CertRolloutList{}, &MaintenanceHold{}, &MaintenanceHoldList{})
	s.AddKnownTypes(GroupVersion, &TrustBundleSync{}, &TrustBundleSyncList{})
	s.AddKnownTypes(GroupVersion, &NodeCertificates{}, &NodeCertificatesList{})
	s.AddKnownTypes(GroupVersion, &ControlPlanePolicy{}, &ControlPlanePolicyList{})
	s.AddKnownTypes(GroupVersion, &ControlPlaneRollout{}, &ControlPlaneRolloutList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
