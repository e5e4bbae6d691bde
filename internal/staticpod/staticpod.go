// Package staticpod runs static pod manifests for one node the way the kubelet does, without containers:
// each manifest's command runs as a process on this machine, with the paths of its hostPath mounts mapped
// into the node's root folder. It posts the mirror pods, the Node and its Lease that a kubelet posts, and
// serves the kubelet's port with a kubelet-style self-signed certificate. The local kubeadm-shaped control
// plane (package localcluster) runs one per node, so that the API reports what a real cluster reports:
// in particular, deleting a mirror pod restarts nothing, the trap that runbooks fall into.
package staticpod

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Config describes one node. Paths named "host path" are paths on the node (as in a manifest); the runner
// finds them under HostRoot.
type Config struct {
	// NodeName is the Node's name and the suffix of its mirror pods.
	NodeName string
	// NodeIP is the node's address (127.0.0.N locally): the Node's InternalIP, the pods' hostIP and podIP,
	// the kubelet port's address, and the probe host where a probe names none.
	NodeIP string
	// HostRoot is the node's root folder on this machine.
	HostRoot string
	// ManifestDir is the host path of the static pod manifests; default /etc/kubernetes/manifests.
	ManifestDir string
	// Kubeconfig is the host path of the kubelet's kubeconfig; default /etc/kubernetes/kubelet.conf.
	Kubeconfig string
	// Commands maps a container's command (its base name, such as kube-apiserver) to the binary to run.
	Commands map[string]string
	// LogDir receives one log per static pod (<name>.log, appended across restarts) on this machine.
	LogDir string
	// KubeletPort is where the kubelet's TLS endpoint listens on NodeIP; 0 serves none.
	KubeletPort int
	// KubeletVersion is reported in the Node's nodeInfo.
	KubeletVersion string
	// PollInterval is how often the manifests folder is read; default 500ms.
	PollInterval time.Duration
	// StopGrace is how long a stopped process has between SIGTERM and SIGKILL; default 5s.
	StopGrace time.Duration
	Log       logr.Logger
}

func (c *Config) complete() error {
	if c.NodeName == "" || c.NodeIP == "" || c.HostRoot == "" {
		return errors.New("staticpod: NodeName, NodeIP and HostRoot are required")
	}
	if net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("staticpod: node IP %q is not an IP address", c.NodeIP)
	}
	root, err := filepath.Abs(c.HostRoot)
	if err != nil {
		return err
	}
	c.HostRoot = root
	if c.ManifestDir == "" {
		c.ManifestDir = "/etc/kubernetes/manifests"
	}
	if c.Kubeconfig == "" {
		c.Kubeconfig = "/etc/kubernetes/kubelet.conf"
	}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(root, "var", "log", "pods")
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 5 * time.Second
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = "v0.0.0-staticpod"
	}
	return nil
}

// hostPath is where a host path of the node lives on this machine.
func (c *Config) hostPath(p string) string {
	if strings.HasPrefix(p, c.HostRoot+"/") {
		return p
	}
	return filepath.Join(c.HostRoot, p)
}

// container is the state of one static pod: its manifest and the process that runs it.
type container struct {
	m *manifest
	// seen is when this version of the manifest was first read (the kubelet's config.seen, the pod's
	// startTime).
	seen time.Time

	proc         *process
	last         *process // the previous run, for lastState
	restartCount int32
	// crashes in a row, for the back-off; reset after a run that lasted.
	crashes   int
	nextStart time.Time
	ready     bool
}

// Runner is the kubelet stand-in for one node.
type Runner struct {
	cfg    Config
	log    logr.Logger
	sp     *spawner
	client kubernetes.Interface

	mu         sync.Mutex            // guards pods' probe results against the loop
	pods       map[string]*container // by manifest file
	apiState   apiState
	startedAll time.Time
}

