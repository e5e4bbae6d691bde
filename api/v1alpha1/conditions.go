package v1alpha1

// Condition types every certrollout.io object carries, in the kstatus convention that Flux, Argo CD and
// `kubectl wait --for=condition=Ready` read:
//   - Ready is True when the object is where its spec asks: a RolloutPolicy is valid and every workload
//     it governs runs on current certificates; a CertRollout succeeded. False otherwise, with a reason,
//     so waiting for Ready after a renewal waits for the rollout to finish.
//   - Reconciling is True while the controller works towards Ready (a rollout in progress, a policy with a
//     rollout running); absent otherwise.
//   - Stalled is True when the object cannot progress without a change by a person (an invalid policy, a
//     failed rollout); absent otherwise.
//
// Each carries observedGeneration.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)
