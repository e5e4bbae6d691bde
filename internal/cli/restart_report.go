package cli

import (
	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// RestartReport is what `restart -o json|yaml` prints: the CertRollouts created (or, under --dry-run,
// those that would be), as they finished with --wait, and the consumers of --secret that cannot be
// restarted. Rollouts are the API's own CertRollout objects.
type RestartReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	DryRun     bool   `json:"dryRun,omitempty"`
	// DryRunMode is client or server under --dry-run.
	DryRunMode     string            `json:"dryRunMode,omitempty"`
	Rollouts       []api.CertRollout `json:"rollouts"`
	NotRestartable []WorkloadNote    `json:"notRestartable,omitempty"`
	// ControlPlaneRollouts is, under --control-plane, the ControlPlaneRollout created (or followed, or
	// that would be created), as it finished with --wait; Rollouts is then empty.
	ControlPlaneRollouts []api.ControlPlaneRollout `json:"controlPlaneRollouts,omitempty"`
}

// WorkloadNote is a workload a command did not act on, and why. It is part of the RestartReport and
// RenewReport schemas.
type WorkloadNote struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}
