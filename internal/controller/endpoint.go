package controller

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsServerOptions serve /metrics at ManagerOptions.MetricsBindAddress: plain HTTP by default, or,
// with MetricsSecure, HTTPS where every request carries a bearer token that the API server authenticates
// (TokenReview) and authorises for GET on the non-resource URL /metrics (SubjectAccessReview), as
// kubebuilder projects do. The certificate is MetricsCertDir's tls.crt and tls.key, or one generated in
// memory and self-signed when MetricsCertDir is empty: scrapers then skip verification, and the token is
// what protects the endpoint.
func metricsServerOptions(o ManagerOptions) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.MetricsBindAddress}
	if !o.MetricsSecure {
		return opts
	}
	opts.SecureServing = true
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	opts.CertDir = o.MetricsCertDir
	// HTTP/1.1 only, as kubebuilder scaffolds: HTTP/2's stream handling has had denial-of-service flaws
	// (rapid reset, CVE-2023-44487) and a scraper gains nothing from it.
	opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	return opts
}
