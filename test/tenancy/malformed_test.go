package tenancy

import (
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// Malformed certificate data that an opted-in workload consumes gets an InvalidCertificate Event on its
// Secret, whichever way it is malformed: a CERTIFICATE block that is not a certificate, or one whose
// base64 does not decode, in a kubernetes.io/tls Secret or an Opaque one.
func TestMalformedCertificateSecretsEachGetAnEvent(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	startController(t, options(ns))
	notACertificate := []byte("-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n")
	truncated := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	badBase64 := []byte("-----BEGIN CERTIFICATE-----\n%%%not base64%%%\n-----END CERTIFICATE-----\n")
	secrets := map[string]*corev1.Secret{
		"opaque-ca":  {Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"ca.crt": notACertificate}},
		"tls-leaf":   {Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": truncated, "tls.key": []byte("key")}},
		"opaque-tls": {Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"tls.crt": badBase64}},
	}
	for name, s := range secrets {
		s.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: name}
		d := testgen.Deployment(ns, "uses-"+name, 1, []testgen.PodOption{testgen.WithSecretVolume(name)}, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
		create(t, cl, s, d)
	}
	for name := range secrets {
		clustertest.Eventually(t, time.Minute, "an InvalidCertificate Event on Secret "+name,
			hasEvent(cl, ns, name, corev1.EventTypeWarning, "InvalidCertificate", "PEM block 1 (CERTIFICATE)"))
	}
}
