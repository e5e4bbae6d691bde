package v1alpha1

// The annotations, labels and finalizer certrollout reads and writes, in one place: on workloads, on the
// Secrets and ConfigMaps they use, on cert-manager issuers, and on its own objects. docs/annotations.md
// describes each for users.
const (
	// AnnotationEnabled opts a workload in ("true") or out ("false", also under --auto).
	AnnotationEnabled = "certrollout.io/enabled"
	// AnnotationSecrets names, comma-separated, Secrets a workload uses by means certrollout cannot see
	// (an init container that fetches them, a CSI driver).
	AnnotationSecrets = "certrollout.io/secrets" //nolint:gosec // an annotation name, not a credential
	// AnnotationCertificateHash is the ledger: the certificate set the current pods were started for.
	AnnotationCertificateHash = "certrollout.io/certificate-hash"
	// AnnotationCertificateNotAfter is when the earliest certificate of that set expires (RFC 3339).
	AnnotationCertificateNotAfter = "certrollout.io/certificate-not-after"
	// AnnotationPreviousNotAfter is when the earliest certificate of the set the pods ran on before the
	// last restart expires (RFC 3339): the pods a rollout has not replaced yet still run on it.
	AnnotationPreviousNotAfter = "certrollout.io/previous-certificate-not-after"
	// AnnotationRestartedAt is when certrollout last restarted the workload (RFC 3339).
	AnnotationRestartedAt = "certrollout.io/restarted-at"
	// AnnotationRestartHistory is when certrollout restarted the workload within the last 24 hours:
	// RFC 3339 times, comma-separated, oldest first. The restart budget counts it.
	AnnotationRestartHistory = "certrollout.io/restart-history"
	// AnnotationRestartHash goes on the pod template: changing it is what rolls the pods.
	AnnotationRestartHash = "certrollout.io/restart-hash"
	// AnnotationDeleteStalePods lets certrollout delete bare pods that run on old certificates.
	AnnotationDeleteStalePods = "certrollout.io/delete-stale-pods"
	// AnnotationRollout goes on the pod template with an orchestrated restart: the CertRollout that made it.
	AnnotationRollout = "certrollout.io/rollout"
	// AnnotationQuiescedBy and AnnotationQuiescedReplicas are written on a workload a CertRollout scales
	// to zero, in the same patch: which rollout did it and the replica count it gets back.
	// A MaintenanceHold writes the same two, with quiesced-by "MaintenanceHold/<name>" (HoldQuiescer).
	AnnotationQuiescedBy       = "certrollout.io/quiesced-by"
	AnnotationQuiescedReplicas = "certrollout.io/quiesced-replicas"
	// HoldQuiescerPrefix starts the AnnotationQuiescedBy value of a workload a MaintenanceHold holds.
	HoldQuiescerPrefix = "MaintenanceHold/"
	// AnnotationOrder orders a policy's targets in its rollouts: lower first (default 0), then by kind
	// and name.
	AnnotationOrder = "certrollout.io/order"
	// AnnotationCascade opts a cert-manager CA issuer into CA cascades ("true").
	AnnotationCascade = "certrollout.io/cascade"
	// AnnotationInvalid is written on the cached (reduced) copy of a Secret or ConfigMap whose certificate
	// data does not parse: the keys and why.
	AnnotationInvalid = "certrollout.io/invalid-keys"
	// AnnotationKeysWithoutCertificate is written on the cached copy of a Secret or ConfigMap whose keys
	// hold a private key and no certificate where the name does not say "key" (tls.crt, ca.pem): a JSON
	// list of those keys.
	AnnotationKeysWithoutCertificate = "certrollout.io/keys-without-certificate"
	// AnnotationReloadsItself ("true") says a workload's processes reload their certificates when the
	// files change: its pods count as current once the certificates changed, and it is never restarted
	// for a renewal.
	AnnotationReloadsItself = "certrollout.io/reloads-itself"
	// AnnotationProbe lists a workload's TLS ports, comma-separated port numbers or container port names
	// ("8443,https"): certrollout connects to each pod on them and reads the certificate it serves. Without
	// it, container ports named "https" or with "tls" in their name are probed.
	AnnotationProbe = "certrollout.io/probe"
	// AnnotationVerification records, as JSON, what probes found after the pods were rolled or reloaded
	// onto a set of certificates: {"hash", "verified", "how", "message", "at"}.
	AnnotationVerification = "certrollout.io/verification"
	// AnnotationReload is a workload's reload action, "METHOD URL" with no host in the URL ("POST
	// http://:8080/-/reload"): instead of restarting it for renewed certificates, certrollout makes this
	// call to each pod, probes until every pod serves them, and restarts only if they do not within
	// AnnotationReloadTimeout (default 1m). Needs a TLS probe (AnnotationProbe) to verify the reload.
	AnnotationReload = "certrollout.io/reload"
	// AnnotationReloadTimeout is how long the pods may take to serve the certificates after the reload
	// call (a Go duration, at most 1h).
	AnnotationReloadTimeout = "certrollout.io/reload-timeout"
	// AnnotationReloadAttempt records, as JSON, the last reload call: {"hash", "at", "failed", "message"}.
	AnnotationReloadAttempt = "certrollout.io/reload-attempt"

	// LabelPolicy names the RolloutPolicy a CertRollout the controller created follows (for kubectl -l).
	LabelPolicy = "certrollout.io/policy"
	// LabelSettings marks the ConfigMap in which the controller publishes its settings.
	LabelSettings = "certrollout.io/settings"

	// FinalizerRestore keeps a CertRollout that quiesced workloads until they are restored.
	FinalizerRestore = "certrollout.io/restore-quiesced"
	// FinalizerReleaseHold keeps a deleted MaintenanceHold until its workloads are restored.
	FinalizerReleaseHold = "certrollout.io/release-hold"
)

