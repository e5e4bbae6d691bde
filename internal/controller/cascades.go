package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/cascade"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/reissue"
	"github.com/certrollout/certrollout/internal/restart"
)

// reconcileCascade drives a CA cascade rollout through cascade.Next: observe the issuer, its leaves and
// the workloads that trust its CA, decide, trigger the re-issuances, record the status. A cascade touches
// no workload itself (each rolls through its own path), so it needs no restore finalizer.
func (r *rolloutReconciler) reconcileCascade(ctx context.Context, ro *api.CertRollout) (ctrl.Result, error) {
	in, certificates, err := r.observeCascade(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := cascade.Next(in)
	for _, a := range res.Actions {
		if err := r.actCascade(ctx, ro, a, certificates, in); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.record(ctx, ro, res.Outcome); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
}

func (r *rolloutReconciler) actCascade(ctx context.Context, ro *api.CertRollout, a cascade.Action, certificates map[types.NamespacedName]*certmanager.Certificate, in cascade.Input) error {
	if a.Type != cascade.TriggerIssuance {
		return fmt.Errorf("unknown cascade action %q", a.Type)
	}
	crt := certificates[a.Certificate]
	if crt == nil {
		return fmt.Errorf("Certificate %s vanished while the cascade re-issued it", a.Certificate) //nolint:staticcheck // a kind name starts the sentence
	}
	if err := reissue.Trigger(ctx, r.client, crt, a.Reason, a.Message, in.Now); err != nil {
		return fmt.Errorf("triggering the re-issuance of Certificate %s: %w", a.Certificate, err)
	}
	r.recorder.Eventf(crt, ro, corev1.EventTypeNormal, api.ReasonReissuing, "Reissue", "%s", fitNote(a.Message))
	ctrl.LoggerFrom(ctx).Info("Triggered the re-issuance of Certificate", "certificate", klog.KObj(crt), "rollout", ro.Name, "caFingerprint", ro.Spec.Cascade.CAFingerprint)
	return nil
}

// clusterResourceNamespace is where ClusterIssuers' CA Secrets live.
func (r *gatherer) clusterResourceNamespace() string {
	if r.opts.ClusterResourceNamespace != "" {
		return r.opts.ClusterResourceNamespace
	}
	return DefaultClusterResourceNamespace
}

// watches reports whether the controller's caches cover namespace ns.
func (r *gatherer) watches(ns string) bool {
	return len(r.opts.Namespaces) == 0 || slices.Contains(r.opts.Namespaces, ns)
}

// observeCascade reads the cascade's issuer, its CA Secret, the Certificates that name the issuer and
// their Secrets, judges them with cagraph, and finds the workloads that trust the CA.
func (r *rolloutReconciler) observeCascade(ctx context.Context, ro *api.CertRollout) (cascade.Input, map[types.NamespacedName]*certmanager.Certificate, error) {
	in := cascade.Input{Now: r.opts.Clock(), Rollout: ro, Leaves: map[types.NamespacedName]cascade.Leaf{}, Trusting: map[cascade.TrustKey]cascade.Trust{}}
	spec := ro.Spec.Cascade
	if ro.Status.Phase.Finished() {
		return in, nil, nil
	}
	if ro.Spec.Policy != "" {
		var p api.RolloutPolicy
		err := r.client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.Policy}, &p)
		if client.IgnoreNotFound(err) != nil {
			return in, nil, err
		}
		if err == nil {
			in.TrustTimeout = p.Spec.EffectiveHealthTimeout()
		}
	}
	if refused, err := r.clusterCascadeRefused(ctx, ro); err != nil || refused != "" {
		in.Refused = refused
		return in, nil, err
	}
	obs, err := r.observeIssuer(ctx, spec.IssuerRef, ro.Namespace)
	if err != nil || !obs.exists {
		return in, nil, err
	}
	in.Issuer.Exists = true
	if obs.issuer == nil {
		in.Issuer.Problem = obs.problem
		return in, nil, nil
	}
	is, mine, ns := obs.issuer, obs.certificates, obs.leavesNamespace
	in.Issuer.CAFingerprint = is.CA.Fingerprint
	certificates := map[types.NamespacedName]*certmanager.Certificate{}
	for i := range mine {
		certificates[types.NamespacedName{Namespace: mine[i].Namespace, Name: mine[i].Name}] = &mine[i]
	}
	// The CA's key IDs, new and old: the old CA certificate is gone from the issuer's Secret, but the
	// leaves it signed name its key.
	keys := map[string]bool{}
	if is.CA.SubjectKeyID != "" {
		keys[is.CA.SubjectKeyID] = true
	}
	leafSecrets := map[types.NamespacedName]bool{}
	for _, l := range is.Leaves {
		crt := certificates[l.Certificate]
		leaf := cascade.Leaf{Exists: true, Current: l.Status == cagraph.Current, NeedsReissue: l.Status.NeedsReissue(), Issuing: reissue.Issuing(crt), Message: l.Message}
		if crt.Status.Revision != nil {
			rev := int32(*crt.Status.Revision) //nolint:gosec // revisions count issuances
			leaf.Revision = &rev
		}
		if msg, failed := reissue.Failed(crt); failed {
			leaf.Failed, leaf.FailedMessage = true, msg
			if c := crt.Condition(certmanager.ConditionIssuing); c.LastTransitionTime != nil {
				leaf.FailedAt = c.LastTransitionTime.Time
			}
		}
		in.Leaves[l.Certificate] = leaf
		leafSecrets[l.Secret] = true
		if l.Leaf != nil && l.Leaf.AuthorityKeyID != "" {
			keys[l.Leaf.AuthorityKeyID] = true
		}
	}
	trusting, err := r.trusting(ctx, ns, is.CA.Fingerprint, keys, leafSecrets)
	if err != nil {
		return in, nil, err
	}
	in.Trusting = trusting
	return in, certificates, nil
}

