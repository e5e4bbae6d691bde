package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/governor"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
)

// Snapshot is the cluster as the controller sees it, read once: the same reduced caches, the same
// gatherer and the same decisions, for the CLI (check, plan, restart --secret). What a command
// prints from it is what the controller does.
type Snapshot struct {
	disc *gatherer
	// CertManager is true when the cluster serves cert-manager's Certificates.
	CertManager bool
	// Policies is true when the cluster serves certrollout.io.
	Policies bool
	// BundlesUnread is true when the modelled controller reads ClusterTrustBundles but this user may not
	// list them: workloads that project one are decided without it, and the bundle is not called missing.
	BundlesUnread bool
	// direct reads what lies outside the caches' namespace (a ClusterIssuer's CA Secret).
	direct client.Client
	stop   context.CancelFunc
	done   chan error
}

// SnapshotResources are what a Snapshot lists, in the order its access check tries them: the CLI needs
// list and watch on each (watch because the snapshot is an informer cache).
var SnapshotResources = []string{"secrets", "configmaps", "pods", "deployments", "statefulsets", "daemonsets", "cronjobs"}

// NewSnapshot fills caches for o.Namespaces (one namespace, or all when empty) and returns when they are
// synced. It checks access first, so a forbidden list is an error naming the resource rather than a cache
// that never syncs. Close it when done.
func NewSnapshot(ctx context.Context, cfg *rest.Config, o Options) (*Snapshot, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if len(o.Namespaces) > 1 {
		return nil, errors.New("a snapshot covers one namespace or all of them")
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	ns := ""
	if len(o.Namespaces) == 1 {
		ns = o.Namespaces[0]
	}
	if err := requireList(ctx, direct, ns, coreLists()...); err != nil {
		return nil, err
	}
	// A bundle is cluster-scoped, but a namespace's plan must see the bundles its pods project, as the
	// cluster-wide controller does: read them when the user may (bundlesServed asks), whatever the view,
	// unless the modelled controller is namespaced and never reads them.
	o.bundlesInNamespace = true
	bundles, err := bundlesInDiscovery(cfg, o.ModelledNamespaces)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOptions(o.Namespaces, "", bundles),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, err
	}
	issuers, err := setupIssuers(ctx, mgr, direct, ns)
	if err != nil {
		return nil, err
	}
	disc, err := newGatherer(ctx, mgr, direct, o, issuers)
	if err != nil {
		return nil, err
	}
	// Served is not readable: an informer on a type the user may not list never syncs, so a Forbidden
	// must come now, as checkAccess's do, instead of a command that waits forever.
	var served []client.ObjectList
	if disc.linker.reader != nil {
		served = append(served, &certmanager.CertificateList{})
	}
	if disc.policies {
		served = append(served, &api.RolloutPolicyList{}, &api.CertRolloutList{})
	}
	if err := requireList(ctx, direct, ns, served...); err != nil {
		return nil, err
	}
	s := &Snapshot{
		disc:          disc,
		CertManager:   disc.linker.reader != nil,
		Policies:      disc.policies,
		BundlesUnread: bundles && !disc.bundles, // served, modelled, and not followed: forbidden
		direct:        direct,
		done:          make(chan error, 1),
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	go func() { s.done <- mgr.Start(runCtx) }()
	if err := s.sync(ctx, mgr, disc.pods); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sync starts the informers of every type the snapshot reads and waits for them.
func (s *Snapshot) sync(ctx context.Context, mgr manager.Manager, pods *podCache) error {
	objs := []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}
	for _, k := range kinds {
		if k.name != api.KindPod {
			objs = append(objs, k.newObj())
		}
	}
	if s.CertManager {
		objs = append(objs, &certmanager.Certificate{})
	}
	if s.disc.issuers.issuers {
		objs = append(objs, &certmanager.Issuer{})
	}
	if s.disc.issuers.clusterIssuers {
		objs = append(objs, &certmanager.ClusterIssuer{})
	}
	if s.Policies {
		objs = append(objs, &api.RolloutPolicy{}, &api.CertRollout{})
	}
	if s.disc.bundles {
		objs = append(objs, &certificatesv1beta1.ClusterTrustBundle{})
	}
	for _, o := range objs {
		if _, err := mgr.GetCache().GetInformer(ctx, o); err != nil {
			return err
		}
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("caches not synced: %w", ctx.Err())
	}
	return pods.WaitForSync(ctx)
}

// Close stops the caches.
func (s *Snapshot) Close() {
	if s.stop != nil {
		s.stop()
		// After a cancel the manager can only report its own shutdown; what the snapshot read stands.
		<-s.done //nolint:errcheck // see above
		s.stop = nil
	}
}

// SourcesMatching returns the Secrets and ConfigMaps of ns ("" for all) whose labels sel matches (the
// CLI's -l) and that hold certificates or certificate data that does not parse, each Secret linked to the
// cert-manager Certificate that issues it. Reduced objects keep their labels when they hold certificate
// data, so the cache can filter.
func (s *Snapshot) SourcesMatching(ctx context.Context, ns string, sel labels.Selector) ([]*inventory.Source, error) {
	var out []*inventory.Source
	var secrets corev1.SecretList
	if err := s.disc.client.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	for i := range secrets.Items {
		src := inventory.FromSecret(&secrets.Items[i])
		if !src.Reportable() {
			continue
		}
		if err := s.disc.linker.link(ctx, src); err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	var cms corev1.ConfigMapList
	if err := s.disc.client.List(ctx, &cms, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	for i := range cms.Items {
		if src := inventory.FromConfigMap(&cms.Items[i]); src.Reportable() {
			out = append(out, src)
		}
	}
	return out, nil
}

// Certificates returns cert-manager's Certificates in ns ("" for all); none when cert-manager is absent.
func (s *Snapshot) Certificates(ctx context.Context, ns string) ([]certmanager.Certificate, error) {
	if !s.CertManager {
		return nil, nil
	}
	var list certmanager.CertificateList
	if err := s.disc.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Workload is one workload as the controller sees it: what it uses, its pods and the controller's
// decision about it.
type Workload struct {
	Kind, Namespace, Name string
	Object                client.Object
	// Uses are how its pods use Secrets and ConfigMaps.
	Uses []consumers.Use
	// Sources are the Secrets and ConfigMaps it uses that exist (Secrets linked to cert-manager).
	Sources map[consumers.Ref]*inventory.Source
	// Missing are those it names that do not exist.
	Missing []consumers.Ref
	// Unread are the ClusterTrustBundles it projects that this user may not list (BundlesUnread).
	Unread []consumers.Ref
	// Input is what the decision was made from (pods, certificate set, ledger annotations, time).
	Input    decide.Input
	Decision decide.Decision
	// ProbeProblem says why its probe or reload declaration (certrollout.io/probe, certrollout.io/reload)
	// is unusable; "" when both are fine.
	ProbeProblems []string
	// Policy is the RolloutPolicy that governs it; nil when none does.
	Policy *PolicyView
}

// PolicyView is a RolloutPolicy with what the controller derives from it.
type PolicyView struct {
	Policy api.RolloutPolicy
	// Invalid says what is wrong with it (cron, time zone, quiesce targets); empty when valid.
	Invalid string
	// Warnings say how it may not do what its author expects (a drain shorter than a grace period).
	Warnings []string
	// Window is whether a maintenance window is open now and when the next opens.
	Window schedule.State
	// Active is the policy's CertRollout that has not finished, if any.
	Active *api.CertRollout
	// Deadline is when the expiry deadline lets a rollout start outside the windows for this workload:
	// the expiry of the certificate its pods run on minus spec.expiryDeadline; zero without a deadline.
	Deadline time.Time
	// Gate is the start gate for a rollout of this workload now (orchestrate.StartGate).
	Gate orchestrate.Gate
	// Next is what the RolloutPolicy controller decides now (the rollout it creates, its conditions).
	Next governor.Result

	parsed orchestrate.Policy
}

// Workloads returns every workload of ns ("" for all) whose pods use a Secret or ConfigMap, with the
// controller's decision, sorted by namespace, kind and name.
func (s *Snapshot) Workloads(ctx context.Context, ns string) ([]Workload, error) {
	var out []Workload
	policies := map[string]*PolicyView{}
	for _, k := range kinds {
		var objs []client.Object
		if k.name == api.KindPod {
			for _, p := range s.disc.pods.bare(ns) {
				objs = append(objs, p.pod())
			}
		} else {
			list := k.newList()
			if err := s.disc.client.List(ctx, list, client.InNamespace(ns)); err != nil {
				return nil, err
			}
			items, err := apimeta.ExtractList(list)
			if err != nil {
				return nil, err
			}
			for _, o := range items {
				if obj, ok := o.(client.Object); ok && obj.GetDeletionTimestamp() == nil {
					objs = append(objs, obj)
				}
			}
		}
		for _, obj := range objs {
			w, ok, err := s.workload(ctx, k, obj, policies)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, w)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out, nil
}

// Workload returns one workload by kind and name; found is false when it does not exist.
func (s *Snapshot) Workload(ctx context.Context, kindName, ns, name string) (w Workload, found bool, err error) {
	k, ok := kindNamed(kindName)
	if !ok {
		return Workload{}, false, fmt.Errorf("unknown workload kind %q", kindName)
	}
	var obj client.Object
	if k.name == api.KindPod {
		p := s.disc.pods.get(ns, name)
		if p == nil || !p.Bare {
			return Workload{}, false, nil
		}
		obj = p.pod()
	} else {
		obj = k.newObj()
		if err := s.disc.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return Workload{}, false, nil
			}
			return Workload{}, false, err
		}
	}
	w, _, err = s.workload(ctx, k, obj, map[string]*PolicyView{})
	return w, err == nil, err
}

func (s *Snapshot) workload(ctx context.Context, k kind, obj client.Object, policies map[string]*PolicyView) (Workload, bool, error) {
	uses := consumers.FromPodSpec(k.podSpec(obj), obj.GetAnnotations())
	if len(uses) == 0 {
		return Workload{}, false, nil
	}
	w := Workload{Kind: k.name, Namespace: obj.GetNamespace(), Name: obj.GetName(), Object: obj, Uses: uses, Sources: map[consumers.Ref]*inventory.Source{}}
	for _, ref := range consumers.Refs(uses) {
		src, found, err := s.disc.source(ctx, w.Namespace, ref)
		if err != nil {
			return Workload{}, false, err
		}
		if !found {
			if s.BundlesUnread && (ref.Kind == consumers.KindClusterTrustBundle || ref.Kind == consumers.KindClusterTrustBundleSigner) {
				w.Unread = append(w.Unread, ref)
			} else {
				w.Missing = append(w.Missing, ref)
			}
			continue
		}
		if err := s.disc.linker.link(ctx, src); err != nil {
			return Workload{}, false, err
		}
		w.Sources[ref] = src
	}
	in, _, err := s.disc.gather(ctx, k, obj)
	if err != nil {
		return Workload{}, false, err
	}
	d, problems := s.disc.decideServing(ctx, k, obj, &in)
	for _, p := range problems {
		w.ProbeProblems = append(w.ProbeProblems, p.message)
	}
	w.Input, w.Decision = in, d
	if in.Policy != "" {
		key := w.Namespace + "/" + in.Policy
		pv, ok := policies[key]
		if !ok {
			if pv, err = s.policyView(ctx, w.Namespace, in.Policy); err != nil {
				return Workload{}, false, err
			}
			policies[key] = pv
		}
		view := *pv
		na := decide.ReadLedger(obj.GetAnnotations()).NotAfter
		view.Deadline = pv.Policy.Spec.DeadlineFor(na)
		view.Gate = orchestrate.StartGate(orchestrate.Start{Policy: &pv.parsed, NotAfter: na, Now: s.disc.opts.Clock()})
		w.Policy = &view
	}
	return w, true, nil
}

// policyView decides for the RolloutPolicy ns/name as the controller does (governor.Decide on the same
// gathered input), and keeps what plan shows of it.
func (s *Snapshot) policyView(ctx context.Context, ns, name string) (*PolicyView, error) {
	var p api.RolloutPolicy
	if err := s.disc.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return nil, err
	}
	in, err := s.disc.policyInput(ctx, &p)
	if err != nil {
		return nil, err
	}
	pv := &PolicyView{Policy: p, Invalid: in.Parsed.Invalid, Warnings: in.Parsed.Warnings, Window: schedule.At(in.Parsed.Windows, in.Now), parsed: in.Parsed, Next: governor.Decide(in)}
	for i := range in.Rollouts {
		if !in.Rollouts[i].Status.Phase.Finished() {
			pv.Active = &in.Rollouts[i]
		}
	}
	return pv, nil
}

// Consumers returns the workloads of ns that use the Secret or ConfigMap ref, as the controller's index
// finds them (bare pods included).
func (s *Snapshot) Consumers(ctx context.Context, ns string, ref consumers.Ref) ([]api.WorkloadReference, error) {
	var out []api.WorkloadReference
	for _, k := range kinds {
		if k.name == api.KindPod {
			names, err := s.disc.pods.users(ns, ref)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				out = append(out, api.WorkloadReference{Kind: k.name, Name: n})
			}
			continue
		}
		list := k.newList()
		if err := s.disc.client.List(ctx, list, client.InNamespace(ns), client.MatchingFields{usesIndex: ref.String()}); err != nil {
			return nil, err
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, o := range items {
			if obj, ok := o.(client.Object); ok {
				out = append(out, api.WorkloadReference{Kind: k.name, Name: obj.GetName()})
			}
		}
	}
	slices.SortFunc(out, func(a, b api.WorkloadReference) int {
		if a.Kind != b.Kind {
			return strings.Compare(a.Kind, b.Kind)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Governance answers, through any client, the two questions about RolloutPolicies that a command needs
// without a whole Snapshot (restart WORKLOAD, restart --policy): which policy governs a workload, and what a
// policy governs. It applies the controller's own rules (first policy by name whose selector matches;
// deleted policies ignored), so the CLI and the controller never disagree.
type Governance struct {
	disc *gatherer
}

// NewGovernance returns a Governance reading through c (typically a direct client). The cluster must
// serve certrollout.io; c's errors (NoKindMatch when it does not) are returned as they are.
func NewGovernance(c client.Client) *Governance {
	return &Governance{disc: &gatherer{client: c, capabilities: capabilities{policies: true}}}
}

// Governing returns the name of the RolloutPolicy that governs obj; ok is false when none does.
func (g *Governance) Governing(ctx context.Context, obj client.Object) (name string, ok bool, err error) {
	p, ok, err := g.disc.governing(ctx, obj)
	return p.Name, ok, err
}

// Governed returns the workloads policy p governs, in its rollout order.
func (g *Governance) Governed(ctx context.Context, p *api.RolloutPolicy) ([]api.WorkloadReference, error) {
	targets, err := g.disc.governed(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]api.WorkloadReference, 0, len(targets))
	for _, t := range targets {
		out = append(out, t.ref())
	}
	return out, nil
}

// NewWorkloadObject returns an empty object of the workload kind ("Deployment", "StatefulSet",
// "DaemonSet", "CronJob", "Pod"); ok is false for other kinds. orchestrated reports whether a CertRollout
// can restart that kind.
func NewWorkloadObject(kindName string) (obj client.Object, orchestrated, ok bool) {
	k, ok := kindNamed(kindName)
	if !ok {
		return nil, false, false
	}
	return k.newObj(), k.orchestrated, true
}
