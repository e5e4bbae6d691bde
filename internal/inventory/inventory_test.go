package inventory

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/testgen"
)

func managed(manager string, t time.Time, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{
		Manager: manager, Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: t},
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields),
	}
}

// issuedSecret is a Secret as cert-manager writes it.
func issuedSecret(t *testing.T, ca, leaf *testgen.Cert, written time.Time) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "app", Name: "api-tls",
			Annotations: map[string]string{AnnotationCertificateName: "api", corev1.LastAppliedConfigAnnotation: "{...}"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				managed("cert-manager-certificates-issuing", written, `{"f:data":{".":{},"f:tls.crt":{}}}`),
				managed("kubectl-annotate", written.Add(time.Hour), `{"f:metadata":{"f:annotations":{}}}`),
			},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()),
			"tls.key": leaf.KeyPEM(t),
			"ca.crt":  ca.PEM(),
		},
	}
}

func TestFromSecretReadsCertificatesAndItsCertManagerOwner(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "api")
	written := time.Now().UTC().Truncate(time.Second)
	src := FromSecret(issuedSecret(t, ca, leaf, written))
	if len(src.Keys) != 2 || src.Keys["tls.crt"] == nil || src.Keys["ca.crt"] == nil {
		t.Fatalf("want tls.crt and ca.crt, got %v", src.Keys)
	}
	if len(src.Keys["tls.crt"].Certificates) != 2 {
		t.Fatal("tls.crt holds the leaf and its CA")
	}
	if src.Certificate != "api" {
		t.Errorf("Certificate %q", src.Certificate)
	}
	if !src.DataWrittenAt.Equal(written) {
		t.Errorf("data written at %s, want %s (the annotate an hour later did not touch data)", src.DataWrittenAt, written)
	}
}

func TestReducedSecretKeepsNoKeyAndReadsTheSame(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "api")
	orig := issuedSecret(t, ca, leaf, time.Now().UTC().Truncate(time.Second))
	orig.Data["combined.pem"] = testgen.Concat(leaf.PEM(), leaf.KeyPEM(t))
	orig.Data["helm-release"] = bytes.Repeat([]byte("x"), 100_000)
	want := FromSecret(orig.DeepCopy())

	reduced := ReduceSecret(orig.DeepCopy())
	for k, v := range reduced.Data {
		if bytes.Contains(v, []byte("PRIVATE KEY")) {
			t.Errorf("key %s still holds a private key", k)
		}
	}
	if _, ok := reduced.Data["tls.key"]; ok {
		t.Error("tls.key survived")
	}
	if _, ok := reduced.Data["helm-release"]; ok {
		t.Error("a non-certificate value survived")
	}
	if _, ok := reduced.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Error("the last-applied annotation survived")
	}
	if len(reduced.ManagedFields) != 1 {
		t.Errorf("want one managedFields entry carrying the data write time, got %d", len(reduced.ManagedFields))
	}
	got := FromSecret(reduced)
	if !got.DataWrittenAt.Equal(want.DataWrittenAt) || got.Certificate != want.Certificate {
		t.Errorf("reduced reads differently: %v %q vs %v %q", got.DataWrittenAt, got.Certificate, want.DataWrittenAt, want.Certificate)
	}
	for k, b := range want.Keys {
		if got.Keys[k] == nil || !reflect.DeepEqual(got.Keys[k].Fingerprints(), b.Fingerprints()) {
			t.Errorf("key %s: certificates differ after reduction", k)
		}
	}
}

func TestMalformedPEMIsReportedNotKept(t *testing.T) {
	ca := testgen.CA(t, "root")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "broken"},
		Data: map[string][]byte{
			"ca.crt":  ca.PEM(),
			"tls.crt": []byte("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		},
	}
	direct := FromSecret(s.DeepCopy())
	reduced := ReduceSecret(s.DeepCopy())
	if _, ok := reduced.Data["tls.crt"]; ok {
		t.Fatal("a malformed value must not be cached (it may hold a key)")
	}
	viaCache := FromSecret(reduced)
	for name, src := range map[string]*Source{"direct": direct, "reduced": viaCache} {
		err := src.Invalid["tls.crt"]
		if err == nil || !strings.Contains(err.Error(), "PEM block 1 (CERTIFICATE)") {
			t.Errorf("%s: want the malformed block named, got %v", name, err)
		}
		if src.Keys["ca.crt"] == nil {
			t.Errorf("%s: the valid key is still read", name)
		}
	}
}

