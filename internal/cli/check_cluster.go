package cli

import (
	"context"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
)

// clusterItems reads the cluster once through a Snapshot (the controller's reduced caches, so memory
// holds certificate facts rather than Secret payloads) and makes one item per certificate key, with its
// cert-manager Certificate, consumers and stale pods.
func (o *CheckOptions) clusterItems(ctx context.Context, now time.Time) (*checkSection, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	if err := o.Controller.Resolve(ctx, c, o.ListNamespace()); err != nil {
		return nil, explain(err, o.Config())
	}
	opts := o.Controller.Options
	opts.Clock = func() time.Time { return now }
	snap, err := o.Snapshot(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	ns := o.ListNamespace()
	sources, err := snap.SourcesMatching(ctx, ns, o.selector)
	if err != nil {
		return nil, explain(err, o.Config())
	}
	workloads, err := snap.Workloads(ctx, ns)
	if err != nil {
		return nil, explain(err, o.Config())
	}
	certificates, err := snap.Certificates(ctx, ns)
	if err != nil {
		return nil, explain(err, o.Config())
	}
	graph, err := snap.CAGraph(ctx, ns)
	if err != nil {
		return nil, explain(err, o.Config())
	}
	s := buildClusterSection(ns, sources, workloads, certificates, o.selector, graph)
	if err := o.addNativeItems(ctx, c, s, ns, workloads); err != nil {
		return nil, explain(err, o.Config())
	}
	if o.Probe {
		if s.probes, err = probeWorkloads(ctx, o.Config(), o.ProbeTimeout, workloads); err != nil {
			return nil, err
		}
	}
	s.caIncomplete = snap.CAGraphIncomplete()
	s.assumed = &o.Controller.Assumed
	return s, nil
}

// userKey is a source in a namespace, as workloads name it.
type userKey struct {
	namespace string
	ref       consumers.Ref
}

// buildClusterSection is the pure part of clusterItems.
func buildClusterSection(ns string, sources []*inventory.Source, workloads []controller.Workload, certificates []certmanager.Certificate, sel labels.Selector, graph *cagraph.Graph) *checkSection {
	s := &checkSection{namespace: ns}
	users := map[userKey][]*controller.Workload{}
	for i := range workloads {
		w := &workloads[i]
		for _, ref := range consumers.Refs(w.Uses) {
			k := userKey{w.Namespace, ref}
			users[k] = append(users[k], w)
		}
	}
	issued := map[userKey]bool{}
	for _, src := range sources {
		k := userKey{src.Namespace, src.Ref}
		if src.HasCertificates() {
			issued[k] = true
		}
		for _, key := range checkSortedKeys(src.Keys) {
			s.items = append(s.items, sourceItem(src, key, users[k]))
		}
		for _, key := range checkSortedKeys(src.Invalid) {
			s.problems = append(s.problems, CheckProblem{
				Source:  CheckSource{Kind: string(src.Kind), Namespace: src.Namespace, Name: src.Name, Key: key},
				Message: src.Invalid[key].Error(),
			})
		}
		for _, key := range src.KeysWithoutCertificate {
			s.problems = append(s.problems, keyWithoutCertificate(CheckSource{Kind: string(src.Kind), Namespace: src.Namespace, Name: src.Name, Key: key}))
		}
	}
	// cert-manager Certificates whose Secret holds no certificate (not issued yet, failing, or the
	// Secret was deleted): nothing to expire, but a workload waiting for it will not start.
	for i := range certificates {
		c := &certificates[i]
		k := userKey{c.Namespace, consumers.Ref{Kind: consumers.KindSecret, Name: c.Spec.SecretName}}
		if issued[k] || !sel.Matches(labels.Set(c.Labels)) {
			continue
		}
		it := CheckItem{
			Source:      CheckSource{Kind: string(consumers.KindSecret), Namespace: c.Namespace, Name: c.Spec.SecretName},
			CertManager: certManagerOf(c),
		}
		it.Consumers, it.StalePods = checkConsumersOf(users[k], k.ref, "", time.Time{})
		s.items = append(s.items, it)
	}
	addCAGraph(s, graph)
	sortCheckItems(s.items)
	slices.SortFunc(s.problems, func(a, b CheckProblem) int {
		if a.Source.sortKey() < b.Source.sortKey() {
			return -1
		}
		if a.Source.sortKey() > b.Source.sortKey() {
			return 1
		}
		return 0
	})
	return s
}

// sourceItem is one key of a Secret or ConfigMap.
func sourceItem(src *inventory.Source, key string, users []*controller.Workload) CheckItem {
	b := src.Keys[key]
	it := CheckItem{
		Source:       CheckSource{Kind: string(src.Kind), Namespace: src.Namespace, Name: src.Name, Key: key},
		Certificate:  checkCertificate(b.FirstToExpire()),
		Certificates: len(b.Certificates),
	}
	if is := src.Issuance; is != nil {
		it.CertManager = &CheckCertManager{Name: is.Certificate, Revision: is.Revision, Ready: is.Ready, Message: is.ReadyMessage, StatusCurrent: is.Current}
		if !is.RenewalTime.IsZero() {
			t := is.RenewalTime.UTC()
			it.CertManager.RenewalTime = &t
		}
	}
	it.Consumers, it.StalePods = checkConsumersOf(users, src.Ref, key, src.IssuedAt([]string{key}))
	return it
}

// checkConsumersOf lists the workloads that read key of ref ("" for any key) and their pods that started no
// later than issuedAt: the rule the controller applies (decide.Decide), per key, since the question here
// is "who still runs on an older certificate than this one".
func checkConsumersOf(users []*controller.Workload, ref consumers.Ref, key string, issuedAt time.Time) (out []CheckConsumer, stale int) {
	for _, w := range users {
		if key != "" {
			if keys := consumers.KeysOf(w.Uses, ref); keys != nil && !slices.Contains(keys, key) {
				continue
			}
		}
		c := CheckConsumer{Kind: w.Kind, Name: w.Name}
		if !issuedAt.IsZero() && !w.Input.Reloads() && !w.Input.ServesCurrent() {
			for _, p := range w.Input.Pods {
				if decide.Stale(p.Started, issuedAt) {
					c.StalePods = append(c.StalePods, p.Name)
				}
			}
		}
		sort.Strings(c.StalePods)
		stale += len(c.StalePods)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CheckConsumer) int {
		if a.Kind != b.Kind {
			if a.Kind < b.Kind {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, stale
}

func certManagerOf(c *certmanager.Certificate) *CheckCertManager {
	cm := &CheckCertManager{Name: c.Name, Ready: c.Ready()}
	if c.Status.Revision != nil {
		cm.Revision = *c.Status.Revision
	}
	if cond := c.Condition(certmanager.ConditionReady); cond != nil && !cm.Ready {
		cm.Message = cond.Message
	}
	if cm.Message == "" && !cm.Ready {
		cm.Message = "the Secret " + c.Spec.SecretName + " holds no certificate"
	}
	if t := c.Status.RenewalTime; t != nil {
		u := t.UTC()
		cm.RenewalTime = &u
	}
	return cm
}

// addCAGraph marks each leaf's tls.crt (or not-issued item) with its CA chain, each CA Secret's tls.crt
// with the issuers it is the CA of, and lists the CA issuers.
func addCAGraph(s *checkSection, graph *cagraph.Graph) {
	if graph == nil {
		return
	}
	type secretKey struct{ namespace, name string }
	cas := map[secretKey][]CheckIssuerRef{}
	for i := range graph.Issuers {
		is := &graph.Issuers[i]
		ref := CheckIssuerRef{Kind: is.Kind, Namespace: is.Namespace, Name: is.Name}
		ci := CheckCAIssuer{CheckIssuerRef: ref, Problem: is.Problem, Ready: is.Ready, Cascade: is.Cascade,
			Secret:     CheckSource{Kind: string(consumers.KindSecret), Namespace: is.Secret.Namespace, Name: is.Secret.Name, Key: corev1.TLSCertKey},
			Leaves:     len(is.Leaves),
			NotCurrent: is.NotCurrent(),
		}
		if is.CA != nil {
			ci.CA = checkCertificate(is.CA)
		}
		s.caIssuers = append(s.caIssuers, ci)
		k := secretKey{is.Secret.Namespace, is.Secret.Name}
		cas[k] = append(cas[k], ref)
	}
	for i := range s.items {
		it := &s.items[i]
		if it.Source.Kind != string(consumers.KindSecret) || (it.Source.Key != corev1.TLSCertKey && it.Source.Key != "") {
			continue
		}
		if it.Source.Key == corev1.TLSCertKey {
			it.CAOf = cas[secretKey{it.Source.Namespace, it.Source.Name}]
		}
		is, leaf := graph.LeafOfSecret(types.NamespacedName{Namespace: it.Source.Namespace, Name: it.Source.Name})
		if leaf == nil {
			continue
		}
		it.CAChain = &CheckCAChain{
			Issuer:      CheckIssuerRef{Kind: is.Kind, Namespace: is.Namespace, Name: is.Name},
			Certificate: leaf.Certificate.Name,
			Status:      string(leaf.Status), Message: leaf.Message,
		}
		if is.CA != nil {
			it.CAChain.CAFingerprint = is.CA.Fingerprint
		}
	}
}

func checkSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