// Run runs the node until ctx ends, then stops every process it started.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.complete(); err != nil {
		return err
	}
	r := &Runner{cfg: cfg, log: cfg.Log, sp: newSpawner(), pods: map[string]*container{}, startedAll: time.Now().UTC()}
	for _, d := range []string{cfg.LogDir, cfg.hostPath(cfg.ManifestDir), cfg.hostPath(kubeletPKIDir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	if err := finalizeKubeletClient(cfg.hostPath(cfg.Kubeconfig), cfg.HostRoot, time.Now()); err != nil {
		return fmt.Errorf("writing the kubelet client certificate: %w", err)
	}
	client, err := newClient(cfg.hostPath(cfg.Kubeconfig), cfg.HostRoot)
	if err != nil {
		return err
	}
	r.client = client
	if cfg.KubeletPort > 0 {
		srv, err := r.serveKubeletPort()
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	r.log.Info("Started static pod runner", "node", cfg.NodeName, "manifests", cfg.hostPath(cfg.ManifestDir))

	tick := time.NewTicker(cfg.PollInterval)
	defer tick.Stop()
	var lastAPI time.Time
	for {
		r.syncManifests()
		r.supervise()
		r.probeAll(ctx)
		if time.Since(lastAPI) >= time.Second {
			// The API server may be one of our own static pods and not be up yet: processes keep running
			// and the next pass tries again.
			if err := r.syncAPI(ctx); err != nil && ctx.Err() == nil {
				r.log.V(1).Info("Could not sync with the API server yet", "err", err.Error())
			}
			lastAPI = time.Now()
		}
		select {
		case <-ctx.Done():
			r.stopAll()
			r.log.Info("Stopped static pod runner", "node", cfg.NodeName)
			return nil
		case <-tick.C:
		}
	}
}

// syncManifests makes the set of containers follow the manifests folder: new files start, removed files
// stop, changed files restart as a new pod.
func (r *Runner) syncManifests() {
	dir := r.cfg.hostPath(r.cfg.ManifestDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.log.Error(err, "Could not read the manifests folder", "dir", dir)
		return
	}
	found := map[string]*manifest{}
	for _, e := range entries {
		// The kubelet ignores hidden files: editors and atomic writers leave those behind.
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		m, err := readManifest(path)
		if err != nil {
			r.log.Error(err, "Ignored a static pod manifest", "file", path)
			continue
		}
		found[path] = m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for path, c := range r.pods {
		m, ok := found[path]
		if ok && m.hash == c.m.hash {
			continue
		}
		if c.proc != nil {
			r.log.Info("Stopping static pod", "pod", c.m.pod.Name, "reason", map[bool]string{true: "manifest changed", false: "manifest removed"}[ok], "pid", c.proc.pid)
			c.proc.stop(r.cfg.StopGrace)
		}
		_ = os.Remove(PIDFile(r.cfg.HostRoot, c.m.pod.Name))
		delete(r.pods, path)
	}
	for path, m := range found {
		if _, ok := r.pods[path]; !ok {
			r.pods[path] = &container{m: m, seen: time.Now().UTC()}
		}
	}
}

// supervise starts containers that are not running, after the back-off of a crash.
func (r *Runner) supervise() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, c := range r.pods {
		if c.proc != nil && !c.proc.running() {
			ran := c.proc.finished.Sub(c.proc.startedAt)
			r.log.Info("Static pod process exited", "pod", c.m.pod.Name, "pid", c.proc.pid, "exitCode", c.proc.exitCode)
			if ran > time.Minute {
				c.crashes = 0
			}
			c.crashes++
			c.nextStart = now.Add(backoff(c.crashes))
			c.last, c.proc, c.ready = c.proc, nil, false
			c.restartCount++
		}
		if c.proc != nil || now.Before(c.nextStart) {
			continue
		}
		bin, args, err := commandLine(c.m.pod, r.cfg.HostRoot, r.cfg.Commands)
		if err != nil {
			r.log.Error(err, "Cannot start static pod", "pod", c.m.pod.Name)
			c.nextStart = now.Add(backoff(10))
			continue
		}
		p, err := r.sp.start(bin, args, filepath.Join(r.cfg.LogDir, c.m.pod.Name+".log"))
		if err != nil {
			r.log.Error(err, "Cannot start static pod", "pod", c.m.pod.Name)
			c.crashes++
			c.nextStart = now.Add(backoff(c.crashes))
			continue
		}
		c.proc = p
		if err := writePID(r.cfg.HostRoot, c.m.pod.Name, p.pid); err != nil {
			r.log.Error(err, "Could not record the PID of static pod", "pod", c.m.pod.Name)
		}
		r.log.Info("Started static pod", "pod", c.m.pod.Name, "pid", p.pid, "restartCount", c.restartCount)
	}
}

// backoff doubles from 1s up to 20s: shorter than the kubelet's 5 minutes, because a local cluster
// should recover from an edit within a test's patience.
func backoff(crashes int) time.Duration {
	d := time.Second
	for i := 1; i < crashes && d < 20*time.Second; i++ {
		d *= 2
	}
	return min(d, 20*time.Second)
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range r.pods {
		if c.proc != nil {
			wg.Add(1)
			go func(p *process) { defer wg.Done(); p.stop(r.cfg.StopGrace) }(c.proc)
		}
	}
	wg.Wait()
}

// probeAll runs each running container's probe once, concurrently, and records readiness.
func (r *Runner) probeAll(ctx context.Context) {
	r.mu.Lock()
	var todo []*container
	for _, c := range r.pods {
		if c.proc != nil {
			todo = append(todo, c)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := r.probe(ctx, c.m.pod)
			r.mu.Lock()
			if c.proc != nil {
				c.ready = ok
			}
			r.mu.Unlock()
		}()
	}
	wg.Wait()
}

var probeClient = &http.Client{
	Timeout: time.Second,
	// Like the kubelet: an HTTPS probe does not verify the certificate.
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec // probes only ask for a status code
}

// probe reports the container healthy: its readiness probe if it has one, else its startup or liveness
// probe; a container without probes is ready while it runs.
func (r *Runner) probe(ctx context.Context, pod *corev1.Pod) bool {
	c := pod.Spec.Containers[0]
	var p *corev1.Probe
	for _, cand := range []*corev1.Probe{c.ReadinessProbe, c.StartupProbe, c.LivenessProbe} {
		if cand != nil && cand.HTTPGet != nil {
			p = cand
			break
		}
	}
	if p == nil {
		return true
	}
	g := p.HTTPGet
	host := g.Host
	if host == "" {
		host = r.cfg.NodeIP
	}
	port := g.Port.IntValue()
	if g.Port.Type == intstr.String {
		for _, cp := range c.Ports {
			if cp.Name == g.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// snapshot copies what the API sync needs, sorted by pod name, so the sync runs without the lock.
func (r *Runner) snapshot() []containerView {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []containerView
	for _, c := range r.pods {
		v := containerView{m: c.m, seen: c.seen, ready: c.ready, restartCount: c.restartCount, waitingUntil: c.nextStart}
		if c.proc != nil {
			v.pid, v.startedAt = c.proc.pid, c.proc.startedAt
		}
		if c.last != nil {
			v.lastExit, v.lastStarted, v.lastFinished, v.lastPID = c.last.exitCode, c.last.startedAt, c.last.finished, c.last.pid
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].m.pod.Name < out[j].m.pod.Name })
	return out
}

type containerView struct {
	m                         *manifest
	seen                      time.Time
	ready                     bool
	restartCount              int32
	pid                       int
	startedAt                 time.Time
	waitingUntil              time.Time
	lastExit, lastPID         int
	lastStarted, lastFinished time.Time
}