// A CERTIFICATE block whose base64 decodes but whose bytes are not a certificate is as invalid as one that
// does not decode: the reduction drops it and says so, so the controller's Event covers it too.
func TestACertificateBlockThatIsNotACertificateIsReportedNotKept(t *testing.T) {
	notDER := []byte("-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n")
	for _, typ := range []corev1.SecretType{corev1.SecretTypeOpaque, corev1.SecretTypeTLS} {
		for _, key := range []string{"ca.crt", "tls.crt"} {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bad"}, Type: typ, Data: map[string][]byte{key: notDER}}
			reduced := ReduceSecret(s)
			if _, ok := reduced.Data[key]; ok {
				t.Errorf("%s %s: the value is cached", typ, key)
			}
			if err := FromSecret(reduced).Invalid[key]; err == nil || !strings.Contains(err.Error(), "PEM block 1 (CERTIFICATE)") {
				t.Errorf("%s %s: want the block named as invalid, got %v", typ, key, err)
			}
		}
	}
}

func TestAnInvalidKeysAnnotationFromOutsideIsIgnored(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{api.AnnotationInvalid: `{"tls.crt":"fake"}`}}}
	if src := FromSecret(ReduceSecret(s)); len(src.Invalid) != 0 {
		t.Fatalf("got %v", src.Invalid)
	}
}

func TestASecretWithoutCertificatesKeepsOnlyItsIdentity(t *testing.T) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "app", Name: "sh.helm.release.v1.app.v3", UID: "u1", ResourceVersion: "42",
			Labels:        map[string]string{"owner": "helm", "status": "deployed"},
			Annotations:   map[string]string{"meta.helm.sh/release-name": "app"},
			ManagedFields: []metav1.ManagedFieldsEntry{managed("helm", time.Now(), `{"f:data":{}}`)},
		},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": bytes.Repeat([]byte("H4sI"), 25_000)},
	}
	r := ReduceSecret(s)
	if r.Data != nil || r.Labels != nil || r.Annotations != nil || r.ManagedFields != nil {
		t.Fatalf("kept more than identity: %+v", r.ObjectMeta)
	}
	if r.Name != "sh.helm.release.v1.app.v3" || r.Namespace != "app" || r.UID != "u1" || r.ResourceVersion != "42" {
		t.Fatalf("lost identity: %+v", r.ObjectMeta)
	}
}

func TestReduceConfigMapKeepsBundles(t *testing.T) {
	ca := testgen.CA(t, "root")
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bundle"},
		Data:       map[string]string{"ca-bundle.crt": string(ca.PEM()), "config.yaml": "a: b"},
		BinaryData: map[string][]byte{"blob": {1, 2, 3}},
	}
	got := FromConfigMap(ReduceConfigMap(cm))
	if len(got.Keys) != 1 || got.Keys["ca-bundle.crt"] == nil {
		t.Fatalf("got %v", got.Keys)
	}
	if got.Kind != consumers.KindConfigMap {
		t.Fatalf("kind %s", got.Kind)
	}
}

