package controller

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/trustsync"
)

// trustSyncIndex indexes TrustBundleSyncs by every object they read or write ("Secret/ns/name",
// "ConfigMap/ns/name", "Certificate/ns/name"), so a change to any of them wakes exactly the syncs that
// care, at once.
const trustSyncIndex = "certrollout.io/trust-objects"

// syncObjects are the index values of a sync: its sources and its target.
func syncObjects(s *api.TrustBundleSync) []string {
	key := func(kind, ns, name string) string {
		if ns == "" {
			ns = s.Namespace
		}
		return kind + "/" + ns + "/" + name
	}
	out := []string{key(s.Spec.Target.Kind, "", s.Spec.Target.Name)}
	for _, src := range s.Spec.Sources {
		switch {
		case src.Secret != nil:
			out = append(out, key("Secret", src.Secret.Namespace, src.Secret.Name))
		case src.ConfigMap != nil:
			out = append(out, key("ConfigMap", src.ConfigMap.Namespace, src.ConfigMap.Name))
		case src.Certificate != nil:
			out = append(out, key("Certificate", src.Certificate.Namespace, src.Certificate.Name))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// trustSyncReconciler keeps each TrustBundleSync's target key equal to its sources' CA certificates. It
// reads everything from the cache (Secrets and ConfigMaps reduced to their certificate blocks, which is
// all a bundle is) and writes one key of one object, by name: the only Secret write certrollout makes,
// and only with --trust-sync and a Role the cluster admin granted for that object.
type trustSyncReconciler struct {
	client   client.Client
	recorder events.EventRecorder
	enabled  bool
	// certificates is false when cert-manager's Certificates are not served.
	certificates bool
	clock        func() time.Time
}

// syncProblem stops a sync: the target keeps what it has, the status says why (Ready=False and the kstatus
// Stalled: nothing moves until a watched object or a person changes).
type syncProblem struct {
	reason, message string
	// recheck: what ends it changes nothing the sync watches (an RBAC grant, another sync deleted), so
	// the sync looks again after recheckStuckSync.
	recheck bool
}

// recheckStuckSync is how often a sync that is refused, or in conflict, looks again.
const recheckStuckSync = 5 * time.Minute

func (p *syncProblem) Error() string { return p.message }

func (r *trustSyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s api.TrustBundleSync
	if err := r.client.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if s.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the target keeps its last bundle: deleting the sync stops syncing, nothing more
	}
	status := *s.Status.DeepCopy()
	result, err := r.sync(ctx, &s, &status)
	var p *syncProblem
	switch {
	case errors.As(err, &p):
		setSyncConditions(&status, s.Generation, r.clock(), metav1.ConditionFalse, p.reason, p.message)
		if p.recheck {
			// A grant (a Role added by helm upgrade) or another sync going away wakes no watch here.
			result = ctrl.Result{RequeueAfter: recheckStuckSync}
		}
	case err != nil:
		return ctrl.Result{}, err
	}
	status.ObservedGeneration = s.Generation
	if !equality.Semantic.DeepEqual(status, s.Status) {
		s.Status = status
		if err := r.client.Status().Update(ctx, &s); err != nil {
			return ctrl.Result{}, err
		}
	}
	return result, nil
}

// sync computes and writes the bundle, filling status; a *syncProblem says why it could not.
func (r *trustSyncReconciler) sync(ctx context.Context, s *api.TrustBundleSync, status *api.TrustBundleSyncStatus) (ctrl.Result, error) {
	if !r.enabled {
		return ctrl.Result{}, &syncProblem{reason: api.ReasonSyncDisabled,
			message: "the controller runs without --trust-sync (Helm: trustSync.enabled=true, with the target under trustSync.targets): nothing is written"}
	}
	if other, err := r.olderWriter(ctx, s); err != nil || other != "" {
		if err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, &syncProblem{reason: api.ReasonTargetConflict, recheck: true, message: fmt.Sprintf(
			"TrustBundleSync %s already writes %s %s key %s: two syncs of one key would overwrite each other; delete one, or give them different keys", other, s.Spec.Target.Kind, s.Spec.Target.Name, s.Spec.Target.Key)}
	}
	var sources [][]trustsync.Cert
	for i, src := range s.Spec.Sources {
		cs, err := r.source(ctx, s.Namespace, src)
		if err != nil {
			var p *syncProblem
			if errors.As(err, &p) {
				p.message = fmt.Sprintf("sources[%d]: %s; the target keeps what it has", i, p.message)
			}
			return ctrl.Result{}, err
		}
		sources = append(sources, cs)
	}
	current, target, err := r.target(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	keep := time.Duration(0)
	if s.Spec.KeepPrevious != nil {
		keep = s.Spec.KeepPrevious.Duration
	}
	now := r.clock()
	out := trustsync.Compute(trustsync.Input{Now: now, Sources: sources, Current: current, Retained: s.Status.Retained, KeepPrevious: keep})
	if out.Changed {
		if err := r.write(ctx, s, target, trustsync.Encode(out.Bundle)); err != nil {
			return ctrl.Result{}, err
		}
		status.LastSyncTime = &metav1.Time{Time: now.UTC().Truncate(time.Second)}
		r.recorder.Eventf(s, target, corev1.EventTypeNormal, api.ReasonBundleWritten, "Sync",
			"Wrote %d CA certificate(s) (%s) to %s %s key %s", len(out.Bundle), fitNote(trustsync.Subjects(out.Bundle)), s.Spec.Target.Kind, s.Spec.Target.Name, s.Spec.Target.Key)
		log.FromContext(ctx).Info("Wrote trust bundle", "trustBundleSync", klog.KObj(s), "target", s.Spec.Target.Kind+"/"+s.Spec.Target.Name, "key", s.Spec.Target.Key, "certificates", len(out.Bundle))
	}
	status.Fingerprints = trustsync.Fingerprints(out.Bundle)
	status.Certificates = int32(len(out.Bundle)) //nolint:gosec // a bundle of at most a few dozen CAs
	status.Retained = out.Retained
	msg := fmt.Sprintf("%s %s key %s holds the %d CA certificate(s) of %d source(s)", s.Spec.Target.Kind, s.Spec.Target.Name, s.Spec.Target.Key, len(out.Bundle)-len(out.Retained), len(sources))
	if len(out.Retained) > 0 {
		msg += fmt.Sprintf(" and %d kept from before until %s", len(out.Retained), out.NextChange.UTC().Format(time.RFC3339))
	}
	setSyncConditions(status, s.Generation, now, metav1.ConditionTrue, api.ReasonSynced, msg)
	if out.NextChange.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: out.NextChange.Sub(now) + time.Second}, nil
}

// olderWriter names the oldest other sync (by creation, then name) that writes the same key of the same
// object, which wins it; "" when there is none.
func (r *trustSyncReconciler) olderWriter(ctx context.Context, s *api.TrustBundleSync) (string, error) {
	var list api.TrustBundleSyncList
	target := s.Spec.Target.Kind + "/" + s.Namespace + "/" + s.Spec.Target.Name
	if err := r.client.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingFields{trustSyncIndex: target}); err != nil {
		return "", err
	}
	winner := ""
	for i := range list.Items {
		o := &list.Items[i]
		if o.Name == s.Name || o.DeletionTimestamp != nil || o.Spec.Target != s.Spec.Target {
			continue
		}
		older := o.CreationTimestamp.Before(&s.CreationTimestamp) || (o.CreationTimestamp.Equal(&s.CreationTimestamp) && o.Name < s.Name)
		if older && (winner == "" || o.Name < winner) {
			winner = o.Name
		}
	}
	return winner, nil
}

// source reads one source's trust anchors from the cache.
func (r *trustSyncReconciler) source(ctx context.Context, ns string, src api.TrustBundleSource) ([]trustsync.Cert, error) {
	var (
		obj  client.Object
		key  string
		what string
	)
	name := func(sel string, n string) types.NamespacedName {
		if sel == "" {
			sel = ns
		}
		return types.NamespacedName{Namespace: sel, Name: n}
	}
	var nn types.NamespacedName
	switch {
	case src.Secret != nil:
		obj, key, nn = &corev1.Secret{}, src.Secret.Key, name(src.Secret.Namespace, src.Secret.Name)
		what = "Secret " + nn.String()
	case src.ConfigMap != nil:
		obj, key, nn = &corev1.ConfigMap{}, src.ConfigMap.Key, name(src.ConfigMap.Namespace, src.ConfigMap.Name)
		what = "ConfigMap " + nn.String()
	case src.Certificate != nil:
		if !r.certificates {
			return nil, &syncProblem{reason: api.ReasonSourceMissing, message: "cert-manager's Certificates are not served in this cluster"}
		}
		cnn := name(src.Certificate.Namespace, src.Certificate.Name)
		var c certmanager.Certificate
		if err := r.client.Get(ctx, cnn, &c); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &syncProblem{reason: api.ReasonSourceMissing, message: "Certificate " + cnn.String() + " does not exist"}
			}
			return nil, err
		}
		obj, key, nn = &corev1.Secret{}, "ca.crt", types.NamespacedName{Namespace: cnn.Namespace, Name: c.Spec.SecretName}
		what = fmt.Sprintf("Secret %s (of Certificate %s)", nn, cnn.Name)
	default:
		return nil, &syncProblem{reason: api.ReasonSourceMissing, message: "names no secret, configMap or certificate"}
	}
	if err := r.client.Get(ctx, nn, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &syncProblem{reason: api.ReasonSourceMissing, message: what + " does not exist (or is in a namespace the controller does not watch)"}
		}
		return nil, err
	}
	data, ok := valueOf(obj, key)
	if !ok {
		return nil, &syncProblem{reason: api.ReasonSourceHasNoCA, message: what + " has no certificates under key " + key}
	}
	cs, err := trustsync.Parse(data)
	if err != nil {
		return nil, &syncProblem{reason: api.ReasonSourceHasNoCA, message: fmt.Sprintf("%s key %s: %v", what, key, err)}
	}
	anchors := trustsync.Anchors(cs)
	if len(anchors) == 0 {
		return nil, &syncProblem{reason: api.ReasonSourceHasNoCA, message: fmt.Sprintf("%s key %s holds no CA certificate (%s)", what, key, trustsync.Subjects(cs))}
	}
	return anchors, nil
}

