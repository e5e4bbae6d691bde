package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/policy"
)

// Code shared by restart and renew --restart: naming workloads, grouping them into CertRollouts by the
// RolloutPolicy that governs them, creating those, and following them to the end.

// Errors of a followed rollout, for errors.Is; the messages users see say more.
var (
	// ErrRolloutFailed: a followed CertRollout ended Failed.
	ErrRolloutFailed = errors.New("rollout failed")
	// ErrWaitTimedOut: --timeout passed before everything followed finished; the work goes on.
	ErrWaitTimedOut = errors.New("timed out waiting")
)

// parseWorkload reads a KIND/NAME argument (ParseWorkloadArg: deployment/web, deploy/web, sts/db,
// ds/agent) and keeps the kinds a CertRollout can restart.
func parseWorkload(arg string) (api.WorkloadReference, error) {
	kind, name, _ := strings.Cut(arg, "/")
	// kubectl also accepts the group: deployments.apps/web, deployments.v1.apps/web.
	kind = strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(kind), ".apps"), ".v1")
	w, err := ParseWorkloadArg(kind + "/" + name)
	if err != nil {
		return api.WorkloadReference{}, err
	}
	switch w.Kind {
	case policy.KindDeployment, policy.KindStatefulSet, policy.KindDaemonSet:
		return api.WorkloadReference{Kind: w.Kind, Name: w.Name}, nil
	}
	return api.WorkloadReference{}, fmt.Errorf("cannot restart %s: certrollout restarts Deployments, StatefulSets and DaemonSets (a CronJob's next Jobs read the Secret afresh; delete a bare Pod to restart it)", w)
}

// refString is "Deployment/web".
func refString(r api.WorkloadReference) string { return r.Kind + "/" + r.Name }

func refsString(refs []api.WorkloadReference) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = refString(r)
	}
	return strings.Join(s, ", ")
}

// WorkloadNote is a workload a command did not act on, and why. It is part of the RestartReport and
// RenewReport schemas.
type WorkloadNote struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// planner builds the CertRollouts for a restart in one namespace.
type planner struct {
	c  client.Client
	ns string
	// message is the trigger message of every rollout it builds.
	message string
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
	if policyName != "" {
		// The controller labels its own rollouts this way; ours too, so `kubectl get cro -l` and the
		// policy's history see both.
		ro.Labels = map[string]string{controller.LabelPolicy: policyName}
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
		if apierrors.IsNotFound(err) && !isNotServed(err, api.GroupVersion.Group) {
			return plannedRollout{}, fmt.Errorf("RolloutPolicy %q not found in namespace %q (list them with `kubectl get rolloutpolicies -n %s`)", name, p.ns, p.ns)
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
			return nil, fmt.Errorf("cannot restart %s: not a Deployment, StatefulSet or DaemonSet", refString(ref))
		}
		if err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: ref.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, fmt.Sprintf("%s %q not found in namespace %q", ref.Kind, ref.Name, p.ns))
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
	if h := ro.Spec.Trigger.Certificates[refString(ref)]; h != "" && h != hash {
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
			case api.TargetFailed, api.TargetSkipped:
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
				pl.Rollout.Spec.Trigger.Certificates[refString(t)] = h
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
			case policy.KindDeployment, policy.KindStatefulSet, policy.KindDaemonSet:
				refs = append(refs, w)
			case policy.KindCronJob:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name,
					Reason: "its next Jobs read the Secret afresh"})
			case policy.KindPod:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name,
					Reason: "a bare Pod has no controller to roll it: delete it to restart it"})
			default:
				notes = append(notes, WorkloadNote{Namespace: ns, Kind: w.Kind, Name: w.Name, Reason: "not a Deployment, StatefulSet or DaemonSet"})
			}
		}
	}
	return refs, notes, nil
}