// The kinds of workload certrollout knows (package kinds has the table).
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindCronJob     = "CronJob"
	KindPod         = "Pod"
)

// Reasons of the decision about one workload, on its Events, in `certrollout plan` and in metric labels.
const (
	ReasonNoCertificates     = "NoCertificates"
	ReasonUpToDate           = "UpToDate"
	ReasonPodsCurrent        = "PodsCurrent"
	ReasonNotEnabled         = "NotEnabled"
	ReasonDeploymentPaused   = "DeploymentPaused"
	ReasonOnDeleteStrategy   = "OnDeleteStrategy"
	ReasonPartitioned        = "StatefulSetPartition"
	ReasonBarePod            = "BarePod"
	ReasonCronJob            = "CronJobRunsNewJobs"
	ReasonStaleRunningJobs   = "StaleRunningJobs"
	ReasonCooldown           = "Cooldown"
	ReasonSettling           = "Settling"
	ReasonCertificateRenewed = "CertificateRenewed"
	ReasonStalePods          = "StalePods"
	ReasonGovernedByPolicy   = "GovernedByPolicy"
	ReasonCascadeInProgress  = "CascadeInProgress"
	ReasonRestartBudget      = "RestartBudgetExhausted"
)

// Reasons of the controller's Events on workloads, Secrets, ConfigMaps and issuers.
const (
	// ReasonRestarted: a workload was restarted (also a CertRollout's Event for each target).
	ReasonRestarted = "Restarted"
	// ReasonRateLimited: a due restart waits for the global restart rate.
	ReasonRateLimited = "RateLimited"
	// ReasonInvalidCertificate marks a Secret or ConfigMap with a value that looks like PEM certificates
	// but does not parse. Workloads that use it keep running on what they have.
	ReasonInvalidCertificate = "InvalidCertificate"
	// ReasonKeyWithoutCertificate marks a Secret or ConfigMap key (or a file) that holds a private key and
	// no certificate where a certificate is expected.
	ReasonKeyWithoutCertificate = "KeyWithoutCertificate"
	// ReasonReloadsItself: the workload reloads its certificates itself (AnnotationReloadsItself); the
	// change was recorded, nothing restarted.
	ReasonReloadsItself = "ReloadsItself"
	// ReasonReloadedByItself: pods that started before the certificates were issued already serve them,
	// as a TLS probe showed (AnnotationProbe); the change was recorded, nothing restarted.
	ReasonReloadedByItself = "ReloadedByItself"
	// ReasonInvalidProbe: a workload's AnnotationProbe names a port its pods do not have.
	ReasonInvalidProbe = "InvalidProbe"
	// ReasonReloading: certrollout called the workload's reload hook (AnnotationReload) and waits for its
	// pods to serve the new certificates.
	ReasonReloading = "Reloading"
	// ReasonReloaded: after the reload hook every pod serves the new certificates; nothing restarted.
	ReasonReloaded = "Reloaded"
	// ReasonInvalidReload: the workload's AnnotationReload or AnnotationReloadTimeout cannot be used.
	ReasonInvalidReload = "InvalidReload"
	// ReasonPropagating: pods probed after a change of certificates still serve an old one, and may yet
	// pick the new one up (the kubelet refreshes mounted files on its next sync); the decision waits.
	ReasonPropagating = "Propagating"
	// ReasonVerified: after a restart (or reload) every pod serves the new certificates, as probes showed.
	ReasonVerified = "Verified"
	// ReasonNotVerified: after a restart (or reload) some pod still serves an old certificate, or none
	// answered its probe in time.
	ReasonNotVerified = "NotVerified"
	// ReasonCascadeStarted: the controller created a cascade CertRollout for an issuer's new CA.
	ReasonCascadeStarted = "CascadeStarted"
	// ReasonInvalidCA: a cascading issuer's CA cannot be read (its Secret is missing, or holds no
	// certificate), so nothing it signed can be checked or re-issued.
	ReasonInvalidCA = "InvalidCA"
	// ReasonTrustBundleChanged: the CAs of a ClusterTrustBundle the workload projects changed; the
	// message says whether the change only adds CAs (the trust-first step) or removes some.
	ReasonTrustBundleChanged = "TrustBundleChanged"
)

