package controller

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

var (
	controlPlaneExpiryDesc = prometheus.NewDesc("certrollout_control_plane_certificate_expiry_timestamp_seconds",
		"When each certificate the node agent found on a control-plane node expires (its notAfter, Unix time), by node, certificate (kubeadm's name, kubelet-client, kubelet-serving or etcd/<file>) and set (kubeadm, kubelet or etcd).",
		[]string{"node", "certificate", "set"}, nil)
	controlPlaneServingOldDesc = prometheus.NewDesc("certrollout_control_plane_component_serving_old",
		"1 for a control-plane component (or the kubelet) that serves or uses a certificate older than the one on disk and needs a restart (state ServesOld), else 0; by node and component, for the components the node agent found.",
		[]string{"node", "component"}, nil)
	nodeAgentLastReportDesc = prometheus.NewDesc("certrollout_node_agent_last_report_timestamp_seconds",
		"When the node agent last scanned the node (its NodeCertificates' status.observedAt, Unix time). The agent writes at least every heartbeat, so an old value means the agent is gone.",
		[]string{"node"}, nil)
)

// controlPlane reports the NodeCertificates the node agents write, from the manager's cache when
// Prometheus scrapes: one object per control-plane node, already decoded by the agent (nothing is parsed
// here). Only the cluster-wide controller watches them (NodeCertificates are cluster-scoped; a namespaced
// controller is not granted them), so a namespaced controller exports none of these series.
var controlPlane = &controlPlaneCollector{}

type controlPlaneCollector struct {
	reader atomic.Pointer[client.Reader]
}

// use points the collector at a cache that has an informer on NodeCertificates.
func (c *controlPlaneCollector) use(r client.Reader) { c.reader.Store(&r) }

func (c *controlPlaneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- controlPlaneExpiryDesc
	ch <- controlPlaneServingOldDesc
	ch <- nodeAgentLastReportDesc
}

func (c *controlPlaneCollector) Collect(ch chan<- prometheus.Metric) {
	rp := c.reader.Load()
	if rp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list api.NodeCertificatesList
	if err := (*rp).List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	for i := range list.Items {
		collectNode(ch, &list.Items[i])
	}
}

// collectNode emits one node's series. A file or component repeated within a node (which the agent never
// writes) counts once, with the earliest expiry or ServesOld if any is: Prometheus refuses a scrape that
// repeats a series.
func collectNode(ch chan<- prometheus.Metric, nc *api.NodeCertificates) {
	node := nc.Name
	if nc.Status.ObservedAt != nil {
		ch <- prometheus.MustNewConstMetric(nodeAgentLastReportDesc, prometheus.GaugeValue, float64(nc.Status.ObservedAt.Unix()), node)
	}
	type fileKey struct{ name, set string }
	expiry := map[fileKey]time.Time{}
	var order []fileKey
	for _, f := range nc.Status.Files {
		k := fileKey{f.Name, f.Set}
		if t, ok := expiry[k]; ok {
			if f.NotAfter.Time.Before(t) {
				expiry[k] = f.NotAfter.Time
			}
			continue
		}
		expiry[k] = f.NotAfter.Time
		order = append(order, k)
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(controlPlaneExpiryDesc, prometheus.GaugeValue, float64(expiry[k].Unix()), node, k.name, k.set)
	}
	old := map[string]float64{}
	var components []string
	for _, comp := range nc.Status.Components {
		if _, ok := old[comp.Name]; !ok {
			components = append(components, comp.Name)
			old[comp.Name] = 0
		}
		if comp.State == api.ComponentServesOld {
			old[comp.Name] = 1
		}
	}
	for _, name := range components {
		ch <- prometheus.MustNewConstMetric(controlPlaneServingOldDesc, prometheus.GaugeValue, old[name], node, name)
	}
}

// watchNodeCertificates registers the NodeCertificates informer on the manager's cache (so it starts and
// syncs with the others, not at the first scrape) and points the collector at the cache.
func watchNodeCertificates(ctx context.Context, c cache.Cache) error {
	if _, err := c.GetInformer(ctx, &api.NodeCertificates{}); err != nil {
		return err
	}
	controlPlane.use(c)
	return nil
}