// clusterCascadeRefused says why ro may not run a ClusterIssuer's cascade, or "" when it may (or its
// issuer is a namespaced Issuer, which only reaches ro's own namespace). A ClusterIssuer's cascade
// re-issues Certificates and waits for workloads in every namespace: it is the cluster admin's, so it
// runs only in cert-manager's cluster resource namespace (where the controller creates it, and where
// tenants have no say) and only for a ClusterIssuer the admin opted in.
func (r *gatherer) clusterCascadeRefused(ctx context.Context, ro *api.CertRollout) (string, error) {
	ref := ro.Spec.Cascade.IssuerRef
	if ref.Kind != certmanager.KindClusterIssuer {
		return "", nil
	}
	if crn := r.clusterResourceNamespace(); ro.Namespace != crn {
		return fmt.Sprintf("a cascade of ClusterIssuer %s reaches every namespace, so it runs only in namespace %s (cert-manager's cluster resource namespace), not in %s",
			ref.Name, crn, ro.Namespace), nil
	}
	if r.opts.CACascade {
		return "", nil
	}
	is := &certmanager.ClusterIssuer{}
	found, err := getIssuer(ctx, r.client, client.ObjectKey{Name: ref.Name}, is)
	if err != nil || !found {
		return "", err // a missing issuer fails the rollout as such
	}
	if !strings.EqualFold(is.GetAnnotations()[api.AnnotationCascade], "true") {
		return fmt.Sprintf("ClusterIssuer %s has not opted into CA cascades: annotate it %s: \"true\", or run the controller with --ca-cascade",
			ref.Name, api.AnnotationCascade), nil
	}
	return "", nil
}

// issuerObservation is a CA issuer as the cluster shows it now: its object, its CA certificate and the
// Certificates that name it, judged by cagraph.
type issuerObservation struct {
	// exists is false when the issuer, or its kind, does not exist (or cert-manager is not served).
	exists bool
	object client.Object
	// issuer is nil when problem says why it cannot be judged (not a CA issuer, CA Secret unreadable).
	issuer  *cagraph.Issuer
	problem string
	// certificates are the Certificates that name the issuer; leavesNamespace is where they are: the
	// Issuer's namespace, or all ("") for a ClusterIssuer.
	certificates    []certmanager.Certificate
	leavesNamespace string
}

