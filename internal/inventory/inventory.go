// Package inventory turns Secrets and ConfigMaps into certificate sources: the certificates under each
// key, when the data was written, and the cert-manager Certificate that owns them. It also reduces those
// objects, before they are cached, to what certificates need, so the controller's memory does not grow
// with Secrets it has no use for (Helm releases, tokens) and never holds a private key. Pure: no clients.
package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/probe"
)

// cert-manager's annotations on the Secrets it issues.
const (
	AnnotationCertificateName = "cert-manager.io/certificate-name"
	AnnotationIssuerName      = "cert-manager.io/issuer-name"
	AnnotationIssuerKind      = "cert-manager.io/issuer-kind"
)

// BackdateAllowance bounds how far after a certificate's notBefore its Secret's data write time is still
// taken as the issuance time. ACME CAs back-date notBefore by up to an hour; a write later than this is
// some other change to the Secret, not the issuance.
const BackdateAllowance = 2 * time.Hour

// Source is one Secret or ConfigMap seen as a holder of certificates.
type Source struct {
	Namespace string
	consumers.Ref
	// Keys maps each key holding certificates to them.
	Keys map[string]*certs.Bundle
	// Invalid maps each key that looks like PEM certificates but does not parse to the reason.
	Invalid map[string]error
	// KeysWithoutCertificate are the keys, sorted, that hold a private key and no certificate under a name
	// that does not say "key" (certs.NamedLikeKey): tls.crt holding the key, a ca.pem that is a key.
	KeysWithoutCertificate []string
	// DataWrittenAt is when the data was last written, from managedFields; zero when unknown.
	DataWrittenAt time.Time
	// Certificate is the cert-manager Certificate named by the Secret's annotation, if any.
	Certificate string
	// Issuance is the linked Certificate's status (LinkCertificate); nil when unknown.
	Issuance *Issuance
}

// FromSecret reads a Secret (whole or reduced by ReduceSecret: both give the same Source).
func FromSecret(s *corev1.Secret) *Source {
	src := newSource(s.Namespace, consumers.Ref{Kind: consumers.KindSecret, Name: s.Name}, &s.ObjectMeta)
	for k, v := range s.Data {
		src.add(k, v)
	}
	src.sortKeysWithoutCertificate()
	return src
}

// FromConfigMap reads a ConfigMap's data and binaryData.
func FromConfigMap(cm *corev1.ConfigMap) *Source {
	src := newSource(cm.Namespace, consumers.Ref{Kind: consumers.KindConfigMap, Name: cm.Name}, &cm.ObjectMeta)
	for k, v := range cm.Data {
		src.add(k, []byte(v))
	}
	for k, v := range cm.BinaryData {
		src.add(k, v)
	}
	src.sortKeysWithoutCertificate()
	return src
}

func (s *Source) sortKeysWithoutCertificate() {
	slices.Sort(s.KeysWithoutCertificate)
	s.KeysWithoutCertificate = slices.Compact(s.KeysWithoutCertificate)
}

func newSource(ns string, ref consumers.Ref, meta *metav1.ObjectMeta) *Source {
	src := &Source{
		Namespace:     ns,
		Ref:           ref,
		Keys:          map[string]*certs.Bundle{},
		Invalid:       map[string]error{},
		DataWrittenAt: DataWriteTime(meta.ManagedFields),
		Certificate:   meta.Annotations[AnnotationCertificateName],
	}
	if raw := meta.Annotations[api.AnnotationInvalid]; raw != "" {
		var invalid map[string]string
		if err := json.Unmarshal([]byte(raw), &invalid); err == nil {
			for k, msg := range invalid {
				src.Invalid[k] = errors.New(msg)
			}
		}
	}
	if raw := meta.Annotations[api.AnnotationKeysWithoutCertificate]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &src.KeysWithoutCertificate) // ours, on cached copies; unreadable: none
	}
	return src
}

