package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
)

// cachedPod is how the pod cache keeps a pod. A decoded corev1.Pod costs about 2 KB even with its spec and
// status emptied (the struct alone is 1.2 KB); a cluster has more pods than anything else certrollout
// watches, and of a workload's pod it needs only identity, labels and start time. A bare pod also keeps
// its annotations and spec: it is a workload of its own.
//
// podCache's informers store these in place of corev1.Pod (see reducePod).
type cachedPod struct {
	metav1.TypeMeta
	// ObjectMeta keeps name, namespace, UID, resourceVersion, generation and deletion timestamp; labels
	// are in podLabels, and annotations only for bare pods.
	metav1.ObjectMeta
	podLabels podLabels
	// Bare is true when no controller owns the pod.
	Bare bool
	// Finished is true once the pod has succeeded or failed: its processes hold no certificate any more.
	Finished bool
	// Started is when the pod's containers last started (see podStarted); zero if not yet.
	Started time.Time
	// Ready is the pod's Ready condition.
	Ready bool
	// IP is the pod's address, where probes dial it.
	IP string
	// Spec is kept for bare pods only.
	Spec *corev1.PodSpec
}

// DeepCopyObject implements runtime.Object.
func (p *cachedPod) DeepCopyObject() runtime.Object {
	out := &cachedPod{TypeMeta: p.TypeMeta, Bare: p.Bare, Finished: p.Finished, Started: p.Started, Ready: p.Ready, IP: p.IP, podLabels: append(podLabels(nil), p.podLabels...)}
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta) //nolint:staticcheck // ObjectMeta's, not a cachedPod's DeepCopyInto
	if p.Spec != nil {
		out.Spec = p.Spec.DeepCopy()
	}
	return out
}

// pod rebuilds the corev1.Pod a bare pod's reconcile works on.
func (p *cachedPod) pod() *corev1.Pod {
	out := &corev1.Pod{ObjectMeta: *p.DeepCopy()}
	out.Labels = p.podLabels.Map()
	if p.Spec != nil {
		out.Spec = *p.Spec.DeepCopy()
	}
	return out
}

// podLabels are a pod's labels as key, value pairs: a few dozen bytes where a map costs over 300.
// It implements labels.Labels for selector matching.
type podLabels []string

func newPodLabels(m map[string]string) podLabels {
	if len(m) == 0 {
		return nil
	}
	out := make(podLabels, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// Has implements labels.Labels. The methods take a pointer so that matching a selector against a pod's
// labels does not box the slice into an interface (an allocation per pod per scan).
func (l *podLabels) Has(key string) bool {
	_, ok := l.lookup(key)
	return ok
}

// Get implements labels.Labels.
func (l *podLabels) Get(key string) string {
	v, _ := l.lookup(key)
	return v
}

// Lookup implements labels.Labels.
func (l *podLabels) Lookup(key string) (string, bool) { return l.lookup(key) }

func (l *podLabels) lookup(key string) (string, bool) {
	for i := 0; i+1 < len(*l); i += 2 {
		if (*l)[i] == key {
			return (*l)[i+1], true
		}
	}
	return "", false
}

// Map returns the labels as a map.
func (l podLabels) Map() map[string]string {
	if len(l) == 0 {
		return nil
	}
	m := make(map[string]string, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		m[l[i]] = l[i+1]
	}
	return m
}

// reducePod is the pod informer's transform: *corev1.Pod in, *cachedPod out.
func reducePod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone, or already reduced
	}
	out := &cachedPod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Generation: p.Generation, DeletionTimestamp: p.DeletionTimestamp,
		},
		podLabels: newPodLabels(p.Labels),
		Bare:      metav1.GetControllerOf(p) == nil,
		Finished:  p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		Started:   podStarted(p),
		Ready:     podReady(p),
		IP:        podIP(p),
	}
	if out.Bare {
		out.Annotations = p.Annotations
		delete(out.Annotations, corev1.LastAppliedConfigAnnotation)
		out.Spec = &p.Spec
	}
	return out, nil
}

// podStarted is when a pod's containers last started: the earliest start among its running containers (a
// container restarted after a renewal re-reads its environment), else the pod's start time.
func podStarted(p *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range p.Status.ContainerStatuses {
		if run := cs.State.Running; run != nil && (t.IsZero() || run.StartedAt.Time.Before(t)) {
			t = run.StartedAt.Time
		}
	}
	if t.IsZero() && p.Status.StartTime != nil {
		t = p.Status.StartTime.Time
	}
	return t
}