// createRollouts creates each planned rollout and calls created after each, so that a failure part-way
// still reports what exists. Under --dry-run=server the creates carry dryRun=All (the CRD's validation
// and admission run, nothing is stored); under --dry-run=client nothing is sent.
func createRollouts(ctx context.Context, c client.Client, plans []plannedRollout, dryRun DryRunFlag, created func(plannedRollout)) error {
	for _, p := range plans {
		if !dryRun.clientDryRun() {
			if err := dryRun.writer(c).Create(ctx, p.Rollout); err != nil {
				return fmt.Errorf("creating a CertRollout for %s: %w", describePlan(p), err)
			}
		}
		// The typed client drops apiVersion and kind on decode; the documents we print carry them.
		p.Rollout.APIVersion, p.Rollout.Kind = api.GroupVersion.String(), "CertRollout"
		p.Rollout.ManagedFields = nil
		created(p)
	}
	return nil
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
	return fmt.Sprintf("certrollout.certrollout.io/%s created%s: %s", name, dryRun.dryRunSuffix(), describePlan(p))
}

// rolloutKey names a followed rollout.
func rolloutKey(ro *api.CertRollout) types.NamespacedName {
	return types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
}

// watchEvent is one observation from watchNamespace: an object's latest state, its deletion, the set of
// names a (re)list found, or an error that ends the watch.
type watchEvent struct {
	obj     client.Object
	deleted bool
	listed  map[string]bool
	ns      string
	err     error
}

// watchNamespace lists then watches the objects of newList's type in ns until ctx ends, sending what it
// sees to out. A watch the server closes (timeouts, expired resource versions) is resumed by listing
// again, so nothing is missed; the relist's names let the receiver notice deletions it did not see.
func watchNamespace(ctx context.Context, c client.WithWatch, ns string, newList func() client.ObjectList, out chan<- watchEvent) {
	send := func(ev watchEvent) bool {
		ev.ns = ns
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// A server that keeps closing watches at once must not turn this into a busy loop.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			if ctx.Err() == nil {
				send(watchEvent{err: err})
			}
			return
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			send(watchEvent{err: err})
			return
		}
		names := map[string]bool{}
		for _, o := range items {
			if obj, ok := o.(client.Object); ok {
				names[obj.GetName()] = true
				if !send(watchEvent{obj: obj}) {
					return
				}
			}
		}
		if !send(watchEvent{listed: names}) {
			return
		}
		w, err := c.Watch(ctx, newList(), &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			if ctx.Err() == nil {
				send(watchEvent{err: err})
			}
			return
		}
		if !pumpWatch(ctx, w, send) {
			w.Stop()
			return
		}
		w.Stop()
	}
}

// pumpWatch forwards a watch's events until it closes or reports an error (then the caller lists again);
// false when the receiver is gone.
func pumpWatch(ctx context.Context, w watch.Interface, send func(watchEvent) bool) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true
			}
			obj, isObj := ev.Object.(client.Object)
			switch ev.Type {
			case watch.Added, watch.Modified:
				if isObj && !send(watchEvent{obj: obj}) {
					return false
				}
			case watch.Deleted:
				if isObj && !send(watchEvent{obj: obj, deleted: true}) {
					return false
				}
			case watch.Error:
				return true
			case watch.Bookmark:
			}
		}
	}
}

