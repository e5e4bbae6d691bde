// Package v1alpha1 is certrollout's API: RolloutPolicy, which governs how and when the workloads it
// selects restart for renewed certificates, and CertRollout, the durable record of one orchestrated
// restart.
// +kubebuilder:object:generate=true
// +groupName=certrollout.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is certrollout.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "certrollout.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds RolloutPolicy and CertRollout (and their lists) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
