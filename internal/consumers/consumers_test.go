package consumers

import (
	"reflect"
	"testing"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"

	"github.com/certrollout/certrollout/internal/testgen"
)

func TestFromPodSpec(t *testing.T) {
	secret := func(name string) Ref { return Ref{KindSecret, name} }
	for name, tc := range map[string]struct {
		pod         []testgen.PodOption
		annotations map[string]string
		want        []Use
	}{
		"a whole Secret volume is a volume use of every key": {
			pod:  []testgen.PodOption{testgen.WithSecretVolume("tls")},
			want: []Use{{Ref: secret("tls"), Mode: ModeVolume, Container: "app"}},
		},
		"a volume limited to items uses only those keys": {
			pod:  []testgen.PodOption{testgen.WithSecretVolume("tls", "tls.crt", "ca.crt")},
			want: []Use{{Ref: secret("tls"), Mode: ModeVolume, Container: "app", Keys: []string{"ca.crt", "tls.crt"}}},
		},
		"a subPath mount is never refreshed": {
			pod:  []testgen.PodOption{testgen.WithSecretSubPath("tls", "tls.crt")},
			want: []Use{{Ref: secret("tls"), Mode: ModeSubPath, Container: "app"}},
		},
		"an environment variable from a Secret key": {
			pod:  []testgen.PodOption{testgen.WithSecretEnv("db", "password")},
			want: []Use{{Ref: secret("db"), Mode: ModeEnv, Container: "app", Keys: []string{"password"}}},
		},
		"envFrom uses every key": {
			pod:  []testgen.PodOption{testgen.WithSecretEnvFrom("db")},
			want: []Use{{Ref: secret("db"), Mode: ModeEnv, Container: "app"}},
		},
		"a projected volume brings in each of its sources": {
			pod: []testgen.PodOption{testgen.WithProjected([]string{"tls"}, []string{"bundle"})},
			want: []Use{
				{Ref: Ref{KindConfigMap, "bundle"}, Mode: ModeVolume, Container: "app"},
				{Ref: secret("tls"), Mode: ModeVolume, Container: "app"},
			},
		},
		"an init container's use counts and says so": {
			pod:  []testgen.PodOption{testgen.WithInitContainer("tls", "ca.crt")},
			want: []Use{{Ref: secret("tls"), Mode: ModeEnv, Container: "init", Init: true, Keys: []string{"ca.crt"}}},
		},
		"Secrets named in the annotation are uses too, blanks and spaces ignored": {
			annotations: map[string]string{api.AnnotationSecrets: " sidecar-tls, ,other "},
			want: []Use{
				{Ref: secret("other"), Mode: ModeAnnotation},
				{Ref: secret("sidecar-tls"), Mode: ModeAnnotation},
			},
		},
		"a ConfigMap volume": {
			pod:  []testgen.PodOption{testgen.WithConfigMapVolume("ca-bundle")},
			want: []Use{{Ref: Ref{KindConfigMap, "ca-bundle"}, Mode: ModeVolume, Container: "app"}},
		},
		"a pod that uses nothing has no uses": {
			want: nil,
		},
	} {
		t.Run(name, func(t *testing.T) {
			spec := testgen.PodSpec(tc.pod...)
			got := FromPodSpec(&spec, tc.annotations)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAVolumeNoContainerMountsIsNotAUse(t *testing.T) {
	spec := testgen.PodSpec()
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "unused", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}})
	if got := FromPodSpec(&spec, nil); len(got) != 0 {
		t.Fatalf("got %+v", got)
	}
}

func TestTheSameUseTwiceIsListedOnce(t *testing.T) {
	spec := testgen.PodSpec(testgen.WithSecretEnv("db", "password"), testgen.WithSecretEnv("db", "password"))
	if got := FromPodSpec(&spec, nil); len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestKeysRefsAndRefresh(t *testing.T) {
	spec := testgen.PodSpec(
		testgen.WithSecretVolume("tls", "ca.crt"),
		testgen.WithSecretEnv("tls", "tls.crt"),
		testgen.WithConfigMapVolume("bundle"),
	)
	uses := FromPodSpec(&spec, nil)
	tls := Ref{KindSecret, "tls"}
	if got := KeysOf(uses, tls); !reflect.DeepEqual(got, []string{"ca.crt", "tls.crt"}) {
		t.Errorf("KeysOf tls = %v", got)
	}
	if got := KeysOf(uses, Ref{KindConfigMap, "bundle"}); got != nil {
		t.Errorf("a whole-volume use reads every key, got %v", got)
	}
	if !NeverRefreshed(uses, tls) || NeverRefreshed(uses, Ref{KindConfigMap, "bundle"}) {
		t.Error("env makes tls never refreshed; a plain volume does not")
	}
	if got := Refs(uses); !reflect.DeepEqual(got, []Ref{{KindConfigMap, "bundle"}, tls}) {
		t.Errorf("Refs = %v", got)
	}
}