// observeIssuer reads an issuer (an Issuer of namespace ns, or a ClusterIssuer), its CA Secret, the
// Certificates that name it and their Secrets, and judges them with cagraph. The cascade rollouts and
// the cascade trigger share it, so they judge the leaves alike.
func (r *gatherer) observeIssuer(ctx context.Context, ref api.IssuerReference, ns string) (issuerObservation, error) {
	var obs issuerObservation
	if r.linker.reader == nil {
		return obs, nil // cert-manager is not served: the issuer does not exist
	}
	var cas []cagraph.CAIssuer
	switch ref.Kind {
	case certmanager.KindClusterIssuer:
		is := &certmanager.ClusterIssuer{}
		found, err := getIssuer(ctx, r.client, client.ObjectKey{Name: ref.Name}, is)
		if err != nil || !found {
			return obs, err
		}
		obs.object = is
		cas = cagraph.Issuers(nil, []certmanager.ClusterIssuer{*is}, r.clusterResourceNamespace())
	default:
		is := &certmanager.Issuer{}
		found, err := getIssuer(ctx, r.client, client.ObjectKey{Namespace: ns, Name: ref.Name}, is)
		if err != nil || !found {
			return obs, err
		}
		obs.object = is
		cas = cagraph.Issuers([]certmanager.Issuer{*is}, nil, "")
		obs.leavesNamespace = ns
	}
	obs.exists = true
	if len(cas) == 0 {
		obs.problem = "it is not a CA issuer (spec.ca is not set)"
		return obs, nil
	}
	var list certmanager.CertificateList
	if err := r.client.List(ctx, &list, client.InNamespace(obs.leavesNamespace)); err != nil {
		return obs, err
	}
	for i := range list.Items {
		if ref, ok := cagraph.IssuerOf(&list.Items[i]); ok && ref == cas[0].IssuerRef {
			obs.certificates = append(obs.certificates, list.Items[i])
		}
	}
	gin := cagraph.Input{Issuers: cas, Certificates: obs.certificates, Secrets: map[types.NamespacedName][]byte{}, Unreadable: map[types.NamespacedName]string{}}
	for _, name := range cagraph.SecretsNeeded(cas, obs.certificates) {
		data, found, err := r.secretCertificate(ctx, name)
		switch {
		case apierrors.IsForbidden(err):
			gin.Unreadable[name] = err.Error()
		case err != nil:
			return obs, err
		case found:
			gin.Secrets[name] = data
		}
	}
	g := cagraph.Build(gin)
	if is := &g.Issuers[0]; is.CA != nil {
		obs.issuer = is
	} else {
		obs.problem = is.Problem
	}
	return obs, nil
}

// getIssuer reads an Issuer or ClusterIssuer; found is false when it, or its kind, does not exist.
func getIssuer(ctx context.Context, c client.Reader, key client.ObjectKey, obj client.Object) (found bool, err error) {
	err = c.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
		return false, nil
	}
	return err == nil, err
}

// secretCertificate reads a Secret's tls.crt: from the cache, or with one direct GET when the Secret lies
// outside the watched namespaces (a ClusterIssuer's CA Secret in cert-manager's namespace).
func (r *gatherer) secretCertificate(ctx context.Context, name types.NamespacedName) (data []byte, found bool, err error) {
	var s corev1.Secret
	if r.watches(name.Namespace) {
		err = r.client.Get(ctx, name, &s)
	} else {
		err = r.direct.Get(ctx, name, &s)
		inventory.ReduceSecret(&s) // drop the private key at once
	}
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return s.Data[corev1.TLSCertKey], true, nil
}

// trusting finds the workloads of ns ("" for all) that trust the CA: they use a certificate that is the
// CA's (its fingerprint, or a CA certificate with one of its key IDs, old or new) from a source that is
// not one of the cascade's leaves. A workload that uses a leaf's tls.crt is a leaf consumer: it rolls
// when its leaf is re-issued, not before.
func (r *rolloutReconciler) trusting(ctx context.Context, ns, fingerprint string, keys map[string]bool, leafSecrets map[types.NamespacedName]bool) (map[cascade.TrustKey]cascade.Trust, error) {
	out := map[cascade.TrustKey]cascade.Trust{}
	for _, k := range kinds {
		if k.name == api.KindPod {
			continue // bare pods are not waited for: certrollout can only delete them, when they opted in
		}
		list := k.newList()
		if err := r.client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, o := range items {
			obj, ok := o.(client.Object)
			if !ok || obj.GetDeletionTimestamp() != nil {
				continue
			}
			trusts, err := r.trustsCA(ctx, k, obj, fingerprint, keys, leafSecrets)
			if err != nil {
				return nil, err
			}
			if !trusts {
				continue
			}
			in, _, err := r.gather(ctx, k, obj)
			if err != nil {
				return nil, err
			}
			tr := trustOf(decide.Restart(in), fingerprint)
			if tr.State == api.TrustCurrent {
				// Restarted onto the new CA is not yet running on it: wait for the rollout, as kubectl
				// rollout status would, before a leaf signed by the new key reaches its peers.
				switch p := restart.RolloutStatus(obj); {
				case p.Failed != "":
					tr = cascade.Trust{State: api.TrustNotWaitedFor, Message: "its rollout onto the new CA cannot finish: " + p.Failed}
				case !p.Done:
					tr = cascade.Trust{State: api.TrustPending, Message: "rolling onto the new CA certificate: " + p.Message}
				}
			}
			out[cascade.TrustKey{Kind: k.name, Namespace: obj.GetNamespace(), Name: obj.GetName()}] = tr
		}
	}
	return out, nil
}

