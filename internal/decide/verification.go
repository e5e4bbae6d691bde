package decide

import (
	"encoding/json"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Ways the pods came to serve a set of certificates (Verification.How).
const (
	HowRestarted        = "Restarted"
	HowReloadedByItself = "ReloadedByItself"
	HowReloaded         = "Reloaded"
)

// Verification is what probes found after the pods were rolled (or reloaded) onto a set of certificates:
// whether every pod serves it. It is kept on the workload (api.AnnotationVerification) so that it is
// verified once per set, survives a controller restart, and `kubectl get -o yaml` shows it.
type Verification struct {
	// Hash is the certificate set verified (the ledger's hash at the time).
	Hash     string `json:"hash"`
	Verified bool   `json:"verified"`
	// How the pods came to serve it: Restarted, ReloadedByItself or Reloaded.
	How string `json:"how,omitempty"`
	// Message says what was found: how many pods serve the set, or which do not and what they serve.
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// OldPods are the pods probes saw serving a certificate outside the set: stale, whatever their start
	// time, until they are gone.
	OldPods []string `json:"oldPods,omitempty"`
	// Pending is written with a restart certrollout made that is to be verified once the new pods run:
	// only such a restart is verified on the workload (a CertRollout verifies its own targets).
	Pending bool `json:"pending,omitempty"`
}

// ServingOld are the pods the workload's verification record saw serving a certificate outside its
// current set hash; nil when the record is of another set or found none.
func ServingOld(annotations map[string]string, hash string) []string {
	v, ok := ReadVerification(annotations)
	if !ok || v.Hash != hash {
		return nil
	}
	return v.OldPods
}

// ReadVerification reads the workload's verification record; ok is false when there is none or it is
// unreadable (a hand edit), which reads as "not verified yet".
func ReadVerification(annotations map[string]string) (v Verification, ok bool) {
	raw := annotations[api.AnnotationVerification]
	if raw == "" {
		return Verification{}, false
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v.Hash == "" {
		return Verification{}, false
	}
	return v, true
}

// Annotation is the record as the annotation's value.
func (v Verification) Annotation() string {
	v.At = v.At.UTC().Truncate(time.Second)
	data, _ := json.Marshal(v) // a struct of strings, a bool and a time: cannot fail
	return string(data)
}

// VerifiedCurrent reports whether the record says every pod serves the set hash: pods that predate it
// are then not stale, whatever their start time (they reloaded it).
func VerifiedCurrent(annotations map[string]string, hash string) bool {
	v, ok := ReadVerification(annotations)
	return ok && v.Verified && v.Hash == hash
}

// ServesCurrent reports whether probes verified that every pod serves the workload's current set: none
// is stale then, whatever its start time.
func (in Input) ServesCurrent() bool { return VerifiedCurrent(in.Workload.Annotations, in.Set.Hash) }
