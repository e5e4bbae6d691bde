package controller

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/inventory"
)

var expiryDesc = prometheus.NewDesc(
	"certrollout_certificate_expiry_timestamp_seconds",
	"When the earliest-expiring certificate under a key of a Secret or ConfigMap expires (Unix time).",
	[]string{"namespace", "kind", "name", "key", "subject", "issuer"}, nil,
)

// certificateCollector reports certificate expiry from the cache when Prometheus scrapes, so the numbers
// follow the cluster without per-certificate gauges to keep up to date. One series per key (its earliest
// expiry) keeps a CA bundle of a hundred roots to one series. Certificates are parsed once per object
// version: a scrape parses only the Secrets and ConfigMaps written since the last one.
type certificateCollector struct {
	reader atomic.Pointer[client.Reader]

	mu     sync.Mutex
	parsed map[types.UID]parsedSource
	// parses counts the objects parsed, for tests.
	parses int
}

// parsedSource is the series of one version of a Secret or ConfigMap.
type parsedSource struct {
	resourceVersion string
	series          []expirySeries
}

type expirySeries struct {
	labels   []string
	notAfter float64
}

var certificates = &certificateCollector{}

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
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[types.UID]parsedSource, len(c.parsed))
	var secrets corev1.SecretList
	if err := (*rp).List(ctx, &secrets, client.UnsafeDisableDeepCopy); err == nil {
		for i := range secrets.Items {
			s := &secrets.Items[i]
			c.emit(ch, next, s, func() *inventory.Source { return inventory.FromSecret(s) })
		}
	}
	var cms corev1.ConfigMapList
	if err := (*rp).List(ctx, &cms, client.UnsafeDisableDeepCopy); err == nil {
		for i := range cms.Items {
			cm := &cms.Items[i]
			c.emit(ch, next, cm, func() *inventory.Source { return inventory.FromConfigMap(cm) })
		}
	}
	c.parsed = next
}

// emit sends obj's series, parsing it only when this version of it has not been parsed before, and keeps
// them in next. Objects come from the cache without a copy: they are only read.
func (c *certificateCollector) emit(ch chan<- prometheus.Metric, next map[types.UID]parsedSource, obj client.Object, parse func() *inventory.Source) {
	p, ok := c.parsed[obj.GetUID()]
	if !ok || p.resourceVersion != obj.GetResourceVersion() || obj.GetUID() == "" {
		c.parses++
		p = parsedSource{resourceVersion: obj.GetResourceVersion(), series: seriesOf(parse())}
	}
	next[obj.GetUID()] = p
	for _, s := range p.series {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, s.notAfter, s.labels...)
	}
}

func seriesOf(src *inventory.Source) []expirySeries {
	var out []expirySeries
	for key, b := range src.Keys {
		first := b.FirstToExpire()
		out = append(out, expirySeries{
			labels:   []string{src.Namespace, string(src.Kind), src.Name, key, first.Subject, first.Issuer},
			notAfter: float64(first.NotAfter.Unix()),
		})
	}
	return out
}
