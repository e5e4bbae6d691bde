package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
)

// cascadeIssuerIndex indexes the unfinished cascade CertRollouts by the issuer they re-issue for
// (cascadeIssuerKey). Finished rollouts are left out, so "is a cascade running for this issuer?" is one
// lookup in memory, cheap enough for every workload reconcile.
const cascadeIssuerIndex = "spec.cascade.issuerRef"

// holdRequeue is how soon a held workload looks again. Only a fallback: the re-issued leaf's Secret
// re-enqueues its users at once.
const holdRequeue = 15 * time.Second

// outsideRecheck is how often an issuer whose CA Secret lies outside the watched namespaces (a
// ClusterIssuer's) is looked at again: its Secret's changes are not seen.
const outsideRecheck = 5 * time.Minute

// cascadeIssuerKey is "<kind>/<namespace>/<name>": the namespace is the cascade rollout's, so only a
// rollout where a cascade may run can hold restarts (an Issuer's in its own namespace, a ClusterIssuer's
// in the cluster resource namespace; a tenant's CertRollout naming a ClusterIssuer holds nothing).
func cascadeIssuerKey(kind, ns, name string) string {
	if kind != certmanager.KindClusterIssuer {
		kind = certmanager.KindIssuer
	}
	return kind + "/" + ns + "/" + name
}

// setupCascadeTrigger registers the controller that creates cascade rollouts, when the gatherer can
// see cascades (certrollout.io, cert-manager's Certificates and issuers are served).
func setupCascadeTrigger(mgr manager.Manager, disc *gatherer) error {
	if !disc.cascades || !disc.issuers.issuers || !disc.issuers.clusterIssuers {
		return nil // it watches both kinds
	}
	c := mgr.GetClient()
	crn := disc.clusterResourceNamespace()
	return ctrl.NewControllerManagedBy(mgr).Named("cascadetrigger").
		// One controller for both kinds: a request without a namespace is a ClusterIssuer.
		For(&certmanager.Issuer{}).
		Watches(&certmanager.ClusterIssuer{}, &handler.EnqueueRequestForObject{}).
		Watches(&corev1.Secret{}, secretToIssuers(c, crn)).
		Watches(&certmanager.Certificate{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			if crt, ok := obj.(*certmanager.Certificate); ok {
				if ref, ok := cagraph.IssuerOf(crt); ok {
					return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}}}
				}
			}
			return nil
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &disc.opts.AllowRepeatedSetup}).
		Complete(&cascadeTrigger{gatherer: disc, recorder: mgr.GetEventRecorder("certrollout")})
}

// secretToIssuers maps a Secret whose certificate changed to the issuers it concerns: the issuers whose
// CA Secret it is, and the issuer of the Certificate that writes it (a leaf).
func secretToIssuers(c client.Reader, clusterResourceNamespace string) handler.EventHandler {
	enqueue := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		add := func(ns, name string) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
		}
		var issuers certmanager.IssuerList
		if err := c.List(ctx, &issuers, client.InNamespace(obj.GetNamespace())); err != nil {
			log.FromContext(ctx).Error(err, "Failed to list Issuers")
			return
		}
		for _, is := range issuers.Items {
			if is.Spec.CA != nil && is.Spec.CA.SecretName == obj.GetName() {
				add(is.Namespace, is.Name)
			}
		}
		if obj.GetNamespace() == clusterResourceNamespace {
			var cis certmanager.ClusterIssuerList
			if err := c.List(ctx, &cis); err != nil {
				log.FromContext(ctx).Error(err, "Failed to list ClusterIssuers")
				return
			}
			for _, is := range cis.Items {
				if is.Spec.CA != nil && is.Spec.CA.SecretName == obj.GetName() {
					add("", is.Name)
				}
			}
		}
		var crts certmanager.CertificateList
		if err := c.List(ctx, &crts, client.InNamespace(obj.GetNamespace()), client.MatchingFields{secretNameIndex: obj.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "Failed to list Certificates")
			return
		}
		for i := range crts.Items {
			if ref, ok := cagraph.IssuerOf(&crts.Items[i]); ok {
				add(ref.Namespace, ref.Name)
			}
		}
	}
	return onCertificateChange(enqueue)
}