// target reads the target object and the certificates its key holds now.
func (r *trustSyncReconciler) target(ctx context.Context, s *api.TrustBundleSync) ([]trustsync.Cert, client.Object, error) {
	t := s.Spec.Target
	var obj client.Object = &corev1.Secret{}
	create := "kubectl create secret generic " + t.Name + " -n " + s.Namespace
	if t.Kind == "ConfigMap" {
		obj = &corev1.ConfigMap{}
		create = "kubectl create configmap " + t.Name + " -n " + s.Namespace
	}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: t.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, &syncProblem{reason: api.ReasonTargetMissing,
				message: fmt.Sprintf("%s %s does not exist: create it (%s); certrollout is granted to update it, not to create Secrets or ConfigMaps", t.Kind, t.Name, create)}
		}
		return nil, nil, err
	}
	data, ok := valueOf(obj, t.Key)
	if !ok {
		return nil, obj, nil
	}
	cs, err := trustsync.Parse(data)
	if err != nil {
		return nil, obj, nil //nolint:nilerr // whatever the key holds that is not a certificate is replaced
	}
	return cs, obj, nil
}

// valueOf is a key of a cached (reduced) Secret or ConfigMap: only keys holding certificates are kept.
func valueOf(obj client.Object, key string) ([]byte, bool) {
	switch o := obj.(type) {
	case *corev1.Secret:
		v, ok := o.Data[key]
		return v, ok && len(v) > 0
	case *corev1.ConfigMap:
		if v, ok := o.Data[key]; ok && v != "" {
			return []byte(v), true
		}
		v, ok := o.BinaryData[key]
		return v, ok && len(v) > 0
	}
	return nil, false
}

