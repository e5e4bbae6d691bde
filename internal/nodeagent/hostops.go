package nodeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/etcdops"
	"github.com/certrollout/certrollout/internal/kubeadmrenew"
)

// AnnotationAdvertiseEndpoint is the annotation kubeadm writes on the kube-apiserver static pod: the
// API server's host:port.
const AnnotationAdvertiseEndpoint = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"

// readyzTimeout bounds one API server's /readyz.
const readyzTimeout = 5 * time.Second

// apiServerFlags are the flags of the node's kube-apiserver manifest, with paths mapped to the host.
type apiServerFlags struct {
	etcdServers               []string
	etcdCA, etcdCert, etcdKey string
	clientCA                  string
}

// readAPIServerFlags reads the node's kube-apiserver manifest: how it reaches etcd (the servers and the
// client certificate it uses, which work for stacked and external etcd alike) and the cluster CA.
func (a *Agent) readAPIServerFlags() (apiServerFlags, error) {
	dir := filepath.Join(a.Scan.root(), orDefault(a.Scan.KubeadmDir, DefaultKubeadmDir), "manifests")
	data, err := os.ReadFile(filepath.Join(dir, KubeAPIServer+".yaml")) //nolint:gosec // the node's static pod manifest
	if err != nil {
		return apiServerFlags{}, fmt.Errorf("reading the kube-apiserver manifest: %w", err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return apiServerFlags{}, fmt.Errorf("the kube-apiserver manifest is not a pod: %w", err)
	}
	if len(pod.Spec.Containers) == 0 {
		return apiServerFlags{}, errors.New("the kube-apiserver manifest has no container")
	}
	ctr := pod.Spec.Containers[0]
	flags := parseFlags(append(append([]string{}, ctr.Command...), ctr.Args...))
	host := func(flag string) string {
		if flags[flag] == "" {
			return ""
		}
		return filepath.Join(a.Scan.root(), hostPathOf(pod, ctr, flags[flag]))
	}
	f := apiServerFlags{etcdCA: host("etcd-cafile"), etcdCert: host("etcd-certfile"), etcdKey: host("etcd-keyfile"), clientCA: host("client-ca-file")}
	for _, s := range strings.Split(flags["etcd-servers"], ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.etcdServers = append(f.etcdServers, s)
		}
	}
	if len(f.etcdServers) == 0 || f.etcdCA == "" || f.etcdCert == "" || f.etcdKey == "" {
		return f, errors.New("the kube-apiserver manifest does not say how it reaches etcd (--etcd-servers, --etcd-cafile, --etcd-certfile, --etcd-keyfile)")
	}
	return f, nil
}

// etcdConfig is how the agent reaches etcd: as the node's API server does, with its etcd client
// certificate, from the servers it names (etcdops then checks every member of the member list).
func (a *Agent) etcdConfig() (etcdops.Config, error) {
	f, err := a.readAPIServerFlags()
	if err != nil {
		return etcdops.Config{}, err
	}
	return etcdops.Config{Endpoints: f.etcdServers, CAFile: f.etcdCA, CertFile: f.etcdCert, KeyFile: f.etcdKey}, nil
}

// HostHealth checks every control-plane API server's /readyz (endpoints from the kube-apiserver mirror
// pods' kubeadm annotation) and every etcd member (member list, endpoint health, status, alarms).
func (a *Agent) HostHealth(ctx context.Context) api.ControlPlaneHealth {
	h := api.ControlPlaneHealth{CheckedAt: metav1.NewTime(a.now().UTC().Truncate(time.Second)), Healthy: true}
	fail := func(reason string) {
		h.Healthy = false
		if len(h.Reasons) < 16 {
			h.Reasons = append(h.Reasons, reason)
		}
	}
	flags, err := a.readAPIServerFlags()
	if err != nil {
		fail(err.Error())
		return h
	}
	h.APIServers = a.apiServersReady(ctx, flags.clientCA, fail)
	cfg := etcdops.Config{Endpoints: flags.etcdServers, CAFile: flags.etcdCA, CertFile: flags.etcdCert, KeyFile: flags.etcdKey}
	eh, err := etcdops.CheckHealth(ctx, cfg)
	if err != nil {
		fail("etcd: " + err.Error())
		return h
	}
	for _, m := range eh.Members {
		e := api.EndpointHealth{Name: orDefault(m.Name, m.ID), Healthy: m.Healthy, Leader: m.Leader, Message: m.Error}
		if len(m.ClientURLs) > 0 {
			e.Endpoint = m.ClientURLs[0]
		}
		if len(h.EtcdMembers) < 16 {
			h.EtcdMembers = append(h.EtcdMembers, e)
		}
	}
	for _, r := range eh.Reasons {
		fail(r)
	}
	if eh.Degraded && len(eh.Reasons) == 0 {
		fail("etcd is degraded")
	}
	return h
}

