package orchestrate

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// assignSteps gives each target its step and puts the targets in step order, keeping their order inside
// a step (the rollout's own for explicit targets, the policy's otherwise). With the policy's steps, a
// target is in the first step that names or selects it, and targets in none form a last step. Without
// them, the targets' certrollout.io/order annotations (integers, 0 when absent or unreadable) make a step
// per distinct value, lower first. A rollout with a single group, or without a policy, has no steps
// (every Step 0), as before steps existed.
func assignSteps(p *Policy, targets []api.TargetStatus, ws map[Key]Workload) {
	if p == nil || len(targets) == 0 {
		return
	}
	var of func(Key) int32
	if steps := p.Spec.Steps; len(steps) > 0 {
		of = func(k Key) int32 { return stepOf(steps, k, ws[k].Labels) }
	} else {
		rank := orderRanks(targets, ws)
		of = func(k Key) int32 { return rank[annotatedOrder(ws[k])] }
	}
	for i := range targets {
		targets[i].Step = of(Key{targets[i].Kind, targets[i].Name})
	}
	if first := targets[0].Step; !slices.ContainsFunc(targets, func(t api.TargetStatus) bool { return t.Step != first }) {
		for i := range targets {
			targets[i].Step = 0 // one group: nothing to say
		}
		return
	}
	slices.SortStableFunc(targets, func(a, b api.TargetStatus) int { return int(a.Step - b.Step) })
}

// stepOf is the 1-based step of steps that names or selects the workload first; len(steps)+1 for none.
// A selector that does not parse selects nothing (parsePolicy reports it as invalid).
func stepOf(steps []api.RolloutStep, k Key, lbls map[string]string) int32 {
	for i, st := range steps {
		if slices.ContainsFunc(st.Workloads, func(w api.WorkloadReference) bool { return w.Kind == k.Kind && w.Name == k.Name }) {
			return int32(i + 1)
		}
		if st.Selector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(st.Selector); err == nil && sel.Matches(labels.Set(lbls)) {
			return int32(i + 1)
		}
	}
	return int32(len(steps) + 1) //nolint:gosec // at most 32 steps (the CRD says so)
}

// annotatedOrder reads the certrollout.io/order annotation: 0 when absent or not an integer.
func annotatedOrder(w Workload) int {
	n, _ := strconv.Atoi(w.Order)
	return n
}

// orderRanks maps each distinct annotated order among the targets to its 1-based rank.
func orderRanks(targets []api.TargetStatus, ws map[Key]Workload) map[int]int32 {
	var values []int
	for _, t := range targets {
		values = append(values, annotatedOrder(ws[Key{t.Kind, t.Name}]))
	}
	slices.Sort(values)
	values = slices.Compact(values)
	rank := make(map[int]int32, len(values))
	for i, v := range values {
		rank[v] = int32(i + 1)
	}
	return rank
}

// currentStep is the lowest step with a target that has not finished (pending or restarting); targets of
// later steps wait for it.
func currentStep(ts []api.TargetStatus) int32 {
	current := int32(-1)
	for _, t := range ts {
		if (t.State == api.TargetPending || t.State == api.TargetRestarting) && (current < 0 || t.Step < current) {
			current = t.Step
		}
	}
	return current
}