// write patches the target's key alone, with the resourceVersion the bundle was computed from: a
// concurrent change makes it read again rather than overwrite.
func (r *trustSyncReconciler) write(ctx context.Context, s *api.TrustBundleSync, target client.Object, bundle []byte) error {
	var data map[string]any
	cm, isConfigMap := target.(*corev1.ConfigMap)
	switch {
	case isConfigMap && cm.BinaryData[s.Spec.Target.Key] != nil:
		// The key lives in binaryData: it stays there (a key may not be in both maps).
		data = map[string]any{"binaryData": map[string]string{s.Spec.Target.Key: base64.StdEncoding.EncodeToString(bundle)}}
	case isConfigMap:
		data = map[string]any{"data": map[string]string{s.Spec.Target.Key: string(bundle)}}
	default:
		data = map[string]any{"data": map[string]string{s.Spec.Target.Key: base64.StdEncoding.EncodeToString(bundle)}}
	}
	data["metadata"] = map[string]any{"resourceVersion": target.GetResourceVersion()}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	err = r.client.Patch(ctx, target, client.RawPatch(types.MergePatchType, raw))
	if apierrors.IsForbidden(err) {
		return &syncProblem{reason: api.ReasonTargetForbidden, recheck: true, message: fmt.Sprintf(
			"the controller may not update %s %s/%s: grant it that object alone (Helm: trustSync.targets: [{namespace: %s, name: %s, kind: %s}]; see docs/trust-sync.md)",
			s.Spec.Target.Kind, s.Namespace, s.Spec.Target.Name, s.Namespace, s.Spec.Target.Name, s.Spec.Target.Kind)}
	}
	return err
}

