package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
)

// Planning CertRollouts: grouping workloads by the RolloutPolicy that governs them, as the controller does.

// planner builds the CertRollouts for a restart in one namespace.
type planner struct {
	c  client.Client
	ns string
	// message is the trigger message of every rollout it builds.
	message string
	// emergency, when set, makes every rollout it builds an emergency (restart --now).
	emergency *api.EmergencySpec
}

// plannedRollout is a CertRollout to create, with what its policy selects when it names no targets
// (for the summary line).
type plannedRollout struct {
	Rollout  *api.CertRollout
	Selected []api.WorkloadReference
}

// newRollout returns an unsaved CertRollout named after base.
func (p *planner) newRollout(policyName, base string, targets []api.WorkloadReference) *api.CertRollout {
	ro := &api.CertRollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: api.GroupVersion.String(), Kind: "CertRollout"},
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, GenerateName: generateName(base)},
		Spec: api.CertRolloutSpec{
			Policy:  policyName,
			Targets: targets,
			Trigger: api.RolloutTrigger{Type: api.TriggerManual, Message: p.message},
		},
	}
	if p.emergency != nil {
		ro.Spec.Emergency = p.emergency.DeepCopy()
	}
	if policyName != "" {
		// The controller labels its own rollouts this way; ours too, so `kubectl get cro -l` and the
		// policy's history see both.
		ro.Labels = map[string]string{api.LabelPolicy: policyName}
	}
	return ro
}

// generateName is base followed by "-", cut the way the API server cuts a generateName (it keeps 58
// characters and adds 5), so a long policy name still yields a valid name.
func generateName(base string) string {
	const maxBase = 57
	base = strings.TrimRight(strings.ToLower(base), "-.")
	if len(base) > maxBase {
		base = strings.TrimRight(base[:maxBase], "-.")
	}
	if base == "" {
		base = "restart"
	}
	return base + "-"
}

// forPolicy plans one rollout of everything policy name selects.
func (p *planner) forPolicy(ctx context.Context, name string) (plannedRollout, error) {
	var pol api.RolloutPolicy
	if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name}, &pol); err != nil {
		if isMissingObject(err, api.GroupVersion.Group) {
			return plannedRollout{}, errors.New(notFound("RolloutPolicy", name, p.ns, "kubectl get rolloutpolicies -n "+p.ns))
		}
		return plannedRollout{}, err
	}
	selected, err := controller.NewGovernance(p.c).Governed(ctx, &pol)
	if err != nil {
		return plannedRollout{}, err
	}
	if len(selected) == 0 {
		return plannedRollout{}, fmt.Errorf("RolloutPolicy %q governs no workload in namespace %q: nothing to restart (its selector matches no Deployment, StatefulSet or DaemonSet another policy does not govern first)", name, p.ns)
	}
	return plannedRollout{Rollout: p.newRollout(name, name, nil), Selected: selected}, nil
}

// forWorkloads plans the rollouts of refs: those a RolloutPolicy governs go into one rollout per policy
// that follows it (its quiesce list, windows, order and health timeout apply, and its targets are put
// in the policy's order); the others into one rollout without a policy, named after the workload when
// there is one, else after base. Missing workloads are an error naming each.
func (p *planner) forWorkloads(ctx context.Context, refs []api.WorkloadReference, base string) ([]plannedRollout, error) {
	gov := controller.NewGovernance(p.c)
	byPolicy := map[string][]api.WorkloadReference{}
	var missing []string
	seen := map[api.WorkloadReference]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		obj, _, ok := controller.NewWorkloadObject(ref.Kind)
		if !ok {
			return nil, fmt.Errorf("cannot restart %s: not a Deployment, StatefulSet or DaemonSet", ref.Key())
		}
		if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: ref.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, notFound(ref.Kind, ref.Name, p.ns, ""))
				continue
			}
			return nil, err
		}
		name, governed, err := gov.Governing(ctx, obj)
		if err != nil {
			return nil, err
		}
		if !governed {
			name = ""
		}
		byPolicy[name] = append(byPolicy[name], ref)
	}
	if len(missing) > 0 {
		return nil, errors.New(strings.Join(missing, "; "))
	}
	names := make([]string, 0, len(byPolicy))
	for n := range byPolicy {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []plannedRollout
	for _, n := range names {
		targets := byPolicy[n]
		var pol api.RolloutPolicy
		if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: n}, &pol); err != nil {
			return nil, err
		}
		order, err := gov.Governed(ctx, &pol)
		if err != nil {
			return nil, err
		}
		sortLike(targets, order)
		out = append(out, plannedRollout{Rollout: p.newRollout(n, n, targets)})
	}
	if targets := byPolicy[""]; len(targets) > 0 {
		b := base
		if len(targets) == 1 {
			b = targets[0].Name
		}
		out = append(out, plannedRollout{Rollout: p.newRollout("", b, targets)})
	}
	return out, nil
}