// Reasons of a CertRollout's Events and conditions, both kinds (restarts and CA cascades).
const (
	ReasonSucceeded = "Succeeded"
	ReasonFailed    = "Failed"
	// ReasonInvalid: the rollout's spec cannot be followed (a target of another namespace, no targets).
	ReasonInvalid = "InvalidRollout"

	ReasonStarted          = "Started"
	ReasonDeadlineOverride = "DeadlineOverride"
	// ReasonEmergencyStart: the rollout started at once because its spec.emergency asked (restart --now),
	// whatever the windows, the policy's suspension or validity and other namespaces' rollouts said.
	ReasonEmergencyStart   = "EmergencyStart"
	ReasonWaitingForWindow = "WaitingForWindow"
	ReasonScaledDown       = "ScaledDown"
	ReasonDrained          = "Drained"
	ReasonDrainTimedOut    = "DrainTimedOut"
	ReasonTargetHealthy    = "TargetHealthy"
	ReasonTargetUpToDate   = "TargetUpToDate"
	ReasonTargetFailed     = "TargetFailed"
	ReasonRestored         = "Restored"
	ReasonPolicySuspended  = "PolicySuspended"
	ReasonPolicyInvalid    = "PolicyInvalid"
	ReasonConcurrencyLimit = "ConcurrencyLimit"
	ReasonQuiesceConflict  = "QuiesceConflict"
	// ReasonAdopted: a workload this rollout scaled down that its status did not list (the status write
	// after the scale-down was lost) is taken back into the status, to be restored like the others.
	ReasonAdopted = "QuiesceAdopted"
	// ReasonQuiesceOverridden: a quiesced workload was scaled by someone else during the quiesce; the
	// restore sets the recorded count anyway and says what it replaced.
	ReasonQuiesceOverridden = "QuiesceOverridden"
	// ReasonNothingRecorded: a quiesced workload has no recorded replica count anywhere; it keeps the
	// replicas it has and loses its quiesce marks, and a person must scale it.
	ReasonNothingRecorded = "NothingRecorded"
	// ReasonRestoredOrphan: the sweeper restored a workload left at zero replicas by a CertRollout that
	// is gone or finished.
	ReasonRestoredOrphan = "RestoredOrphan"

	ReasonRefreshingTrust  = "RefreshingTrust"
	ReasonTrustRefreshed   = "TrustRefreshed"
	ReasonTrustTimedOut    = "TrustTimedOut"
	ReasonReissuing        = "Reissuing"
	ReasonLeafIssued       = "LeafIssued"
	ReasonLeafFailed       = "LeafFailed"
	ReasonLeavesFailed     = "LeavesFailed"
	ReasonIssuerNotFound   = "IssuerNotFound"
	ReasonIssuerNotReady   = "IssuerNotReady"
	ReasonCAChanged        = "CAChanged"
	ReasonCARotatedTrigger = "CARotated"
	// ReasonRefused: the rollout may not run this cascade (a ClusterIssuer's from another namespace than
	// cert-manager's cluster resource namespace, or for a ClusterIssuer that has not opted in).
	ReasonRefused = "CascadeRefused"
)

// Reasons of a RolloutPolicy's conditions and Events (ReasonUpToDate is the workload decision's).
const (
	ReasonValid = "Valid"
	// ReasonDrainShorterThanGrace: the policy is valid, but a quiesced workload's pods may take longer to
	// stop (terminationGracePeriodSeconds) than its drainTimeout waits for them.
	ReasonDrainShorterThanGrace = "DrainShorterThanGrace"
	ReasonInvalidPolicy         = "InvalidPolicy"
	ReasonRolloutCreated        = "RolloutCreated"
	ReasonRolloutInProgress     = "RolloutInProgress"
	ReasonSuspended             = "Suspended"
	ReasonLastRolloutFailed     = "LastRolloutFailed"
	ReasonWaiting               = "Waiting"
)

// Reasons of a MaintenanceHold's conditions and Events (and of the Events on the workloads it holds).
// ReasonScaledDown, ReasonRestored, ReasonQuiesceConflict and ReasonNothingRecorded are shared with
// CertRollouts.
const (
	// ReasonInvalidHold: the hold's targets cannot be held (another namespace, a workload that does not
	// exist, a selector that matches nothing); it is Stalled until they can.
	ReasonInvalidHold = "InvalidHold"
	// ReasonHoldDraining: workloads were scaled to zero and still have pods.
	ReasonHoldDraining = "Draining"
	// ReasonHeld: every workload is at zero replicas and has no pod left.
	ReasonHeld = "Held"
	// ReasonHoldEnforced: a held workload was scaled up (by an HPA or a person) and the hold scaled it
	// back to zero. The HPA itself is never edited.
	ReasonHoldEnforced = "HoldEnforced"
	// ReasonHoldReleasing: the hold was released, expired or is being deleted; workloads are restored.
	ReasonHoldReleasing = "Releasing"
	// ReasonReleased: every workload of the hold got its recorded count back.
	ReasonReleased = "Released"
	// ReasonHoldExpired: spec.expiresAt passed, so the hold released itself.
	ReasonHoldExpired = "Expired"
)
