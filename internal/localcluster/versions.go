package localcluster

import (
	"fmt"
	"os"
)

// Versions pins every component of the local cluster. The defaults are the versions verified to work
// together on this project's machines; each can be overridden from the environment for compatibility runs.
type Versions struct {
	Kubernetes      string // kube-apiserver, kube-controller-manager, kube-scheduler (K8S_VERSION)
	Etcd            string // etcd server (ETCD_VERSION)
	Kwok            string // kwok, simulated nodes and pods (KWOK_VERSION)
	CertManager     string // cert-manager controller (CERT_MANAGER_VERSION)
	CertManagerCRDs string // release whose deploy/crds are plain CRDs (CERT_MANAGER_CRDS_VERSION)
}

// DefaultVersions are the pinned versions the committed wrapper modules build.
var DefaultVersions = Versions{
	Kubernetes:      "v1.34.4",
	Etcd:            "v3.6.16",
	Kwok:            "v0.7.0",
	CertManager:     "v1.11.5",
	CertManagerCRDs: "v1.21.2",
}

// VersionsFromEnv returns DefaultVersions with any overrides from the environment applied.
func VersionsFromEnv() (Versions, error) {
	v := DefaultVersions
	for env, field := range map[string]*string{
		"K8S_VERSION":               &v.Kubernetes,
		"ETCD_VERSION":              &v.Etcd,
		"KWOK_VERSION":              &v.Kwok,
		"CERT_MANAGER_VERSION":      &v.CertManager,
		"CERT_MANAGER_CRDS_VERSION": &v.CertManagerCRDs,
	} {
		val := os.Getenv(env)
		if val == "" {
			continue
		}
		if val[0] != 'v' {
			val = "v" + val
		}
		if !semverLike(val) {
			return v, fmt.Errorf("%s=%q is not a version like v1.2.3", env, os.Getenv(env))
		}
		*field = val
	}
	return v, nil
}

// semverLike accepts vMAJOR.MINOR.PATCH with an optional pre-release suffix.
func semverLike(s string) bool {
	var major, minor, patch int
	var rest string
	n, _ := fmt.Sscanf(s, "v%d.%d.%d%s", &major, &minor, &patch, &rest)
	return n >= 3 && (rest == "" || rest[0] == '-')
}