func (s *Source) add(key string, value []byte) {
	if keyWithoutCertificate(key, value) {
		s.KeysWithoutCertificate = append(s.KeysWithoutCertificate, key)
		return
	}
	if !certs.HasPEMCertificate(value) {
		return
	}
	b, err := certs.ParsePEM(value)
	switch {
	case errors.Is(err, certs.ErrNoCertificate):
		return // the marker was text, not a block: as the cache reduction judges it
	case err != nil:
		s.Invalid[key] = err
		return
	}
	s.Keys[key] = b
}

// HasCertificates reports whether any key holds a certificate.
func (s *Source) HasCertificates() bool { return len(s.Keys) > 0 }

// Reportable reports whether the source has anything to show: certificates, data that does not parse, or
// a private key where a certificate is expected.
func (s *Source) Reportable() bool {
	return s.HasCertificates() || len(s.Invalid) > 0 || len(s.KeysWithoutCertificate) > 0
}

// Certificates returns the certificates under keys (nil: every key), in key order.
func (s *Source) Certificates(keys []string) []certs.Certificate {
	if keys == nil {
		for k := range s.Keys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	var out []certs.Certificate
	for _, k := range keys {
		if b := s.Keys[k]; b != nil {
			out = append(out, b.Certificates...)
		}
	}
	return out
}

// IssuedAt is when the certificates under keys were issued: the latest notBefore among them, or the
// data write time when that is later but within BackdateAllowance (ACME back-dating).
func (s *Source) IssuedAt(keys []string) time.Time {
	return s.issuedAt(s.Certificates(keys))
}

func (s *Source) issuedAt(certs []certs.Certificate) time.Time {
	var nb time.Time
	for _, c := range certs {
		if c.NotBefore.After(nb) {
			nb = c.NotBefore
		}
	}
	if nb.IsZero() {
		return nb
	}
	if w := s.DataWrittenAt; w.After(nb) && w.Sub(nb) <= BackdateAllowance {
		return w
	}
	return nb
}

// Set is the certificates a workload runs on, over all the sources and keys it uses.
type Set struct {
	// Fingerprints, sorted and unique.
	Fingerprints []string
	// Hash identifies the set: equal sets, equal hashes, whatever the bytes around them.
	Hash string
	// NotAfter is the earliest expiry in the set.
	NotAfter time.Time
	// IssuedAt is the latest issuance among the set's sources.
	IssuedAt time.Time
	// ChangedAt is the latest data write among the set's sources (zero when unknown): the settle period
	// runs from here.
	ChangedAt time.Time
	// ServerNames are the DNS names of the set's leaf certificates, sorted and unique: what a TLS probe
	// sends as SNI (probe.ServerName). Not part of the Hash.
	ServerNames []string
	// Leaves are the fingerprints of the set's leaf (non-CA) certificates, and LeafSubjects their
	// subjects, sorted and unique: what a pod may serve (probe.Expectation). Not part of the Hash.
	Leaves, LeafSubjects []string
}

// Expectation is what a pod that uses the set should serve on its TLS ports.
func (s Set) Expectation() probe.Expectation {
	return probe.Expectation{Leaves: s.Leaves, Names: append(slices.Clone(s.ServerNames), s.LeafSubjects...)}
}

// Empty reports whether the set holds no certificate.
func (s Set) Empty() bool { return len(s.Fingerprints) == 0 }

// SetOf builds the Set of certificates read by uses from sources (missing sources contribute nothing).
func SetOf(uses []consumers.Use, sources map[consumers.Ref]*Source) Set {
	var set Set
	for _, ref := range consumers.Refs(uses) {
		src := sources[ref]
		if src == nil {
			continue
		}
		used := src.Certificates(consumers.KeysOf(uses, ref))
		for _, c := range used {
			set.Fingerprints = append(set.Fingerprints, c.Fingerprint)
			if !c.IsCA {
				set.ServerNames = append(set.ServerNames, c.DNSNames...)
				set.Leaves = append(set.Leaves, c.Fingerprint)
				set.LeafSubjects = append(set.LeafSubjects, c.Subject)
			}
			if set.NotAfter.IsZero() || c.NotAfter.Before(set.NotAfter) {
				set.NotAfter = c.NotAfter
			}
		}
		if t := src.issuedAt(used); t.After(set.IssuedAt) {
			set.IssuedAt = t
		}
		if src.DataWrittenAt.After(set.ChangedAt) {
			set.ChangedAt = src.DataWrittenAt
		}
	}
	slices.Sort(set.Fingerprints)
	set.Fingerprints = slices.Compact(set.Fingerprints)
	for _, l := range []*[]string{&set.ServerNames, &set.Leaves, &set.LeafSubjects} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	if len(set.Fingerprints) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(set.Fingerprints, "\n")))
		set.Hash = hex.EncodeToString(sum[:8])
	}
	return set
}

