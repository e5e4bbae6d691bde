package controller

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/certrollout/certrollout/internal/inventory"
)

var expiryDesc = prometheus.NewDesc(
	"certrollout_certificate_expiry_timestamp_seconds",
	"When the earliest-expiring certificate under a key of a Secret or ConfigMap expires (Unix time).",
	[]string{"namespace", "kind", "name", "key", "subject", "issuer"}, nil,
)

// certificateCollector reports certificate expiry from the cache when Prometheus scrapes, so the numbers
// are never stale and no per-certificate state is kept between scrapes. One series per key (its earliest
// expiry) keeps a CA bundle of a hundred roots to one series.
type certificateCollector struct {
	reader atomic.Pointer[client.Reader]
}

var certificates = &certificateCollector{}

func init() { metrics.Registry.MustRegister(certificates) }

// use points the collector at a manager's cache.
func (c *certificateCollector) use(r client.Reader) { c.reader.Store(&r) }

func (c *certificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *certificateCollector) Collect(ch chan<- prometheus.Metric) {
	rp := c.reader.Load()
	if rp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sources []*inventory.Source
	var secrets corev1.SecretList
	if err := (*rp).List(ctx, &secrets); err == nil {
		for i := range secrets.Items {
			sources = append(sources, inventory.FromSecret(&secrets.Items[i]))
		}
	}
	var cms corev1.ConfigMapList
	if err := (*rp).List(ctx, &cms); err == nil {
		for i := range cms.Items {
			sources = append(sources, inventory.FromConfigMap(&cms.Items[i]))
		}
	}
	for _, src := range sources {
		for key, b := range src.Keys {
			first := b.FirstToExpire()
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(first.NotAfter.Unix()),
				src.Namespace, string(src.Kind), src.Name, key, first.Subject, first.Issuer)
		}
	}
}