// apiServersReady asks each control-plane API server for /readyz, anonymously (kubeadm's default RBAC
// lets anyone read it), trusting the cluster CA.
func (a *Agent) apiServersReady(ctx context.Context, caFile string, fail func(string)) []api.EndpointHealth {
	endpoints, err := a.apiServerEndpoints(ctx)
	if err != nil {
		fail(err.Error())
		return nil
	}
	ca, err := os.ReadFile(caFile) //nolint:gosec // the cluster CA the API server names
	if err != nil {
		fail(fmt.Sprintf("reading the cluster CA: %v", err))
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: readyzTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var out []api.EndpointHealth
	for _, ep := range endpoints {
		e := api.EndpointHealth{Name: ep.node, Endpoint: "https://" + ep.hostPort + "/readyz", Healthy: true}
		if err := readyz(ctx, hc, e.Endpoint); err != nil {
			e.Healthy, e.Message = false, err.Error()
			fail(fmt.Sprintf("the API server on %s (%s) is not ready: %v", ep.node, ep.hostPort, err))
		}
		if len(out) < 16 {
			out = append(out, e)
		}
	}
	return out
}

type apiServerEndpoint struct{ node, hostPort string }

// apiServerEndpoints are the API servers of every control-plane node, from the kube-apiserver mirror
// pods (kubeadm's advertise-address annotation).
func (a *Agent) apiServerEndpoints(ctx context.Context) ([]apiServerEndpoint, error) {
	var pods corev1.PodList
	if err := a.Client.List(ctx, &pods, client.InNamespace(metav1.NamespaceSystem), client.MatchingLabels{"component": KubeAPIServer}); err != nil {
		return nil, fmt.Errorf("listing the kube-apiserver pods: %w", err)
	}
	var out []apiServerEndpoint
	for _, p := range pods.Items {
		ep := p.Annotations[AnnotationAdvertiseEndpoint]
		if _, _, err := net.SplitHostPort(ep); err != nil {
			continue
		}
		out = append(out, apiServerEndpoint{node: p.Spec.NodeName, hostPort: ep})
	}
	if len(out) == 0 {
		return nil, errors.New("no kube-apiserver pod in kube-system carries kubeadm's advertise-address annotation")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out, nil
}

func readyz(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// HostOps are the agent's real host actions.
func (a *Agent) HostOps() RolloutOps {
	return RolloutOps{Health: a.HostHealth, Snapshot: a.HostSnapshot, Renew: a.HostRenew}
}

// HostRenew renews, as `kubeadm certs renew` does, the kubeadm files that expire within renewBefore,
// backing the old ones up into backupDir. A zero validity is the cluster's certificateValidityPeriod
// (kubeadm's ClusterConfiguration in the kubeadm-config ConfigMap), else kubeadm's default.
func (a *Agent) HostRenew(ctx context.Context, renewBefore, validity time.Duration, backupDir string) ([]api.RenewedFile, error) {
	if validity == 0 {
		validity = a.clusterValidity(ctx)
	}
	res, err := kubeadmrenew.Renew(kubeadmrenew.Options{Dir: filepath.Join(a.Scan.root(), orDefault(a.Scan.KubeadmDir, DefaultKubeadmDir)),
		RenewBefore: renewBefore, Validity: validity, BackupDir: backupDir, Now: a.Now})
	if err != nil {
		return nil, err
	}
	for _, c := range res.Completed {
		a.Log.Info("Completed a renewal an interruption had left half done", "file", c)
	}
	out := make([]api.RenewedFile, 0, len(res.Renewed))
	for _, r := range res.Renewed {
		old := metav1.NewTime(r.OldNotAfter.UTC())
		out = append(out, api.RenewedFile{Name: r.Name, OldNotAfter: &old, NewNotAfter: metav1.NewTime(r.NewNotAfter.UTC()),
			Fingerprint: r.NewFingerprint, Backup: res.BackupDir})
	}
	return out, nil
}

// clusterValidity reads certificateValidityPeriod from kubeadm's ClusterConfiguration; 0 when the
// ConfigMap or the field is missing (kubeadm's default then applies).
func (a *Agent) clusterValidity(ctx context.Context) time.Duration {
	var cm corev1.ConfigMap
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceSystem, Name: "kubeadm-config"}, &cm); err != nil {
		a.Log.V(1).Info("No kubeadm-config ConfigMap: renewed certificates get kubeadm's default validity", "err", err.Error())
		return 0
	}
	var cc struct {
		CertificateValidityPeriod *metav1.Duration `json:"certificateValidityPeriod"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cc); err != nil || cc.CertificateValidityPeriod == nil {
		return 0
	}
	return cc.CertificateValidityPeriod.Duration
}

// HostSnapshot takes an etcd snapshot into dir under stateDir, keeping keep.
func (a *Agent) HostSnapshot(ctx context.Context, stateDir *os.Root, dir string, keep int) (api.EtcdSnapshotStatus, error) {
	cfg, err := a.etcdConfig()
	if err != nil {
		return api.EtcdSnapshotStatus{}, err
	}
	info, removed, err := etcdops.SnapshotIn(ctx, cfg, stateDir, dir, keep, a.now())
	if err != nil {
		return api.EtcdSnapshotStatus{}, err
	}
	if len(removed) > 0 {
		a.Log.Info("Removed old etcd snapshots", "removed", removed)
	}
	return api.EtcdSnapshotStatus{Path: info.Path, SHA256: info.SHA256, Size: info.Size, Revision: info.Revision, Member: info.Member,
		TakenAt: metav1.NewTime(info.TakenAt.UTC().Truncate(time.Second))}, nil
}