// DataWriteTime is the latest time a field manager wrote the object's data or binaryData.
func DataWriteTime(entries []metav1.ManagedFieldsEntry) time.Time {
	var t time.Time
	for _, e := range entries {
		if e.Time == nil || e.FieldsV1 == nil || !ownsData(e.FieldsV1.GetRawBytes()) {
			continue
		}
		if e.Time.After(t) {
			t = e.Time.UTC()
		}
	}
	return t
}

func ownsData(fields []byte) bool {
	return bytes.Contains(fields, []byte(`"f:data"`)) || bytes.Contains(fields, []byte(`"f:binaryData"`))
}

// reducedManager names the one managedFields entry a reduced object keeps.
const reducedManager = "certrollout-reduced"

// reduceMeta drops everything of an object's metadata that certrollout never reads (managedFields beyond
// the data write time, the last-applied annotation that may embed the whole object).
func reduceMeta(meta *metav1.ObjectMeta) {
	// The entry marks the object as reduced (see reduced), and keeps the data write time when known.
	entry := metav1.ManagedFieldsEntry{Manager: reducedManager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{}`)}
	if t := DataWriteTime(meta.ManagedFields); !t.IsZero() {
		entry.Time, entry.FieldsV1 = &metav1.Time{Time: t}, metav1.NewFieldsV1(`{"f:data":{}}`)
	}
	meta.ManagedFields = []metav1.ManagedFieldsEntry{entry}
	delete(meta.Annotations, corev1.LastAppliedConfigAnnotation)
	delete(meta.Annotations, api.AnnotationInvalid) // ours to set, on cached copies only
	delete(meta.Annotations, api.AnnotationKeysWithoutCertificate)
}

// reduced reports whether the object is already a reduced copy: the informer may hand its transform an
// object it transformed before, and reducing twice would lose what the first pass recorded (the parse
// errors of the values it dropped). The mark alone is not trusted (whoever writes an object may write
// its managedFields): every value must also be nothing but certificate blocks, as the reduction leaves
// them.
func reduced(meta *metav1.ObjectMeta, values ...[]byte) bool {
	if len(meta.ManagedFields) != 1 || meta.ManagedFields[0].Manager != reducedManager {
		return false
	}
	for _, v := range values {
		if blocks, ok := certificateBlocks(v); !ok || !bytes.Equal(blocks, v) {
			return false
		}
	}
	return true
}

// ReduceSecret returns the Secret as certrollout keeps it (an already reduced one unchanged): keys without a PEM certificate are dropped and
// the rest keep only their CERTIFICATE blocks, so private keys (tls.key, or keys inside combined PEM
// files) never reach the cache. A key whose PEM does not decode is dropped too, its error kept in
// api.AnnotationInvalid. It modifies and returns s.
func ReduceSecret(s *corev1.Secret) *corev1.Secret {
	values := make([][]byte, 0, len(s.Data))
	for _, v := range s.Data {
		values = append(values, v)
	}
	if len(s.StringData) == 0 && reduced(&s.ObjectMeta, values...) {
		return s
	}
	reduceMeta(&s.ObjectMeta)
	data := map[string][]byte{}
	invalid := map[string]string{}
	var keyOnly []string
	for k, v := range s.Data {
		reduceValue(k, v, data, invalid)
		if keyWithoutCertificate(k, v) {
			keyOnly = append(keyOnly, k)
		}
	}
	s.Data = data
	s.StringData = nil
	setInvalid(&s.ObjectMeta, invalid)
	setKeysWithoutCertificate(&s.ObjectMeta, keyOnly)
	if len(data) == 0 && len(invalid) == 0 && len(keyOnly) == 0 {
		s.Data = nil
		identityOnly(&s.ObjectMeta)
	}
	return s
}

// identityOnly strips an object that holds no certificate down to what tells it apart: certrollout only
// needs to know it exists (a workload may name it). Thousands of Helm release Secrets then cost a few
// hundred bytes each.
func identityOnly(meta *metav1.ObjectMeta) {
	meta.Labels = nil
	meta.Annotations = nil
	meta.OwnerReferences = nil
	meta.Finalizers = nil
	meta.ManagedFields = nil
	meta.GenerateName = ""
}

// ReduceConfigMap does for a ConfigMap what ReduceSecret does for a Secret.
func ReduceConfigMap(cm *corev1.ConfigMap) *corev1.ConfigMap {
	values := make([][]byte, 0, len(cm.Data)+len(cm.BinaryData))
	for _, v := range cm.Data {
		values = append(values, []byte(v))
	}
	for _, v := range cm.BinaryData {
		values = append(values, v)
	}
	if reduced(&cm.ObjectMeta, values...) {
		return cm
	}
	reduceMeta(&cm.ObjectMeta)
	invalid := map[string]string{}
	data := map[string][]byte{}
	var keyOnly []string
	for k, v := range cm.Data {
		reduceValue(k, []byte(v), data, invalid)
		if keyWithoutCertificate(k, []byte(v)) {
			keyOnly = append(keyOnly, k)
		}
	}
	cm.Data = map[string]string{}
	for k, v := range data {
		cm.Data[k] = string(v)
	}
	binary := map[string][]byte{}
	for k, v := range cm.BinaryData {
		reduceValue(k, v, binary, invalid)
		if keyWithoutCertificate(k, v) {
			keyOnly = append(keyOnly, k)
		}
	}
	cm.BinaryData = binary
	setInvalid(&cm.ObjectMeta, invalid)
	setKeysWithoutCertificate(&cm.ObjectMeta, keyOnly)
	if len(cm.Data) == 0 && len(binary) == 0 && len(invalid) == 0 && len(keyOnly) == 0 {
		cm.Data, cm.BinaryData = nil, nil
		identityOnly(&cm.ObjectMeta)
	}
	return cm
}

// keyWithoutCertificate is the one rule for a key worth reporting: a private key and no certificate, under
// a name that expects a certificate.
func keyWithoutCertificate(key string, value []byte) bool {
	return certs.KeyWithoutCertificate(value) && !certs.NamedLikeKey(key)
}

// reduceValue keeps the CERTIFICATE blocks of a value that holds certificates, or records why it cannot:
// a block that does not decode, or a CERTIFICATE block that is not an X.509 certificate. Either way the
// value is dropped, so what the cache holds always parses, and the error reaches an Event.
func reduceValue(key string, v []byte, data map[string][]byte, invalid map[string]string) {
	if !certs.HasPEMCertificate(v) {
		return
	}
	if _, err := certs.ParsePEM(v); err != nil {
		if !errors.Is(err, certs.ErrNoCertificate) {
			invalid[key] = err.Error()
		}
		return
	}
	if blocks, ok := certificateBlocks(v); ok {
		data[key] = blocks
		return
	}
	invalid[key] = "malformed PEM encoding"
}

func setInvalid(meta *metav1.ObjectMeta, invalid map[string]string) {
	if len(invalid) == 0 {
		return
	}
	raw, err := json.Marshal(invalid)
	if err != nil {
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[api.AnnotationInvalid] = string(raw)
}

func setKeysWithoutCertificate(meta *metav1.ObjectMeta, keys []string) {
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	raw, err := json.Marshal(slices.Compact(keys))
	if err != nil {
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[api.AnnotationKeysWithoutCertificate] = string(raw)
}

// certificateBlocks re-encodes only the CERTIFICATE blocks of a PEM value; ok is false when some block
// does not decode.
func certificateBlocks(v []byte) (out []byte, ok bool) {
	var buf bytes.Buffer
	err := certs.EachBlock(v, func(block *pem.Block, _, _ int) error {
		if block.Type == "CERTIFICATE" {
			return pem.Encode(&buf, block)
		}
		return nil
	})
	// A copy of exactly the right size: the cache keeps it for the Secret's lifetime.
	return bytes.Clone(buf.Bytes()), err == nil
}

// Transform is a cache transform (controller-runtime / client-go TransformFunc) applying ReduceSecret
// and ReduceConfigMap. Other objects pass through unchanged.
func Transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Secret:
		return ReduceSecret(o), nil
	case *corev1.ConfigMap:
		return ReduceConfigMap(o), nil
	default:
		return obj, nil
	}
}

// Issuance is what cert-manager reports about the Certificate that issues a Secret.
type Issuance struct {
	// Certificate is the name of the cert-manager Certificate, in the Secret's namespace.
	Certificate string
	// Revision counts the Certificate's issuances; zero before the first.
	Revision int
	// Ready is the Certificate's Ready condition; ReadyMessage explains it when it is not True.
	Ready        bool
	ReadyMessage string
	// RenewalTime is when cert-manager will renew next; NotAfter when the current certificate expires.
	RenewalTime, NotAfter time.Time
	// Current is false when the status describes another certificate than the Secret's leaf (cert-manager
	// writes the Secret first and its status after, so a reader can see the new Secret with the old status).
	Current bool
}

// String reads like "Certificate web-tls revision 3 (Ready)".
func (i *Issuance) String() string {
	state := "Ready"
	if !i.Ready {
		state = "not Ready"
		if i.ReadyMessage != "" {
			state += ": " + i.ReadyMessage
		}
	}
	if !i.Current {
		return fmt.Sprintf("Certificate %s (its status still describes the previous certificate, revision %d)", i.Certificate, i.Revision)
	}
	return fmt.Sprintf("Certificate %s revision %d (%s)", i.Certificate, i.Revision, state)
}

// LinkCertificate finds, among the cert-manager Certificates of a Secret's namespace, the one that issues
// the Secret src, or returns nil. A Certificate whose spec.secretName is the Secret wins, the one the
// Secret's cert-manager.io/certificate-name annotation names first among several; with none, the
// annotated Certificate still counts (cert-manager wrote that name when it last issued the Secret).
func LinkCertificate(src *Source, list []certmanager.Certificate) *Issuance {
	if src.Kind != consumers.KindSecret {
		return nil
	}
	var named, writer *certmanager.Certificate
	for i := range list {
		c := &list[i]
		if c.Namespace != src.Namespace {
			continue
		}
		if c.Name == src.Certificate {
			named = c
		}
		if c.Spec.SecretName == src.Name && (writer == nil || c.Name < writer.Name) {
			writer = c
		}
	}
	c := writer
	if named != nil && (writer == nil || named.Spec.SecretName == src.Name) {
		c = named
	}
	if c == nil {
		return nil
	}
	is := &Issuance{Certificate: c.Name, Ready: c.Ready()}
	if c.Status.Revision != nil {
		is.Revision = *c.Status.Revision
	}
	if cond := c.Condition(certmanager.ConditionReady); cond != nil && !is.Ready {
		is.ReadyMessage = cond.Message
	}
	if t := c.Status.RenewalTime; t != nil {
		is.RenewalTime = t.Time
	}
	if t := c.Status.NotAfter; t != nil {
		is.NotAfter = t.Time
	}
	if b := src.Keys[corev1.TLSCertKey]; b != nil {
		leaf := b.Leaf()
		is.Current = leaf != nil && leaf.NotAfter.Equal(is.NotAfter)
	}
	return is
}