func TestIssuedAt(t *testing.T) {
	ca := testgen.CA(t, "root")
	nb := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	leaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(nb, nb.Add(90*24*time.Hour)))
	for name, tc := range map[string]struct {
		written time.Time
		want    time.Time
	}{
		"uses the data write time when an ACME CA back-dated notBefore by an hour": {written: nb.Add(time.Hour), want: nb.Add(time.Hour)},
		"uses notBefore when the data was written much later (another change)":     {written: nb.Add(72 * time.Hour), want: nb},
		"uses notBefore when the write time is unknown":                            {want: nb},
	} {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{Data: map[string][]byte{"tls.crt": leaf.PEM()}}
			if !tc.written.IsZero() {
				s.ManagedFields = []metav1.ManagedFieldsEntry{managed("issuer", tc.written, `{"f:data":{}}`)}
			}
			if got := FromSecret(s).IssuedAt(nil); !got.Equal(tc.want) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSetOf(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf1 := testgen.Leaf(t, ca, "api")
	leaf2 := testgen.Leaf(t, ca, "api")
	src := func(leaf *testgen.Cert, extra string) *Source {
		return FromSecret(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "api-tls", Annotations: map[string]string{"note": extra}},
			Data:       map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), []byte(extra)), "ca.crt": ca.PEM()},
		})
	}
	ref := consumers.Ref{Kind: consumers.KindSecret, Name: "api-tls"}
	whole := []consumers.Use{{Ref: ref, Mode: consumers.ModeVolume}}
	caOnly := []consumers.Use{{Ref: ref, Mode: consumers.ModeVolume, Keys: []string{"ca.crt"}}}
	set := func(uses []consumers.Use, s *Source) Set { return SetOf(uses, map[consumers.Ref]*Source{ref: s}) }

	a := set(whole, src(leaf1, ""))
	if a.Empty() || len(a.Fingerprints) != 2 || len(a.Hash) != 16 {
		t.Fatalf("set %+v", a)
	}
	if b := set(whole, src(leaf1, "\n# re-encoded, annotated\n")); b.Hash != a.Hash {
		t.Error("the same certificates in different bytes must hash the same")
	}
	if c := set(whole, src(leaf2, "")); c.Hash == a.Hash {
		t.Error("a renewed leaf must change the hash")
	}
	if set(caOnly, src(leaf1, "")).Hash != set(caOnly, src(leaf2, "")).Hash {
		t.Error("a workload that reads only ca.crt is not affected by a new leaf")
	}
	if !a.NotAfter.Equal(leaf1.X509.NotAfter.UTC()) {
		t.Errorf("NotAfter %s is not the leaf's (the earliest)", a.NotAfter)
	}
	if missing := SetOf(whole, nil); !missing.Empty() || missing.Hash != "" {
		t.Errorf("a missing source gives an empty set, got %+v", missing)
	}
}

func TestTransformPassesOtherObjectsThrough(t *testing.T) {
	pod := &corev1.Pod{}
	if got, err := Transform(pod); err != nil || got != pod {
		t.Fatal("pods pass through")
	}
}

// FuzzReduceSecret feeds the cache reduction what anyone who may write a Secret can put in one. It never
// panics; what it keeps is only CERTIFICATE blocks that parse (never a key); it reads the same
// certificates as the Secret itself; and every key it drops for being malformed is reported.
func FuzzReduceSecret(f *testing.F) {
	ca := testgen.CA(f, "root")
	leaf := testgen.Leaf(f, ca, "api")
	f.Add(testgen.Concat(leaf.PEM(), ca.PEM()), leaf.KeyPEM(f), ca.PEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"), []byte("junk"))
	f.Add(testgen.Concat(leaf.KeyPEM(f), leaf.PEM()), []byte("-----BEGIN CERTIFICATE-----\nMIIB"), []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, tlsCrt, tlsKey, caCrt []byte) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": tlsCrt, "tls.key": tlsKey, "ca.crt": caCrt}}
		direct := FromSecret(s.DeepCopy())
		reduced := ReduceSecret(s.DeepCopy())
		for k, v := range reduced.Data {
			if bytes.Contains(v, []byte("PRIVATE KEY")) {
				t.Fatalf("key %s keeps a private key in the cache", k)
			}
			if _, err := certs.ParsePEM(v); err != nil {
				t.Fatalf("key %s keeps data that does not parse: %v", k, err)
			}
		}
		cached := FromSecret(reduced)
		for k, b := range direct.Keys {
			got := cached.Keys[k]
			if got == nil || len(got.Certificates) != len(b.Certificates) {
				t.Fatalf("key %s: %d certificates read directly, %v through the cache", k, len(b.Certificates), got)
			}
			for i := range b.Certificates {
				if got.Certificates[i].Fingerprint != b.Certificates[i].Fingerprint {
					t.Fatalf("key %s certificate %d differs through the cache", k, i)
				}
			}
		}
		for k := range direct.Invalid {
			if cached.Invalid[k] == nil {
				t.Fatalf("key %s is malformed (%v) but the cache does not report it", k, direct.Invalid[k])
			}
		}
		if len(cached.Keys) != len(direct.Keys) {
			t.Fatalf("%d keys read through the cache, %d directly", len(cached.Keys), len(direct.Keys))
		}
	})
}