// setSyncConditions sets Ready and the kstatus Stalled (present only while Ready is False).
func setSyncConditions(status *api.TrustBundleSyncStatus, generation int64, now time.Time, ready metav1.ConditionStatus, reason, msg string) {
	set := func(c metav1.Condition) {
		c.ObservedGeneration = generation
		c.LastTransitionTime = metav1.Time{Time: now.UTC().Truncate(time.Second)}
		apimeta.SetStatusCondition(&status.Conditions, c)
	}
	set(metav1.Condition{Type: api.ConditionReady, Status: ready, Reason: reason, Message: msg})
	if ready != metav1.ConditionTrue {
		set(metav1.Condition{Type: api.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: msg})
	} else {
		apimeta.RemoveStatusCondition(&status.Conditions, api.ConditionStalled)
	}
}

// syncsOf maps a Secret, ConfigMap or Certificate to the syncs that read or write it.
func syncsOf(c client.Reader, kind string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		keys := []string{kind + "/" + o.GetNamespace() + "/" + o.GetName()}
		if kind == "Secret" {
			// A Certificate source is read through its Secret: find the Certificates that write this one.
			var certs certmanager.CertificateList
			if err := c.List(ctx, &certs, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretNameIndex: o.GetName()}); err == nil {
				for _, cert := range certs.Items {
					keys = append(keys, "Certificate/"+cert.Namespace+"/"+cert.Name)
				}
			}
		}
		var out []reconcile.Request
		for _, k := range keys {
			var list api.TrustBundleSyncList
			if err := c.List(ctx, &list, client.MatchingFields{trustSyncIndex: k}); err != nil {
				log.FromContext(ctx).Error(err, "Failed to find the TrustBundleSyncs of an object", "object", k)
				continue
			}
			for _, s := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
			}
		}
		return out
	})
}

// setupTrustSync registers the TrustBundleSync controller when the cluster serves the type. Without
// --trust-sync it only says so in each sync's status.
func setupTrustSync(ctx context.Context, mgr manager.Manager, o Options, certificates bool) error {
	served, err := isServed(mgr.GetRESTMapper(), mgr.GetScheme(), &api.TrustBundleSync{})
	if err != nil || !served {
		if err == nil {
			ctrl.Log.Info("TrustBundleSync is not served; trust bundles are not synced (install config/crd and restart certrollout to use them)")
		}
		return err
	}
	err = mgr.GetFieldIndexer().IndexField(ctx, &api.TrustBundleSync{}, trustSyncIndex, func(obj client.Object) []string {
		if s, ok := obj.(*api.TrustBundleSync); ok {
			return syncObjects(s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r := &trustSyncReconciler{client: mgr.GetClient(), recorder: mgr.GetEventRecorder("certrollout"), enabled: o.TrustSync, certificates: certificates, clock: o.Clock}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("trustbundlesync").
		For(&api.TrustBundleSync{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{SkipNameValidation: &o.AllowRepeatedSetup})
	if o.TrustSync {
		changed := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return !sameCertificateData(e.ObjectOld, e.ObjectNew) }}
		b = b.Watches(&corev1.Secret{}, syncsOf(mgr.GetClient(), "Secret"), builder.WithPredicates(changed)).
			Watches(&corev1.ConfigMap{}, syncsOf(mgr.GetClient(), "ConfigMap"), builder.WithPredicates(changed))
		if certificates {
			b = b.Watches(&certmanager.Certificate{}, syncsOf(mgr.GetClient(), "Certificate"), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
		}
	}
	return b.Complete(r)
}
