// Package consumers works out which Secrets and ConfigMaps a pod template uses, which keys of them, and
// how. The "how" decides what a renewal means for the pod: environment variables and subPath mounts are
// never refreshed by the kubelet, so the pod cannot see the new certificate without a restart; whole
// volumes are refreshed on disk, but a process that loaded the certificate at start still holds the old
// one. It is pure: a pod spec in, uses out.
package consumers

import (
	"slices"
	"strings"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
)

// Kind of object used.
type Kind string

// Kinds of object a pod can use.
const (
	KindSecret    Kind = "Secret"
	KindConfigMap Kind = "ConfigMap"
	// KindClusterTrustBundle is a cluster-scoped ClusterTrustBundle projected by name.
	KindClusterTrustBundle Kind = "ClusterTrustBundle"
	// KindClusterTrustBundleSigner is every ClusterTrustBundle of a signer that a label selector matches,
	// projected together: which bundles that is can only be answered at lookup time, so the Ref names the
	// query (SignerRef), not a bundle.
	KindClusterTrustBundleSigner Kind = "ClusterTrustBundleSigner"
	// KindPodCertificate is a podCertificate projection: the kubelet requests, renews and rewrites it for
	// each pod (PodCertificateRequest), so it is reported, never a reason to restart. Name is the signer.
	KindPodCertificate Kind = "PodCertificate"
)

// ClusterScoped reports whether objects of the kind have no namespace: a use of one in any namespace
// refers to the same object.
func (k Kind) ClusterScoped() bool {
	return k == KindClusterTrustBundle || k == KindClusterTrustBundleSigner || k == KindPodCertificate
}

// Mode is how a pod uses an object.
type Mode string

// Modes, from the one that can never see a renewal to the one certrollout takes on trust.
const (
	ModeEnv        Mode = "env"        // environment variable: fixed at container start
	ModeSubPath    Mode = "subPath"    // subPath mount: the kubelet never refreshes it
	ModeVolume     Mode = "volume"     // whole volume: files refresh, the process may hold the old certificate
	ModeAnnotation Mode = "annotation" // declared in certrollout.io/secrets
)

// Ref names an object in the pod's namespace.
type Ref struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
}

func (r Ref) String() string { return string(r.Kind) + "/" + r.Name }

// Use is one way one container uses one object.
type Use struct {
	Ref
	Mode Mode `json:"mode"`
	// Container is the container that uses it; empty for ModeAnnotation.
	Container string `json:"container,omitempty"`
	Init      bool   `json:"init,omitempty"`
	// Keys lists the keys used; nil means every key.
	Keys []string `json:"keys,omitempty"`
	// Optional uses do not keep the pod from starting when the object is missing.
	Optional bool `json:"optional,omitempty"`
}

// volumeSource is what one pod volume brings in.
type volumeSource struct {
	ref      Ref
	keys     []string
	optional bool
}

