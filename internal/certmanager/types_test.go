package certmanager

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// A Certificate as cert-manager v1.x serves it, with fields certrollout does not read.
const served = `{
  "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
  "metadata": {"name": "web", "namespace": "demo", "generation": 2},
  "spec": {"secretName": "web-tls", "dnsNames": ["web.demo.svc"], "duration": "1h",
           "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
           "privateKey": {"rotationPolicy": "Always"}},
  "status": {"revision": 3, "notBefore": "2026-11-23T10:00:00Z", "notAfter": "2026-11-23T11:00:00Z",
             "renewalTime": "2026-11-23T10:40:00Z",
             "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired",
                             "lastTransitionTime": "2026-11-23T10:00:01Z", "observedGeneration": 2}]}
}`

func TestDecodesWhatCertManagerServes(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	obj, gvk, err := serializer.NewCodecFactory(s).UniversalDeserializer().Decode([]byte(served), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := obj.(*Certificate)
	if !ok || gvk.Kind != "Certificate" {
		t.Fatalf("decoded %T as %v", obj, gvk)
	}
	if c.Spec.SecretName != "web-tls" || c.Spec.IssuerRef.Kind != "ClusterIssuer" || c.Spec.IssuerRef.Name != "ca" {
		t.Errorf("spec %+v", c.Spec)
	}
	if c.Status.Revision == nil || *c.Status.Revision != 3 || !c.Ready() || c.Status.RenewalTime == nil || c.Status.NotAfter == nil {
		t.Errorf("status %+v", c.Status)
	}
	if c.Condition(ConditionIssuing) != nil {
		t.Error("no Issuing condition was served")
	}

	cp := c.DeepCopy()
	*cp.Status.Revision = 4
	cp.Status.Conditions[0].Status = "False"
	cp.Status.RenewalTime.Time = cp.Status.RenewalTime.AddDate(1, 0, 0)
	if *c.Status.Revision != 3 || !c.Ready() || c.Status.RenewalTime.Year() != 2026 {
		t.Error("DeepCopy shares status with the original")
	}
	list := &CertificateList{Items: []Certificate{*c}}
	lc := list.DeepCopyObject().(*CertificateList)
	lc.Items[0].Spec.SecretName = "other"
	if list.Items[0].Spec.SecretName != "web-tls" {
		t.Error("list DeepCopyObject shares items")
	}
}

func TestDecodesCAAndOtherIssuers(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	decode := serializer.NewCodecFactory(s).UniversalDeserializer().Decode
	obj, _, err := decode([]byte(`{"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
  "metadata": {"name": "ca", "namespace": "demo", "annotations": {"certrollout.io/cascade": "true"}},
  "spec": {"ca": {"secretName": "ca-key-pair", "crlDistributionPoints": ["http://crl"]}},
  "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KeyPairVerified"}]}}`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	is, ok := obj.(*Issuer)
	if !ok || is.Spec.CA == nil || is.Spec.CA.SecretName != "ca-key-pair" || !is.Status.Ready() {
		t.Fatalf("decoded %T %+v", obj, is)
	}
	cp := is.DeepCopy()
	cp.Spec.CA.SecretName = "other"
	cp.Status.Conditions[0].Status = "False"
	if is.Spec.CA.SecretName != "ca-key-pair" || !is.Status.Ready() {
		t.Error("Issuer DeepCopy shares memory with the original")
	}
	obj, _, err = decode([]byte(`{"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
  "metadata": {"name": "letsencrypt"}, "spec": {"acme": {"server": "https://acme"}}}`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ci, ok := obj.(*ClusterIssuer)
	if !ok || ci.Spec.CA != nil || ci.Status.Ready() {
		t.Fatalf("an ACME ClusterIssuer has no CA: %T %+v", obj, ci)
	}
	list := &ClusterIssuerList{Items: []ClusterIssuer{*ci}}
	if lc := list.DeepCopyObject().(*ClusterIssuerList); lc.Items[0].Name != "letsencrypt" {
		t.Errorf("list copy: %+v", lc.Items)
	}
}