// podIP is where probes and reload hooks reach the pod; "" for a host-network pod, whose IP is its
// node's: a tenant's annotation must not aim certrollout's calls at a node.
func podIP(p *corev1.Pod) string {
	if p.Spec.HostNetwork {
		return ""
	}
	return p.Status.PodIP
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podUsesIndex maps each bare pod to the Secrets and ConfigMaps it uses ("ns/Secret/name").
const podUsesIndex = "certrollout.io/pod-uses"

// podLabelIndex maps each label of a pod to it ("ns/key=value"), so a workload finds its pods among
// thousands in its namespace without scanning them: the reconcile after a renewal is on the hot path.
const podLabelIndex = "certrollout.io/pod-label"

// podCache holds the pods of the watched namespaces as cachedPods, in informers of its own: the manager's
// cache would hand them to its client, which cannot read a type other than corev1.Pod. It runs on every
// replica, leader or not, like the manager's cache, so a new leader starts warm.
type podCache struct {
	// informers by namespace; "" watches all namespaces.
	informers map[string]toolscache.SharedIndexInformer
}

func newPodCache(cfg *rest.Config, namespaces []string) (*podCache, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	c := &podCache{informers: map[string]toolscache.SharedIndexInformer{}}
	for _, ns := range namespaces {
		lw := toolscache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "pods", ns, fields.Everything())
		inf := toolscache.NewSharedIndexInformerWithOptions(lw, &corev1.Pod{}, toolscache.SharedIndexInformerOptions{
			Indexers: toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, podUsesIndex: indexPodUses, podLabelIndex: indexPodLabels},
		})
		if err := inf.SetTransform(reducePod); err != nil {
			return nil, err
		}
		c.informers[ns] = inf
	}
	return c, nil
}

func indexPodLabels(obj any) ([]string, error) {
	p, ok := obj.(*cachedPod)
	if !ok {
		return nil, nil
	}
	out := make([]string, 0, len(p.podLabels)/2)
	for i := 0; i+1 < len(p.podLabels); i += 2 {
		out = append(out, p.Namespace+"/"+p.podLabels[i]+"="+p.podLabels[i+1])
	}
	return out, nil
}

// candidates narrows a selector's pods through podLabelIndex by one of its equality requirements, or
// falls back to the namespace.
func candidates(ns string, sel labels.Selector) (index, key string) {
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if vals := r.Values(); vals.Len() == 1 {
				return podLabelIndex, ns + "/" + r.Key() + "=" + vals.UnsortedList()[0]
			}
		default: // not an equality: cannot narrow by it
		}
	}
	return toolscache.NamespaceIndex, ns
}

func indexPodUses(obj any) ([]string, error) {
	p, ok := obj.(*cachedPod)
	if !ok || !p.Bare || p.Spec == nil {
		return nil, nil
	}
	var out []string
	for _, r := range consumers.Refs(consumers.FromPodSpec(p.Spec, p.Annotations)) {
		out = append(out, p.Namespace+"/"+r.String())
	}
	return out, nil
}