func (r *rolloutReconciler) trustsCA(ctx context.Context, k kind, obj client.Object, fingerprint string, keys map[string]bool, leafSecrets map[types.NamespacedName]bool) (bool, error) {
	uses := consumers.FromPodSpec(k.podSpec(obj), obj.GetAnnotations())
	trusts := false
	for _, ref := range consumers.Refs(uses) {
		src, found, err := r.source(ctx, obj.GetNamespace(), ref)
		if err != nil {
			return false, err
		}
		if !found {
			continue
		}
		used := consumers.KeysOf(uses, ref)
		if ref.Kind == consumers.KindSecret && leafSecrets[types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}] {
			if used == nil || slices.Contains(used, corev1.TLSCertKey) {
				return false, nil // a leaf consumer
			}
			// A leaf Secret's ca.crt changes with the leaf: it cannot carry the new CA before the leaf is
			// re-issued, so waiting for it would only hold the cascade up. It does not make a truster.
			continue
		}
		for _, c := range src.Certificates(used) {
			if c.Fingerprint == fingerprint || (c.IsCA && keys[c.SubjectKeyID]) {
				trusts = true
			}
		}
	}
	return trusts, nil
}

// trustOf turns the controller's decision about a trusting workload into what the cascade waits for:
// Current when its pods run on the certificates it uses now (the new CA among them), Pending when a
// restart is coming, NotWaitedFor when certrollout may not or cannot restart it.
// A workload whose certificates do not hold the new CA yet is Pending even when nothing is due: its
// Secret or bundle has not caught up (a cache a moment behind, a trust-manager bundle not yet updated),
// and it is the new CA that it must trust before any leaf is re-issued.
func trustOf(d decide.Decision, fingerprint string) cascade.Trust {
	switch d.Action {
	case decide.ActionRestart, decide.ActionWait, decide.ActionDelegate, decide.ActionReload:
		return cascade.Trust{State: api.TrustPending, Message: d.Reason + ": " + d.Message}
	case decide.ActionBlock:
		return cascade.Trust{State: api.TrustNotWaitedFor, Message: d.Reason + ": " + d.Message}
	case decide.ActionNone, decide.ActionRecord:
	}
	if d.Reason == api.ReasonNotEnabled {
		return cascade.Trust{State: api.TrustNotWaitedFor, Message: d.Reason + ": " + d.Message}
	}
	if !slices.Contains(d.Set.Fingerprints, fingerprint) {
		return cascade.Trust{State: api.TrustPending, Message: "its certificates do not hold the new CA certificate yet"}
	}
	return cascade.Trust{State: api.TrustCurrent}
}

// cascadesFor maps a cert-manager Certificate to the unfinished cascade rollouts of its issuer, so that
// a leaf's progress wakes its cascade at once.
func cascadesFor(ctx context.Context, c client.Reader, obj client.Object) []reconcile.Request {
	crt, ok := obj.(*certmanager.Certificate)
	if !ok {
		return nil
	}
	ref, ok := cagraph.IssuerOf(crt)
	if !ok {
		return nil
	}
	var list api.CertRolloutList
	opts := []client.ListOption{}
	if ref.Kind == certmanager.KindIssuer {
		opts = append(opts, client.InNamespace(ref.Namespace))
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list CertRollouts")
		return nil
	}
	var out []reconcile.Request
	for _, ro := range list.Items {
		cs := ro.Spec.Cascade
		if cs == nil || ro.Status.Phase.Finished() || cs.IssuerRef.Kind != ref.Kind || cs.IssuerRef.Name != ref.Name {
			continue
		}
		if ref.Kind == certmanager.KindIssuer && ro.Namespace != ref.Namespace {
			continue
		}
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
	}
	return out
}