// cascadeTrigger creates the cascade CertRollout of a CA issuer whose leaves were issued under another
// CA certificate than its current one. It is level-based: it compares the leaves with the CA as it is,
// so a rotation it missed while down, or leaves it sees for the first time, start a cascade all the same.
type cascadeTrigger struct {
	*gatherer
	recorder events.EventRecorder
}

func (r *cascadeTrigger) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ref := api.IssuerReference{Kind: certmanager.KindIssuer, Name: req.Name}
	home := req.Namespace // where the rollout goes: the Issuer's namespace, a ClusterIssuer's CA Secret's
	if req.Namespace == "" {
		ref.Kind, home = certmanager.KindClusterIssuer, r.clusterResourceNamespace()
	}
	obs, err := r.observeIssuer(ctx, ref, req.Namespace)
	if err != nil || !obs.exists {
		return ctrl.Result{}, err
	}
	if obs.issuer == nil {
		if problem := cascadeBlocked(ref, req.Namespace, obs.object, obs.problem, r.opts.CACascade); problem != "" {
			// Bad input on the issuer: say so where its owner looks. Reconciles follow changes to the
			// issuer and its Secret, so this repeats only when something changed.
			r.recorder.Eventf(obs.object, nil, corev1.EventTypeWarning, api.ReasonInvalidCA, "Cascade", "%s", fitNote(problem))
		}
		return ctrl.Result{}, nil
	}
	var res ctrl.Result
	if !r.watches(obs.issuer.Secret.Namespace) {
		res.RequeueAfter = outsideRecheck
	}
	due, message := cascadeDue(obs.issuer, r.opts.CACascade)
	if !due {
		return res, nil
	}
	if !r.watches(home) {
		ctrl.LoggerFrom(ctx).Info("Not starting a CA cascade: its CertRollout would be in a namespace the controller does not watch", "namespace", home)
		return res, nil
	}
	ro := cascadeRollout(ref, home, obs.issuer.CA.Fingerprint, message)
	err = r.client.Create(ctx, ro)
	if apierrors.IsAlreadyExists(err) {
		// The cascade for this CA certificate exists: running, or finished. A finished one is not
		// created again, so a leaf that failed to re-issue stays reported on it (and by check) rather
		// than retried in a loop; deleting that CertRollout retries.
		return res, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.recorder.Eventf(obs.object, ro, corev1.EventTypeNormal, api.ReasonCascadeStarted, "Cascade", "%s", fitNote("Created CertRollout "+ro.Namespace+"/"+ro.Name+": "+message))
	ctrl.LoggerFrom(ctx).Info("Started a CA cascade", "issuer", ref.Kind+" "+klog.KRef(req.Namespace, req.Name).String(), "rollout", ro.Name, "caFingerprint", obs.issuer.CA.Fingerprint)
	return res, nil
}

// cascadeDue decides whether an issuer needs a cascade: it cascades (annotated, or all under
// --ca-cascade), its CA certificate could be read, and some leaves need re-issuing. message says why.
func cascadeDue(is *cagraph.Issuer, all bool) (due bool, message string) {
	if is == nil || is.CA == nil || (!is.Cascade && !all) {
		return false, ""
	}
	var stale []string
	for _, l := range is.Leaves {
		if l.Status.NeedsReissue() {
			stale = append(stale, l.Certificate.String())
		}
	}
	if len(stale) == 0 {
		return false, ""
	}
	const shown = 10
	list := strings.Join(stale[:min(len(stale), shown)], ", ")
	if len(stale) > shown {
		list += fmt.Sprintf(" and %d more", len(stale)-shown)
	}
	return true, fmt.Sprintf("%s has CA certificate %s; %d leaf Certificate(s) were issued under another: %s",
		is.IssuerRef, short(is.CA.Fingerprint), len(stale), list)
}

