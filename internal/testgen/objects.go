package testgen

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// PodOption adjusts a pod spec. Options that mount or read something act on the first container,
// creating it when the spec has none.
type PodOption func(*corev1.PodSpec)

// PodSpec builds a pod spec with one container "app".
func PodSpec(opts ...PodOption) corev1.PodSpec {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}
	for _, o := range opts {
		o(&spec)
	}
	return spec
}

// WithSecretVolume mounts a whole Secret at /etc/<secret>; items, when given, limit it to those keys.
func WithSecretVolume(secret string, items ...string) PodOption {
	return func(s *corev1.PodSpec) {
		vol := corev1.Volume{Name: "v-" + secret, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}
		for _, k := range items {
			vol.Secret.Items = append(vol.Secret.Items, corev1.KeyToPath{Key: k, Path: k})
		}
		s.Volumes = append(s.Volumes, vol)
		s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: vol.Name, MountPath: "/etc/" + secret})
	}
}

// WithSecretSubPath mounts one key of a Secret as a single file through subPath.
func WithSecretSubPath(secret, key string) PodOption {
	return func(s *corev1.PodSpec) {
		name := "sp-" + secret
		s.Volumes = append(s.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
		s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/etc/" + key, SubPath: key})
	}
}

// WithConfigMapVolume mounts a whole ConfigMap.
func WithConfigMapVolume(cm string) PodOption {
	return func(s *corev1.PodSpec) {
		name := "cm-" + cm
		s.Volumes = append(s.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}})
		s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/etc/" + cm})
	}
}

// WithProjected mounts one projected volume combining Secrets and ConfigMaps.
func WithProjected(secrets, configMaps []string) PodOption {
	return func(s *corev1.PodSpec) {
		p := &corev1.ProjectedVolumeSource{}
		for _, n := range secrets {
			p.Sources = append(p.Sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: n}}})
		}
		for _, n := range configMaps {
			p.Sources = append(p.Sources, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: n}}})
		}
		s.Volumes = append(s.Volumes, corev1.Volume{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: p}})
		s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "projected", MountPath: "/etc/projected"})
	}
}

// WithSecretEnv reads one key of a Secret into an environment variable.
func WithSecretEnv(secret, key string) PodOption {
	return func(s *corev1.PodSpec) {
		s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "V", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key},
		}})
	}
}

// WithSecretEnvFrom reads every key of a Secret into the environment.
func WithSecretEnvFrom(secret string) PodOption {
	return func(s *corev1.PodSpec) {
		s.Containers[0].EnvFrom = append(s.Containers[0].EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}})
	}
}

// WithInitContainer adds an init container "init" that reads a Secret key from the environment.
func WithInitContainer(secret, key string) PodOption {
	return func(s *corev1.PodSpec) {
		s.InitContainers = append(s.InitContainers, corev1.Container{Name: "init", Image: "registry.example/init:1", Env: []corev1.EnvVar{{
			Name: "V", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}},
		}}})
	}
}

// DeploymentOption adjusts a Deployment.
type DeploymentOption func(*appsv1.Deployment)

// Deployment builds a Deployment "name" in namespace ns, selecting app=name.
func Deployment(ns, name string, replicas int32, pod []PodOption, opts ...DeploymentOption) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: PodSpec(pod...)},
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// WithAnnotation sets an annotation on the Deployment itself.
func WithAnnotation(key, value string) DeploymentOption {
	return func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[key] = value
	}
}

// SlowToTerminate makes the Deployment's pods take delay to go away once deleted, as workers that finish
// their work do: kwok honours the pod-delete stage's delay annotation, up to the grace period, which is
// set to leave room for it.
func SlowToTerminate(delay time.Duration) DeploymentOption {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To(int64(delay/time.Second) + 30)
		if d.Spec.Template.Annotations == nil {
			d.Spec.Template.Annotations = map[string]string{}
		}
		d.Spec.Template.Annotations["pod-delete.stage.kwok.x-k8s.io/delay"] = strconv.FormatInt(delay.Milliseconds(), 10)
	}
}
