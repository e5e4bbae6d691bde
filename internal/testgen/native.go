package testgen

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WithProjectedSources mounts one projected volume, named name, of the given sources: how pods receive
// ClusterTrustBundles and their own pod certificates.
func WithProjectedSources(name string, sources ...corev1.VolumeProjection) PodOption {
	return func(s *corev1.PodSpec) {
		p := &corev1.ProjectedVolumeSource{Sources: sources}
		s.Volumes = append(s.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: p}})
		s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/etc/" + name})
	}
}

// BundleByName projects the ClusterTrustBundle name to ca.pem.
func BundleByName(name string) corev1.VolumeProjection {
	return corev1.VolumeProjection{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: &name, Path: "ca.pem"}}
}

// BundleBySigner projects every ClusterTrustBundle of signer whose labels match matchLabels (nil: the
// selector is left unset, which selects nothing) to ca.pem.
func BundleBySigner(signer string, matchLabels map[string]string) corev1.VolumeProjection {
	p := &corev1.ClusterTrustBundleProjection{SignerName: &signer, Path: "ca.pem"}
	if matchLabels != nil {
		p.LabelSelector = &metav1.LabelSelector{MatchLabels: matchLabels}
	}
	return corev1.VolumeProjection{ClusterTrustBundle: p}
}

// PodCertificate projects a certificate from signer, issued to the pod by the kubelet, to tls.pem.
func PodCertificate(signer string) corev1.VolumeProjection {
	return corev1.VolumeProjection{PodCertificate: &corev1.PodCertificateProjection{SignerName: signer, KeyType: "ECDSAP256", CredentialBundlePath: "tls.pem"}}
}
