package cli

import (
	"time"
)

// PlanReport is the JSON/YAML document of `certrollout plan` (kind PlanReport; schema in docs/plan.md).
type PlanReport struct {
	APIVersion  string    `json:"apiVersion"`
	Kind        string    `json:"kind"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Controller says which controller settings the decisions assume, and where they came from.
	Controller AssumedSettings `json:"controller"`
	// Incomplete says which issuers the plan could not read (a user who may not list ClusterIssuers), so
	// holds for their CA cascades are not shown; empty when it read them all.
	Incomplete string `json:"incomplete,omitempty"`
	// BundlesUnread is true when the user may not list ClusterTrustBundles, which the controller reads:
	// workloads that project one are planned without it.
	BundlesUnread bool           `json:"bundlesUnread,omitempty"`
	Items         []WorkloadPlan `json:"items"`
	// Probes are, with --probe, the certificates the listed workloads' pods serve on their TLS ports.
	Probes []WorkloadProbe `json:"probes,omitempty"`
}

// WorkloadPlan is what certrollout knows and will do about one workload.
type WorkloadPlan struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// Enabled: certrollout may restart it (annotation, --auto, or selected by a RolloutPolicy).
	Enabled bool `json:"enabled"`
	// Pods counts its running pods; StalePods names those started before their certificates were issued.
	Pods      int      `json:"pods"`
	StalePods []string `json:"stalePods,omitempty"`
	// Action is the controller's decision: None, Record, Restart, Block, Wait or Delegate (to a policy).
	Action string `json:"action"`
	// Reason is the decision's reason (the words Events and metrics use); Message explains it.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Next says in one sentence what happens next; NextAt is when, if known.
	Next   string     `json:"next"`
	NextAt *time.Time `json:"nextAt,omitempty"`
	// Certificates compares what the pods run on with what the workload uses now.
	Certificates PlanCertificates `json:"certificates"`
	// Sources are the Secrets and ConfigMaps it uses; Missing those it names that do not exist; Unread the
	// ClusterTrustBundles it projects that the user may not list (see PlanReport.BundlesUnread).
	Sources []PlanSource `json:"sources"`
	Missing []string     `json:"missing,omitempty"`
	Unread  []string     `json:"unread,omitempty"`
	// Policy is the RolloutPolicy that governs it; absent when none does.
	Policy *PlanPolicy `json:"policy,omitempty"`
	// Emergency is the command that restarts it at once (restart --now), given when a restart it needs is
	// held back (a window, a suspended, invalid or failed policy, a wait, the restart budget) and the
	// certificate its pods run on expires within the policy's expiryDeadline, or 7 days without one.
	Emergency string `json:"emergency,omitempty"`
}

// PlanCertificates are certificate sets, identified by the hash certrollout records on workloads.
type PlanCertificates struct {
	// Running is the set the pods were last (re)started for, from the workload's
	// certrollout.io/certificate-hash annotation; empty when certrollout has not recorded one yet.
	Running string `json:"running,omitempty"`
	// RunningNotAfter is when the earliest certificate of the running set expires.
	RunningNotAfter *time.Time `json:"runningNotAfter,omitempty"`
	// Current is the set the workload's Secrets and ConfigMaps hold now.
	Current         string     `json:"current,omitempty"`
	CurrentNotAfter *time.Time `json:"currentNotAfter,omitempty"`
	// IssuedAt is when the newest of the current certificates was issued: pods started before it are stale.
	IssuedAt *time.Time `json:"issuedAt,omitempty"`
}

// PlanSource is one Secret or ConfigMap a workload uses.
type PlanSource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Keys it reads (empty: all), and how: volume, subPath, env, annotation.
	Keys  []string `json:"keys,omitempty"`
	Modes []string `json:"modes"`
	// NeverRefreshed: env or subPath, which no certificate reload inside the process can pick up.
	NeverRefreshed bool `json:"neverRefreshed,omitempty"`
	// Leaf is the first certificate of the keys it reads (the serving or client certificate).
	Leaf     *PlanCertificate `json:"leaf,omitempty"`
	IssuedAt *time.Time       `json:"issuedAt,omitempty"`
	// CertManager names the cert-manager Certificate that issues it.
	CertManager string `json:"certManager,omitempty"`
	// CAChain is set when that Certificate is signed by a cert-manager CA Issuer or ClusterIssuer: whether
	// the Secret's certificate was issued by the issuer's current CA (as in CheckReport).
	CAChain *CheckCAChain `json:"caChain,omitempty"`
}

// PlanCertificate identifies one certificate.
type PlanCertificate struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serialNumber"`
	Fingerprint string    `json:"sha256Fingerprint"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
}

// PlanPolicy is the RolloutPolicy that governs a workload, as it applies to it.
type PlanPolicy struct {
	Name string `json:"name"`
	// Invalid says why the policy cannot be followed; empty when it can.
	Invalid string `json:"invalid,omitempty"`
	// Warnings say how a valid policy may not do what its author expects (a quiesced workload whose
	// termination grace period is longer than its drainTimeout).
	Warnings  []string `json:"warnings,omitempty"`
	Suspended bool     `json:"suspended,omitempty"`
	// WindowOpen is true when a maintenance window is open now (or the policy has none); NextWindow is
	// when the next opens.
	WindowOpen bool       `json:"windowOpen"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// ExpiryDeadline is spec.expiryDeadline; DeadlineAt is when it lets a rollout start outside the
	// windows for this workload (expiry of the certificate its pods run on, minus the deadline).
	ExpiryDeadline string     `json:"expiryDeadline,omitempty"`
	DeadlineAt     *time.Time `json:"deadlineAt,omitempty"`
	// Quiesce lists what is scaled to zero before the restart and restored after.
	Quiesce []PlanQuiesce `json:"quiesce,omitempty"`
	// PendingReason and Pending are the RolloutPolicy controller's Pending condition for its due
	// workloads, as it decides it now (RolloutInProgress, InvalidPolicy, Suspended, LastRolloutFailed,
	// Waiting); empty when nothing is pending.
	PendingReason string `json:"pendingReason,omitempty"`
	Pending       string `json:"pending,omitempty"`
	// Creates names the CertRollout the RolloutPolicy controller creates now for its due workloads.
	Creates string `json:"creates,omitempty"`
	// ActiveRollout is the policy's CertRollout in progress, with its phase.
	ActiveRollout      string `json:"activeRollout,omitempty"`
	ActiveRolloutPhase string `json:"activeRolloutPhase,omitempty"`
}

// PlanQuiesce is one workload a policy quiesces.
type PlanQuiesce struct {
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	DrainTimeout string `json:"drainTimeout,omitempty"`
}