// cascadeBlocked says why a cascading issuer (annotated, or every one under --ca-cascade) cannot
// cascade: problem, why its CA certificate cannot be read. Empty when it does not cascade.
func cascadeBlocked(ref api.IssuerReference, ns string, obj client.Object, problem string, all bool) string {
	if problem == "" || obj == nil || (!all && !strings.EqualFold(obj.GetAnnotations()[api.AnnotationCascade], "true")) {
		return ""
	}
	name := ref.Name
	if ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s cascades, but %s; the leaves it signed are neither checked nor re-issued", ref.Kind, name, problem)
}

// cascadeRollout is the cascade CertRollout for the issuer's CA certificate fingerprint, in namespace ns.
func cascadeRollout(ref api.IssuerReference, ns, fingerprint, message string) *api.CertRollout {
	return &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cascadeRolloutName(ref.Name, fingerprint)},
		Spec: api.CertRolloutSpec{
			Trigger: api.RolloutTrigger{Type: api.TriggerCARotated, Message: message},
			Cascade: &api.CascadeSpec{IssuerRef: ref, CAFingerprint: fingerprint},
		},
	}
}

// cascadeRolloutName is "cascade-<issuer>-<fingerprint[:10]>": one name per issuer and CA certificate, so
// a controller that crashes after creating it, or a second replica, finds it instead of creating another.
// A long issuer name is cut so the whole stays a valid object name (a DNS subdomain: no label may end
// in "-" or ".").
func cascadeRolloutName(issuer, fingerprint string) string {
	const maxLen = 253
	suffix := short(fingerprint)
	prefix := "cascade-" + issuer
	if len(prefix)+1+len(suffix) > maxLen {
		prefix = strings.TrimRight(prefix[:maxLen-1-len(suffix)], "-.")
	}
	return prefix + "-" + suffix
}

// short is the first 10 characters of a fingerprint, as names and messages show it.
func short(fingerprint string) string {
	return fingerprint[:min(len(fingerprint), 10)]
}

// cascadeHold holds a due restart of a workload that uses a leaf (its tls.crt, or every key of its
// Secret) which an unfinished cascade CertRollout is about to re-issue: restarting now would roll it
// twice, once for the CA and once for its new leaf. It holds only while such a rollout runs and the leaf
// still needs re-issuing, so nothing is held for ever. held is false when nothing holds it.
func (r *gatherer) cascadeHold(ctx context.Context, ns string, uses []consumers.Use, sources map[consumers.Ref]*inventory.Source) (hold decide.Hold, held bool, err error) {
	if !r.cascades {
		return decide.Hold{}, false, nil
	}
	for _, ref := range consumers.Refs(uses) { // in order, so the message names the same leaf each time
		src := sources[ref]
		if ref.Kind != consumers.KindSecret || src == nil || src.Issuance == nil {
			continue // only Secrets cert-manager writes can be leaves
		}
		if keys := consumers.KeysOf(uses, ref); keys != nil && !slices.Contains(keys, corev1.TLSCertKey) {
			continue // uses the Secret's ca.crt only: a trusting workload, which the cascade rolls first
		}
		crt := &certmanager.Certificate{}
		if err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.Issuance.Certificate}, crt); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return decide.Hold{}, false, err
		}
		issuer, ok := cagraph.IssuerOf(crt)
		if !ok {
			continue
		}
		if !r.readsIssuer(issuer.Kind) {
			continue // cannot be judged by this reader (a tenant's plan, without ClusterIssuers)
		}
		rollouts, err := r.cascadeRollouts(ctx, issuer)
		if err != nil {
			return decide.Hold{}, false, err
		}
		if len(rollouts) == 0 {
			continue
		}
		stale, err := r.leafNeedsReissue(ctx, issuer, crt)
		if err != nil {
			return decide.Hold{}, false, err
		}
		if !stale {
			continue // re-issued already: another leaf the workload uses may still hold it
		}
		ro := rollouts[0]
		return decide.Hold{
			Message: fmt.Sprintf("Certificate %s (Secret %s) is being re-issued under the new CA of %s by CertRollout %s/%s; the restart waits for the new leaf",
				crt.Name, ref.Name, issuer, ro.Namespace, ro.Name),
			RequeueAfter: holdRequeue,
		}, true, nil
	}
	return decide.Hold{}, false, nil
}