// FromPodSpec lists the uses of a pod spec. annotations are the workload's (or bare pod's) own, for
// certrollout.io/secrets. The result is sorted and free of duplicates.
func FromPodSpec(spec *corev1.PodSpec, annotations map[string]string) []Use {
	volumes := map[string][]volumeSource{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = sourcesOf(v)
	}
	var uses []Use
	add := func(c *corev1.Container, init bool) {
		for _, m := range c.VolumeMounts {
			mode := ModeVolume
			if m.SubPath != "" || m.SubPathExpr != "" {
				mode = ModeSubPath
			}
			for _, s := range volumes[m.Name] {
				uses = append(uses, Use{Ref: s.ref, Mode: mode, Container: c.Name, Init: init, Keys: s.keys, Optional: s.optional})
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && r.Name != "" {
				uses = append(uses, Use{Ref: Ref{KindSecret, r.Name}, Mode: ModeEnv, Container: c.Name, Init: init, Keys: []string{r.Key}, Optional: deref(r.Optional)})
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil && r.Name != "" {
				uses = append(uses, Use{Ref: Ref{KindConfigMap, r.Name}, Mode: ModeEnv, Container: c.Name, Init: init, Keys: []string{r.Key}, Optional: deref(r.Optional)})
			}
		}
		for _, ef := range c.EnvFrom {
			if r := ef.SecretRef; r != nil && r.Name != "" {
				uses = append(uses, Use{Ref: Ref{KindSecret, r.Name}, Mode: ModeEnv, Container: c.Name, Init: init, Optional: deref(r.Optional)})
			}
			if r := ef.ConfigMapRef; r != nil && r.Name != "" {
				uses = append(uses, Use{Ref: Ref{KindConfigMap, r.Name}, Mode: ModeEnv, Container: c.Name, Init: init, Optional: deref(r.Optional)})
			}
		}
	}
	for i := range spec.InitContainers {
		add(&spec.InitContainers[i], true)
	}
	for i := range spec.Containers {
		add(&spec.Containers[i], false)
	}
	for _, name := range ParseSecretList(annotations[api.AnnotationSecrets]) {
		uses = append(uses, Use{Ref: Ref{KindSecret, name}, Mode: ModeAnnotation})
	}
	return normalize(uses)
}

func sourcesOf(v corev1.Volume) []volumeSource {
	switch {
	case v.Secret != nil && v.Secret.SecretName != "":
		return []volumeSource{{Ref{KindSecret, v.Secret.SecretName}, itemKeys(v.Secret.Items), deref(v.Secret.Optional)}}
	case v.ConfigMap != nil && v.ConfigMap.Name != "":
		return []volumeSource{{Ref{KindConfigMap, v.ConfigMap.Name}, itemKeys(v.ConfigMap.Items), deref(v.ConfigMap.Optional)}}
	case v.Projected != nil:
		var out []volumeSource
		for _, p := range v.Projected.Sources {
			if p.Secret != nil && p.Secret.Name != "" {
				out = append(out, volumeSource{Ref{KindSecret, p.Secret.Name}, itemKeys(p.Secret.Items), deref(p.Secret.Optional)})
			}
			if p.ConfigMap != nil && p.ConfigMap.Name != "" {
				out = append(out, volumeSource{Ref{KindConfigMap, p.ConfigMap.Name}, itemKeys(p.ConfigMap.Items), deref(p.ConfigMap.Optional)})
			}
			out = append(out, nativeSources(p)...)
		}
		return out
	default:
		return nil
	}
}

func itemKeys(items []corev1.KeyToPath) []string {
	if len(items) == 0 {
		return nil
	}
	keys := make([]string, 0, len(items))
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func deref(b *bool) bool { return b != nil && *b }

// ParseSecretList splits "a, b,,c" into [a b c].
func ParseSecretList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func normalize(uses []Use) []Use {
	slices.SortFunc(uses, func(a, b Use) int {
		return strings.Compare(a.sortKey(), b.sortKey())
	})
	return slices.CompactFunc(uses, func(a, b Use) bool { return a.sortKey() == b.sortKey() })
}

func (u Use) sortKey() string {
	init := "0"
	if u.Init {
		init = "1"
	}
	return strings.Join([]string{string(u.Kind), u.Name, string(u.Mode), u.Container, init, strings.Join(u.Keys, ","), boolStr(u.Optional)}, "\x00")
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Refs returns the distinct objects of uses, sorted.
func Refs(uses []Use) []Ref {
	var refs []Ref
	for _, u := range uses {
		refs = append(refs, u.Ref)
	}
	slices.SortFunc(refs, func(a, b Ref) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(refs)
}

// KeysOf returns the keys of ref that uses read: nil when some use reads every key.
func KeysOf(uses []Use, ref Ref) []string {
	var keys []string
	for _, u := range uses {
		if u.Ref != ref {
			continue
		}
		if u.Keys == nil {
			return nil
		}
		keys = append(keys, u.Keys...)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// NeverRefreshed reports whether any use of ref is one the kubelet never updates (env, subPath).
func NeverRefreshed(uses []Use, ref Ref) bool {
	for _, u := range uses {
		if u.Ref == ref && (u.Mode == ModeEnv || u.Mode == ModeSubPath) {
			return true
		}
	}
	return false
}