// Start runs the informers until ctx ends (manager.Runnable).
func (c *podCache) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, inf := range c.informers {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is false: standby replicas keep their cache warm.
func (c *podCache) NeedLeaderElection() bool { return false }

// WaitForSync blocks until every informer has listed its pods, or ctx ends.
func (c *podCache) WaitForSync(ctx context.Context) error {
	var synced []toolscache.InformerSynced
	for _, inf := range c.informers {
		synced = append(synced, inf.HasSynced)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("pods not synced: %w", ctx.Err())
	}
	return nil
}

func (c *podCache) indexer(ns string) toolscache.Indexer {
	inf := c.informers[ns]
	if inf == nil {
		inf = c.informers[metav1.NamespaceAll]
	}
	if inf == nil {
		return nil
	}
	return inf.GetIndexer()
}

// get returns the cached pod ns/name, or nil.
func (c *podCache) get(ns, name string) *cachedPod {
	idx := c.indexer(ns)
	if idx == nil {
		return nil
	}
	obj, ok, err := idx.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	p, _ := obj.(*cachedPod)
	return p
}

// selected returns the pods of ns that sel matches and that still run: not finished, not being deleted.
func (c *podCache) selected(ns string, sel labels.Selector) ([]decide.Pod, error) {
	index, key := candidates(ns, sel)
	return each(c, ns, index, key, func(p *cachedPod) (decide.Pod, bool) {
		return decide.Pod{Name: p.Name, Started: p.Started, IP: p.IP}, running(p) && sel.Matches(&p.podLabels)
	})
}

// eachSelected calls fn for each pod of ns that sel matches and that still runs, without copying them:
// the metrics count pods at scrape time.
func (c *podCache) eachSelected(ns string, sel labels.Selector, fn func(*cachedPod)) {
	index, key := candidates(ns, sel)
	_, _ = each(c, ns, index, key, func(p *cachedPod) (struct{}, bool) {
		if running(p) && sel.Matches(&p.podLabels) {
			fn(p)
		}
		return struct{}{}, false
	})
}

// running reports whether a pod's processes still run: not finished, not being deleted.
func running(p *cachedPod) bool { return !p.Finished && p.DeletionTimestamp == nil }

// present counts the pods of ns that sel matches and that have not finished, terminating ones included:
// a quiesced workload is drained when this reaches zero.
func (c *podCache) present(ns string, sel labels.Selector) int {
	index, key := candidates(ns, sel)
	pods, _ := each(c, ns, index, key, func(p *cachedPod) (struct{}, bool) {
		return struct{}{}, !p.Finished && sel.Matches(&p.podLabels)
	})
	return len(pods)
}

// bare returns the bare pods of ns ("" for every namespace watched) that still run.
func (c *podCache) bare(ns string) []*cachedPod {
	var out []*cachedPod
	for infNS, inf := range c.informers {
		if ns != "" && infNS != "" && infNS != ns {
			continue
		}
		for _, o := range inf.GetIndexer().List() {
			if p, ok := o.(*cachedPod); ok && p.Bare && !p.Finished && p.DeletionTimestamp == nil && (ns == "" || p.Namespace == ns) {
				out = append(out, p)
			}
		}
	}
	return out
}

// users names the bare pods of ns that use ref.
func (c *podCache) users(ns string, ref consumers.Ref) ([]string, error) {
	return each(c, ns, podUsesIndex, ns+"/"+ref.String(), func(p *cachedPod) (string, bool) { return p.Name, true })
}

func each[T any](c *podCache, ns, index, key string, fn func(*cachedPod) (T, bool)) ([]T, error) {
	idx := c.indexer(ns)
	if idx == nil {
		return nil, nil
	}
	objs, err := idx.ByIndex(index, key)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, o := range objs {
		if p, ok := o.(*cachedPod); ok {
			if v, keep := fn(p); keep {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// onChange calls fn with the namespace of every pod added, changed or deleted.
func (c *podCache) onChange(fn func(ns string)) error {
	h := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { notifyNamespace(obj, fn) },
		UpdateFunc: func(_, obj any) { notifyNamespace(obj, fn) },
		DeleteFunc: func(obj any) { notifyNamespace(obj, fn) },
	}
	for _, inf := range c.informers {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	return nil
}

func notifyNamespace(obj any, fn func(ns string)) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if p, ok := obj.(*cachedPod); ok {
		fn(p.Namespace)
	}
}

// source feeds pod events to a controller through h, filtered by preds; the controller waits for the
// pods to sync before it reconciles (source.SyncingSource). With a nil handler it only waits: workload
// controllers read pods and must not decide on a half-listed cache.
func (c *podCache) source(h handler.EventHandler, preds ...predicate.Predicate) source.SyncingSource {
	return &podSource{cache: c, handler: h, preds: preds}
}

type podSource struct {
	cache   *podCache
	handler handler.EventHandler
	preds   []predicate.Predicate
}

func (s *podSource) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	if s.handler == nil {
		return nil
	}
	for _, inf := range s.cache.informers {
		if _, err := inf.AddEventHandler(&podEvents{ctx: ctx, q: q, handler: s.handler, preds: s.preds}); err != nil {
			return err
		}
	}
	return nil
}

func (s *podSource) WaitForSync(ctx context.Context) error { return s.cache.WaitForSync(ctx) }

func (s *podSource) String() string { return "pods" }

// podEvents adapts informer callbacks to a controller-runtime handler and predicates.
type podEvents struct {
	ctx     context.Context
	q       workqueue.TypedRateLimitingInterface[reconcile.Request]
	handler handler.EventHandler
	preds   []predicate.Predicate
}

func (e *podEvents) OnAdd(obj any, _ bool) {
	if p, ok := obj.(*cachedPod); ok {
		ev := event.CreateEvent{Object: p}
		if all(e.preds, func(pr predicate.Predicate) bool { return pr.Create(ev) }) {
			e.handler.Create(e.ctx, ev, e.q)
		}
	}
}

func (e *podEvents) OnUpdate(oldObj, newObj any) {
	o, ok1 := oldObj.(*cachedPod)
	n, ok2 := newObj.(*cachedPod)
	if ok1 && ok2 {
		ev := event.UpdateEvent{ObjectOld: o, ObjectNew: n}
		if all(e.preds, func(pr predicate.Predicate) bool { return pr.Update(ev) }) {
			e.handler.Update(e.ctx, ev, e.q)
		}
	}
}

func (e *podEvents) OnDelete(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if p, ok := obj.(*cachedPod); ok {
		ev := event.DeleteEvent{Object: p}
		if all(e.preds, func(pr predicate.Predicate) bool { return pr.Delete(ev) }) {
			e.handler.Delete(e.ctx, ev, e.q)
		}
	}
}

func all[T any](xs []T, fn func(T) bool) bool {
	for _, x := range xs {
		if !fn(x) {
			return false
		}
	}
	return true
}