// coveredByPolicyRollouts splits refs for a renewal's restart: those an unfinished CertRollout of their
// RolloutPolicy will already roll onto hashes[ref] (the certificates they use now), typically the one the
// controller created when it saw the renewal, and the rest. A second rollout for those would restart them
// twice for one renewal; following the existing one shows the same thing. found holds each such rollout
// once, in the order its first ref came.
func (p *planner) coveredByPolicyRollouts(ctx context.Context, refs []api.WorkloadReference, hashes map[api.WorkloadReference]string) (found []plannedRollout, rest []api.WorkloadReference, err error) {
	var list api.CertRolloutList
	if err := p.c.List(ctx, &list, client.InNamespace(p.ns)); err != nil {
		return nil, nil, err
	}
	sortRollouts(list.Items)
	gov := controller.NewGovernance(p.c)
	selected := map[string][]api.WorkloadReference{}
	taken := map[string]bool{}
	for _, ref := range refs {
		obj, _, ok := controller.NewWorkloadObject(ref.Kind)
		if !ok {
			rest = append(rest, ref)
			continue
		}
		if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: ref.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				rest = append(rest, ref) // forWorkloads names it as missing
				continue
			}
			return nil, nil, err
		}
		name, governed, err := gov.Governing(ctx, obj)
		if err != nil {
			return nil, nil, err
		}
		var cover *api.CertRollout
		for i := range list.Items {
			ro := &list.Items[i]
			if !governed || ro.Spec.Policy != name || ro.Status.Phase.Finished() || ro.DeletionTimestamp != nil {
				continue
			}
			if _, ok := selected[name]; !ok && len(ro.Spec.Targets) == 0 && len(ro.Status.Targets) == 0 {
				var pol api.RolloutPolicy
				if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name}, &pol); err != nil {
					return nil, nil, err
				}
				if selected[name], err = gov.Governed(ctx, &pol); err != nil {
					return nil, nil, err
				}
			}
			if rolloutCovers(ro, ref, hashes[ref], selected[name]) {
				cover = ro
				break
			}
		}
		if cover == nil {
			rest = append(rest, ref)
			continue
		}
		if !taken[cover.Name] {
			taken[cover.Name] = true
			cover.APIVersion, cover.Kind, cover.ManagedFields = api.GroupVersion.String(), "CertRollout", nil
			found = append(found, plannedRollout{Rollout: cover, Selected: selected[name]})
		}
	}
	return found, rest, nil
}

// rolloutCovers reports whether the unfinished rollout ro will leave ref running on the certificates
// hash: ref is one of its targets (its policy's selected workloads when it names none) and it has not
// restarted ref onto other certificates, nor been created for other ones.
func rolloutCovers(ro *api.CertRollout, ref api.WorkloadReference, hash string, selected []api.WorkloadReference) bool {
	if h := ro.Spec.Trigger.Certificates[ref.Key()]; h != "" && h != hash {
		return false
	}
	same := func(kind, name string) bool { return kind == ref.Kind && name == ref.Name }
	if len(ro.Status.Targets) > 0 {
		// Started: the status holds the targets, fixed, and how far each got.
		for _, t := range ro.Status.Targets {
			if !same(t.Kind, t.Name) {
				continue
			}
			switch t.State {
			case api.TargetPending:
				return true // it restarts ref onto the certificates ref uses when it gets there
			case api.TargetRestarting, api.TargetSucceeded:
				return hash != "" && t.RestartValue == hash
			case api.TargetFailed, api.TargetSkipped, api.TargetUpToDate:
			}
			return false
		}
		return false
	}
	targets := ro.Spec.Targets
	if len(targets) == 0 {
		targets = selected
	}
	return slices.ContainsFunc(targets, func(t api.WorkloadReference) bool { return same(t.Kind, t.Name) })
}

// withCertificates records on each planned rollout the certificates each of its targets is rolled onto
// (spec.trigger.certificates): a target something else already restarted onto them is then skipped
// instead of restarted a second time.
func withCertificates(plans []plannedRollout, hashes map[api.WorkloadReference]string) {
	for _, pl := range plans {
		for _, t := range pl.Rollout.Spec.Targets {
			if h := hashes[api.WorkloadReference{Kind: t.Kind, Name: t.Name}]; h != "" {
				if pl.Rollout.Spec.Trigger.Certificates == nil {
					pl.Rollout.Spec.Trigger.Certificates = map[string]string{}
				}
				pl.Rollout.Spec.Trigger.Certificates[t.Key()] = h
			}
		}
	}
}

// sortLike orders refs as they appear in order (the policy's rollout order); others keep their place
// after those.
func sortLike(refs, order []api.WorkloadReference) {
	pos := map[api.WorkloadReference]int{}
	for i, r := range order {
		pos[r] = i
	}
	at := func(r api.WorkloadReference) int {
		if i, ok := pos[r]; ok {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(refs, func(a, b api.WorkloadReference) int { return at(a) - at(b) })
}

// secretConsumers returns the restartable workloads of ns that use any of the Secrets, as the controller's
// own index finds them, and notes for those a CertRollout cannot restart (CronJobs, bare Pods).
func secretConsumers(ctx context.Context, snap *controller.Snapshot, ns string, secrets []string) ([]api.WorkloadReference, []WorkloadNote, error) {
	var refs []api.WorkloadReference
	var notes []WorkloadNote
	seen := map[api.WorkloadReference]bool{}
	for _, s := range secrets {
		found, err := snap.Consumers(ctx, ns, consumers.Ref{Kind: consumers.KindSecret, Name: s})
		if err != nil {
			return nil, nil, err
		}
		for _, w := range found {
			if seen[w] {
				continue
			}
			seen[w] = true
			switch w.Kind {
			case api.KindDeployment, api.KindStatefulSet, api.KindDaemonSet:
				refs = append(refs, w)
			case api.KindCronJob:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name,
					Reason: "its next Jobs read the Secret afresh"})
			case api.KindPod:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name,
					Reason: "a bare Pod has no controller to roll it: delete it to restart it"})
			default:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name, Reason: "not a Deployment, StatefulSet or DaemonSet"})
			}
		}
	}
	return refs, notes, nil
}
