package controller

import (
	"context"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/inventory"
)

// secretNameIndex indexes cert-manager Certificates by spec.secretName.
const secretNameIndex = "spec.secretName"

// certificateLinker links Secrets to the cert-manager Certificates that issue them, from the cache. Its
// reader is nil when the cluster does not serve cert-manager's Certificates: Secrets then stand alone.
type certificateLinker struct {
	reader client.Reader
}

// setupCertificates caches cert-manager Certificates (the fields of package certmanager) when the cluster
// serves them.
func setupCertificates(ctx context.Context, mgr manager.Manager) (*certificateLinker, error) {
	gk := schema.GroupKind{Group: certmanager.GroupVersion.Group, Kind: "Certificate"}
	if _, err := mgr.GetRESTMapper().RESTMapping(gk, certmanager.GroupVersion.Version); err != nil {
		if apimeta.IsNoMatchError(err) {
			ctrl.Log.Info("cert-manager Certificates are not served; Secrets are not linked to them (restart certrollout after installing cert-manager)")
			return &certificateLinker{}, nil
		}
		return nil, err
	}
	err := mgr.GetFieldIndexer().IndexField(ctx, &certmanager.Certificate{}, secretNameIndex, func(o client.Object) []string {
		if c, ok := o.(*certmanager.Certificate); ok && c.Spec.SecretName != "" {
			return []string{c.Spec.SecretName}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &certificateLinker{reader: mgr.GetClient()}, nil
}

// link sets src.Issuance from the Certificates that name the Secret or that its annotation names.
func (l *certificateLinker) link(ctx context.Context, src *inventory.Source) error {
	if l.reader == nil || src.Kind != "Secret" {
		return nil
	}
	var list certmanager.CertificateList
	if err := l.reader.List(ctx, &list, client.InNamespace(src.Namespace), client.MatchingFields{secretNameIndex: src.Name}); err != nil {
		return err
	}
	if src.Certificate != "" {
		var named certmanager.Certificate
		err := l.reader.Get(ctx, client.ObjectKey{Namespace: src.Namespace, Name: src.Certificate}, &named)
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		if err == nil && named.Spec.SecretName != src.Name {
			list.Items = append(list.Items, named)
		}
	}
	src.Issuance = inventory.LinkCertificate(src, list.Items)
	return nil
}
