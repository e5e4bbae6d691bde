package cli

import (
	"fmt"
	"strings"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// notesString lists the workloads not acted on, each with why: "CronJob/nightly (its next Jobs ...); ...".
func notesString(notes []WorkloadNote) string {
	s := make([]string, len(notes))
	for i, n := range notes {
		s[i] = workloadKey(n.Kind, n.Name) + " (" + n.Reason + ")"
	}
	return strings.Join(s, "; ")
}

// describePlan says what a planned rollout restarts: "policy build: Deployment/build" or
// "Deployment/web, StatefulSet/db".
func describePlan(p plannedRollout) string {
	spec := p.Rollout.Spec
	switch {
	case spec.Policy != "" && len(spec.Targets) == 0:
		s := "policy " + spec.Policy + ": all it governs"
		if len(p.Selected) > 0 {
			s += " (" + refsString(p.Selected) + ")"
		}
		return s
	case spec.Policy != "":
		return "policy " + spec.Policy + ": " + refsString(spec.Targets)
	default:
		return refsString(spec.Targets)
	}
}

// followedLine says that an existing rollout is followed rather than a new one created.
func followedLine(p plannedRollout) string {
	ro := p.Rollout
	return fmt.Sprintf("certrollout.certrollout.io/%s exists for %s (%s, %s): following it instead of creating another",
		ro.Name, describePlan(p), orElse(string(ro.Spec.Trigger.Type), string(api.TriggerManual)), orElse(string(ro.Status.Phase), "not started"))
}

// createdLine is what kubectl prints for a created object, with what the rollout restarts. A client dry
// run has no name yet: the API server generates it.
func createdLine(p plannedRollout, dryRun DryRunFlag) string {
	name := p.Rollout.Name
	if name == "" {
		name = p.Rollout.GenerateName + "<generated>"
	}
	s := fmt.Sprintf("certrollout.certrollout.io/%s created%s: %s", name, dryRun.dryRunSuffix(), describePlan(p))
	if e := p.Rollout.Spec.Emergency; e != nil {
		s += fmt.Sprintf(" (EMERGENCY: starts at once, requested by %s: %s)", orElse(e.RequestedBy, "an unnamed user"), e.Reason)
	}
	return s
}