// readsIssuer reports whether the gatherer may read issuers of the kind (Issuer or ClusterIssuer).
func (r *gatherer) readsIssuer(kind string) bool {
	if kind == certmanager.KindClusterIssuer {
		return r.issuers.clusterIssuers
	}
	return r.issuers.issuers
}

// cascadeRollouts are the unfinished cascade CertRollouts for issuer, in the namespace where its cascades
// run: from the index when the caches cover that namespace, else (a ClusterIssuer's cascades, seen by a
// Snapshot of another namespace) with one direct list of it, empty when the reader may not list it.
func (r *gatherer) cascadeRollouts(ctx context.Context, issuer cagraph.IssuerRef) ([]api.CertRollout, error) {
	home := issuer.Namespace
	if issuer.Kind == certmanager.KindClusterIssuer {
		home = r.clusterResourceNamespace()
	}
	key := cascadeIssuerKey(issuer.Kind, home, issuer.Name)
	var list api.CertRolloutList
	if r.watches(home) {
		err := r.client.List(ctx, &list, client.InNamespace(home), client.MatchingFields{cascadeIssuerIndex: key})
		return list.Items, err
	}
	if err := r.direct.List(ctx, &list, client.InNamespace(home)); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []api.CertRollout
	for i := range list.Items {
		if k, ok := cascadeKeyOf(&list.Items[i]); ok && k == key {
			out = append(out, list.Items[i])
		}
	}
	return out, nil
}

// leafNeedsReissue judges one leaf against its issuer's current CA certificate; false when that cannot
// be judged (the issuer or its CA Secret is missing or unreadable), so a broken issuer holds nothing.
func (r *gatherer) leafNeedsReissue(ctx context.Context, ref cagraph.IssuerRef, crt *certmanager.Certificate) (bool, error) {
	var cas []cagraph.CAIssuer
	if ref.Kind == certmanager.KindClusterIssuer {
		is := certmanager.ClusterIssuer{}
		if found, err := getIssuer(ctx, r.client, client.ObjectKey{Name: ref.Name}, &is); err != nil || !found {
			return false, err
		}
		cas = cagraph.Issuers(nil, []certmanager.ClusterIssuer{is}, r.clusterResourceNamespace())
	} else {
		is := certmanager.Issuer{}
		if found, err := getIssuer(ctx, r.client, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &is); err != nil || !found {
			return false, err
		}
		cas = cagraph.Issuers([]certmanager.Issuer{is}, nil, "")
	}
	if len(cas) == 0 {
		return false, nil
	}
	in := cagraph.Input{Issuers: cas, Certificates: []certmanager.Certificate{*crt}, Secrets: map[types.NamespacedName][]byte{}}
	for _, name := range cagraph.SecretsNeeded(cas, in.Certificates) {
		data, found, err := r.secretCertificate(ctx, name)
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if found {
			in.Secrets[name] = data
		}
	}
	g := cagraph.Build(in)
	if len(g.Issuers) == 0 || len(g.Issuers[0].Leaves) == 0 {
		return false, nil
	}
	return g.Issuers[0].Leaves[0].Status.NeedsReissue(), nil
}