// The informer may transform an object twice: a second reduction changes nothing, so the parse errors the
// first recorded survive (they are all that is left of the values it dropped).
func TestReducingTwiceKeepsWhatTheFirstReductionRecorded(t *testing.T) {
	ca := testgen.CA(t, "root")
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s", ManagedFields: []metav1.ManagedFieldsEntry{managed("kubectl", time.Now(), `{"f:data":{}}`)}},
		Data: map[string][]byte{"ca.crt": ca.PEM(), "tls.crt": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}}
	once := ReduceSecret(s.DeepCopy())
	twice := ReduceSecret(once.DeepCopy())
	if !reflect.DeepEqual(once, twice) {
		t.Fatalf("a second reduction changed the object:\n once  %+v\n twice %+v", once, twice)
	}
	if src := FromSecret(twice); src.Invalid["tls.crt"] == nil || src.Keys["ca.crt"] == nil {
		t.Fatalf("after two reductions: keys %v, invalid %v", src.Keys, src.Invalid)
	}
	// A Secret that only claims to be reduced, with a key in it, is reduced all the same.
	forged := s.DeepCopy()
	forged.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: reducedManager}}
	forged.Data["tls.key"] = testgen.Leaf(t, ca, "x").KeyPEM(t)
	if got := ReduceSecret(forged); got.Data["tls.key"] != nil {
		t.Fatal("a forged mark kept a private key in the cache")
	}
}

func TestAKeyWithoutACertificateIsReportedWhereItsNameExpectsACertificate(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "portal")
	key := leaf.KeyPEM(t)
	whole := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "portal-tls"}, Data: map[string][]byte{
			"tls.crt":     key, // the wrong half of the pair
			"tls.key":     key, // expected: not a finding
			"ca.crt":      ca.PEM(),
			"privkey.pem": key,
		}}
	}
	reduced := ReduceSecret(whole())
	for _, v := range reduced.Data {
		if bytes.Contains(v, []byte("PRIVATE KEY")) {
			t.Fatal("the reduced Secret keeps a private key")
		}
	}
	for name, src := range map[string]*Source{"the whole Secret": FromSecret(whole()), "its reduced copy": FromSecret(reduced), "the copy reduced twice": FromSecret(ReduceSecret(reduced))} {
		if !slices.Equal(src.KeysWithoutCertificate, []string{"tls.crt"}) {
			t.Errorf("%s: keys without certificate %v, want [tls.crt]", name, src.KeysWithoutCertificate)
		}
		if _, ok := src.Keys["ca.crt"]; !ok || len(src.Keys) != 1 {
			t.Errorf("%s: certificate keys %v, want ca.crt only", name, src.Keys)
		}
	}
	alone := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "only-a-key"}, Data: map[string][]byte{"server.pem": key}}
	if got := FromSecret(ReduceSecret(alone)).KeysWithoutCertificate; !slices.Equal(got, []string{"server.pem"}) {
		t.Errorf("a Secret holding nothing but a key under server.pem: %v, want [server.pem] (its identity-only reduction must keep the finding)", got)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bundle"}, Data: map[string]string{"ca.pem": string(key)}}
	if got := FromConfigMap(ReduceConfigMap(cm)).KeysWithoutCertificate; !slices.Equal(got, []string{"ca.pem"}) {
		t.Errorf("a ConfigMap's ca.pem holding a key: %v, want [ca.pem]", got)
	}
}