// followRollouts watches the rollouts keys until all have finished, handing every change to p (and
// calling p.tick every tick, for elapsed times on a terminal). It returns the rollouts as last seen,
// and an error when one is deleted before it finished, the watch fails, or ctx ends (ctx.Err wrapped).
func followRollouts(ctx context.Context, c client.WithWatch, keys []types.NamespacedName, p progressPrinter, tick <-chan time.Time) ([]api.CertRollout, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan watchEvent)
	namespaces := map[string]bool{}
	for _, k := range keys {
		if !namespaces[k.Namespace] {
			namespaces[k.Namespace] = true
			go watchNamespace(wctx, c, k.Namespace, func() client.ObjectList { return &api.CertRolloutList{} }, events)
		}
	}
	latest := map[types.NamespacedName]*api.CertRollout{}
	for _, k := range keys {
		latest[k] = &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
	}
	current := func() []api.CertRollout {
		out := make([]api.CertRollout, 0, len(keys))
		for _, k := range keys {
			out = append(out, *latest[k])
		}
		return out
	}
	finished := func() bool {
		for _, k := range keys {
			if !latest[k].Status.Phase.Finished() {
				return false
			}
		}
		return true
	}
	deleted := func(k types.NamespacedName) error {
		return fmt.Errorf("CertRollout %s was deleted in namespace %s before it finished (the controller restores what it quiesced)", k.Name, k.Namespace)
	}
	for {
		select {
		case <-ctx.Done():
			return current(), ctx.Err()
		case <-tick:
			p.tick(current())
		case ev := <-events:
			if ev.err != nil {
				return current(), ev.err
			}
			if ev.listed != nil {
				for _, k := range keys {
					if k.Namespace == ev.ns && !ev.listed[k.Name] {
						return current(), deleted(k)
					}
				}
				continue
			}
			ro, ok := ev.obj.(*api.CertRollout)
			if !ok {
				continue
			}
			k := rolloutKey(ro)
			if _, followed := latest[k]; !followed {
				continue
			}
			if ev.deleted {
				// A rollout deleted once it finished is history pruning; only an unfinished one is news.
				if latest[k].Status.Phase.Finished() {
					continue
				}
				return current(), deleted(k)
			}
			latest[k] = ro
			p.observe(current())
			if finished() {
				return current(), nil
			}
		}
	}
}

// waitResult turns what followRollouts returned into the command's outcome: nil when every rollout
// succeeded, exit code 1 naming each failed rollout, exit code 2 on --timeout (saying that the rollouts
// go on), or err.
func waitResult(ros []api.CertRollout, err error, timeout time.Duration, cfgErr func(error) error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		var running []string
		for _, ro := range ros {
			if !ro.Status.Phase.Finished() {
				running = append(running, fmt.Sprintf("%s (%s)", ro.Name, orElse(string(ro.Status.Phase), "not started")))
			}
		}
		return &exitError{code: ExitTimedOut, err: fmt.Errorf("%w: %s passed and %s not finished; it goes on in the cluster: follow it with `certrollout status %s`",
			ErrWaitTimedOut, timeout, strings.Join(running, ", "), statusHint(ros))}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopped waiting; the rollouts go on in the cluster: follow them with `certrollout status %s`: %w", statusHint(ros), err)
	}
	if err != nil {
		return cfgErr(err)
	}
	var failed []string
	for _, ro := range ros {
		if ro.Status.Phase == api.PhaseFailed {
			msg := fmt.Sprintf("CertRollout %s failed: %s", ro.Name, ro.Status.Message)
			// The rollout's message counts; the targets' say why.
			for _, t := range ro.Status.Targets {
				if t.State == api.TargetFailed {
					msg += fmt.Sprintf("; %s/%s: %s", t.Kind, t.Name, t.Message)
				}
			}
			for _, q := range ro.Status.Quiesced {
				if q.State == api.QuiesceDrainTimedOut {
					msg += fmt.Sprintf("; %s/%s did not drain: %s", q.Kind, q.Name, q.Message)
				}
			}
			failed = append(failed, msg)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("%w: %s", ErrRolloutFailed, strings.Join(failed, "; "))}
	}
	return nil
}

func statusHint(ros []api.CertRollout) string {
	if len(ros) == 1 {
		return ros[0].Name
	}
	if len(ros) > 0 {
		return "-n " + ros[0].Namespace
	}
	return ""
}

func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// isTerminalWriter reports whether w is a terminal (a character device), where progress is redrawn in place
// rather than printed as lines. A stat is enough: no dependency for one bit.
func isTerminalWriter(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
