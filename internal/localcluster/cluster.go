// Package localcluster runs a real Kubernetes control plane on this machine, built from Go modules: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok for nodes and pods, and the cert-manager
// controller for real certificate renewals. It backs `make cluster-up`, `make demo` and every
// integration test, so that what the tests exercise is what a user runs.
package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure a cluster.
type Options struct {
	// Dir holds everything of the cluster: PKI, etcd data, logs, state and kubeconfig.
	Dir string
	// Versions of the components; zero means VersionsFromEnv.
	Versions Versions
	// Binaries to run; nil means EnsureBinaries (build what is missing).
	Binaries *Binaries
	// RepoRoot is the certrollout checkout, to find the component wrappers; empty means search upwards.
	RepoRoot string
	// PodStages is the kwok stage set: "general" (default) behaves like a kubelet (about a second a step,
	// finalizers and grace periods honoured, per-pod delay annotations); "fast" makes pods Ready at once.
	PodStages string
	// Nodes is the number of kwok nodes (default 1); each takes up to 1000 pods.
	Nodes int
	// WithoutCertManager skips the cert-manager CRDs and controller.
	WithoutCertManager bool
	// Detach starts components that outlive the calling process (`make cluster-up`). Otherwise they are
	// killed when the calling process dies, even by SIGKILL or a test timeout.
	Detach bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Timeout bounds the whole start; default 5 minutes.
	Timeout time.Duration
}

// Cluster is a running local cluster.
type Cluster struct {
	Dir        string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface

	state     state
	procs     []*proc
	apiserver *proc // whose log explains a failed wait on the API
	// apiserverCmd is how kube-apiserver was started (binary, then arguments), for RestartAPIServer.
	apiserverCmd []string
	spawner      *spawner
	log          io.Writer
}

// state is what cluster-down and a later cluster-up need to know about a running cluster.
type state struct {
	Owner      int       `json:"owner"`
	Detached   bool      `json:"detached"`
	Server     string    `json:"server"`
	PodStages  string    `json:"podStages"`
	Versions   Versions  `json:"versions"`
	StartedAt  time.Time `json:"startedAt"`
	Components []*proc   `json:"components"`
}

const (
	stateFile      = "cluster.json"
	kubeconfigFile = "kubeconfig"
	// ProbeNamespace holds the Certificate that proves cert-manager issues.
	ProbeNamespace = "cert-manager"
)

// Start brings a cluster up in opts.Dir and returns when the API is ready, every node is Ready and (unless
// WithoutCertManager) a probe Certificate has been issued. If the folder already holds a healthy cluster,
// Start returns it untouched; a broken or stopped one is cleared away first. When any step fails,
// everything started is stopped and the error names the component and shows the end of its log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(opts.Dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	if c, err := attach(opts.Dir); err == nil {
		if err := c.healthy(ctx); err == nil {
			fmt.Fprintf(opts.Log, "A cluster is already running in %s.\n", opts.Dir)
			return c, nil
		}
		fmt.Fprintf(opts.Log, "Stopping the unhealthy cluster left in %s.\n", opts.Dir)
		if err := c.Stop(); err != nil {
			return nil, err
		}
	}

	if opts.Binaries == nil {
		bins, err := EnsureBinaries(ctx, BuildOptions{Versions: opts.Versions, RepoRoot: opts.RepoRoot, Log: opts.Log})
		if err != nil {
			return nil, err
		}
		opts.Binaries = bins
	}
	c := &Cluster{Dir: opts.Dir, Kubeconfig: filepath.Join(opts.Dir, kubeconfigFile), log: opts.Log}
	if !opts.Detach {
		c.spawner = newSpawner()
	}
	if err := c.start(ctx, opts); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return c, nil
}

func (o *Options) complete() error {
	if o.Dir == "" {
		return errors.New("localcluster: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = dir
	if o.Versions == (Versions{}) {
		if o.Versions, err = VersionsFromEnv(); err != nil {
			return err
		}
	}
	switch o.PodStages {
	case "":
		o.PodStages = "general"
	case "general", "fast":
	default:
		return fmt.Errorf("pod stages %q: want general or fast", o.PodStages)
	}
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	for _, sub := range []string{"pki", "etcd", "logs"} {
		if err := os.RemoveAll(filepath.Join(c.Dir, sub)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "logs"), 0o755); err != nil {
		return err
	}
	certs, err := generatePKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return fmt.Errorf("generating PKI: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, cmMetricsPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.state = state{
		Owner: os.Getpid(), Detached: opts.Detach, Server: "https://127.0.0.1:" + strconv.Itoa(apiPort),
		PodStages: opts.PodStages, Versions: opts.Versions, StartedAt: time.Now().UTC(),
	}
	if err := c.writeKubeconfig(certs); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	bins := opts.Binaries

	fmt.Fprintln(c.log, "Starting etcd.")
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := c.run("etcd", bins.Etcd,
		"--name=local", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL,
		// A disposable test cluster: durability is not worth the fsync latency on slow disks.
		"--unsafe-no-fsync=true", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, etcd, "etcd to be healthy", func(ctx context.Context) (bool, error) {
		return httpOK(ctx, http.DefaultClient, etcdURL+"/health"), nil
	}); err != nil {
		return err
	}

	fmt.Fprintln(c.log, "Starting kube-apiserver.")
	c.apiserverCmd = []string{bins.APIServer,
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.Dir, "pki"),
		"--tls-cert-file=" + certs.ServingCert, "--tls-private-key-file=" + certs.ServingKey,
		"--client-ca-file=" + certs.CACert,
		"--service-account-key-file=" + certs.SAPublic,
		"--service-account-signing-key-file=" + certs.ServiceAccountKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// The endpoint reconciler refuses a loopback address for the kubernetes Service and would log an
		// error every few seconds; nothing in a kwok cluster dials that Service.
		"--endpoint-reconciler-type=none",
		// Kubernetes-native certificate sources (issue 18): in 1.34 ClusterTrustBundle and its projected
		// volume source are beta but off by default (served as certificates.k8s.io/v1beta1), and
		// PodCertificateRequest is alpha (certificates.k8s.io/v1alpha1). Both the gate and the API
		// version must be on for the apiserver to register the storage (pkg/registry/certificates/rest).
		"--feature-gates=ClusterTrustBundle=true,ClusterTrustBundleProjection=true,PodCertificateRequest=true",
		"--runtime-config=certificates.k8s.io/v1beta1/clustertrustbundles=true," +
			"certificates.k8s.io/v1alpha1/podcertificaterequests=true",
		"--profiling=false"}
	c.apiserverCmd = append(c.apiserverCmd, apiserverKubeletArgs()...)
	apiserver, err := c.run("kube-apiserver", c.apiserverCmd[0], c.apiserverCmd[1:]...)
	if err != nil {
		return err
	}
	c.apiserver = apiserver
	if err := c.waitFor(ctx, apiserver, "kube-apiserver to be ready", c.apiReady); err != nil {
		return err
	}
	if err := c.createPortForwardCRD(ctx); err != nil {
		return err
	}

	fmt.Fprintln(c.log, "Starting kube-controller-manager, kube-scheduler and kwok.")
	kcm, err := c.run("kube-controller-manager", bins.ControllerManager,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+certs.ServiceAccountKey,
		"--root-ca-file="+certs.CACert,
		"--cluster-signing-cert-file="+certs.CACert, "--cluster-signing-key-file="+certs.CAKey,
		"--use-service-account-credentials",
		// The defaults (20 QPS) would take minutes to create the thousands of pods of a benchmark.
		"--kube-api-qps=500", "--kube-api-burst=1000",
		// No cloud, no pod network: the controllers that need one would only log errors. The node
		// lifecycle controller stays on: it lifts the not-ready taint from kwok nodes.
		"--controllers=*,-nodeipam,-service,-route,-cloud-node-lifecycle")
	if err != nil {
		return err
	}
	if _, err := c.run("kube-scheduler", bins.Scheduler,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0",
		"--kube-api-qps=500", "--kube-api-burst=1000"); err != nil {
		return err
	}
	stages, ok := bins.KwokStages[opts.PodStages]
	if !ok {
		return fmt.Errorf("no kwok stage file for %q", opts.PodStages)
	}
	kwokArgs := append([]string{
		"--kubeconfig=" + c.Kubeconfig, "--manage-all-nodes=true",
		// With a --config that holds only stages, kwok's lease option stays 0 and it renews no node
		// Lease; the node lifecycle controller then marks the node NotReady every grace period and
		// evicts readiness from every pod. 40 s is the kubelet's lease duration.
		"--node-lease-duration-seconds=40",
		"--config=" + stages},
		// kwok's server plays the nodes' kubelet for port-forward (see portforward.go).
		kwokServerArgs(kwokPort, certs.ServingCert, certs.ServingKey)...)
	if _, err := c.run("kwok", bins.Kwok, kwokArgs...); err != nil {
		return err
	}
	if err := c.createNodes(ctx, opts.Nodes); err != nil {
		return err
	}
	if err := c.waitFor(ctx, kcm, "the kwok nodes to be Ready and schedulable", c.nodesReady); err != nil {
		return err
	}
	if err := c.waitFor(ctx, kcm, "the default ServiceAccount", c.defaultServiceAccount); err != nil {
		return err
	}

	if !opts.WithoutCertManager {
		if err := c.startCertManager(ctx, bins, cmMetricsPort); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.log, "Cluster is ready: export KUBECONFIG=%s\n", c.Kubeconfig)
	return nil
}

// run starts a component and records it in the state file at once, so that cluster-down can stop it
// even if this process dies before the cluster is ready.
func (c *Cluster) run(name, bin string, args ...string) (*proc, error) {
	p, err := startProc(c.spawner, c.Dir, name, bin, args...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.state.Components = c.procs
	return p, c.saveState()
}

func (c *Cluster) saveState() error {
	data, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, stateFile))
}

// attach loads the cluster recorded in dir without starting anything.
func attach(dir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, kubeconfigFile), log: io.Discard}
	if err := json.Unmarshal(data, &c.state); err != nil {
		return nil, fmt.Errorf("reading %s: %w", stateFile, err)
	}
	c.procs = c.state.Components
	for _, p := range c.procs {
		p.dir = dir
	}
	if err := c.connect(); err != nil {
		return c, err
	}
	return c, nil
}

// Attach returns the running cluster recorded in dir, or an error if there is none or it is unhealthy.
func Attach(ctx context.Context, dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c, err := attach(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no cluster in %s: run `make cluster-up`", dir)
		}
		return nil, err
	}
	return c, c.healthy(ctx)
}

func (c *Cluster) healthy(ctx context.Context) error {
	for _, p := range c.procs {
		if err := p.exitedErr(); err != nil {
			return err
		}
	}
	ok, err := c.apiReady(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("kube-apiserver is not ready")
	}
	return nil
}

// Stop stops every component, clients first and etcd last, and waits until each is gone. It is safe to
// call more than once and on a cluster some of whose components already died.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if c.spawner != nil {
		c.spawner.close()
		c.spawner = nil
	}
	if len(errs) == 0 {
		if err := os.Remove(filepath.Join(c.Dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		_ = os.RemoveAll(filepath.Join(c.Dir, "etcd"))
	}
	return errors.Join(errs...)
}

// StopDir stops the cluster recorded in dir (`make cluster-down`). Nothing recorded is not an error.
func StopDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c, err := attach(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if c == nil {
		return err
	}
	return c.Stop()
}

func (c *Cluster) writeKubeconfig(certs *pki) error {
	const name = "certrollout-local"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.state.Server, CertificateAuthorityData: certs.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certs.adminCertPEM, ClientKeyData: certs.adminKeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, c.Kubeconfig)
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	cfg.UserAgent = "certrollout-localcluster"
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	c.Dynamic, err = dynamic.NewForConfig(cfg)
	return err
}

// waitFor polls cond until it holds, the context ends, or any component exits. owner is the component
// whose log is shown if the wait times out.
func (c *Cluster) waitFor(ctx context.Context, owner *proc, what string, cond func(context.Context) (bool, error)) error {
	var lastErr error
	for {
		for _, p := range c.procs {
			if err := p.exitedErr(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("timed out waiting for %s", what)
			if lastErr != nil {
				err = fmt.Errorf("%w (last error: %w)", err, lastErr)
			}
			return &ComponentError{Component: owner.Name, Err: err, LogTail: tail(owner.Log, 30)}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) apiReady(ctx context.Context) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
	if err != nil {
		return false, err
	}
	return string(body) == "ok", nil
}

func httpOK(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// freePorts reserves n distinct loopback ports by listening on them at once, then releases them for the
// components. Holding all listeners until the end keeps one call from returning the same port twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RestartAPIServer kills kube-apiserver with SIGKILL, as a crash would, keeps it down for down, then
// starts it again with the same flags and waits until it is ready. Only the process that started the
// cluster can do this (it owns the component's process).
func (c *Cluster) RestartAPIServer(ctx context.Context, down time.Duration) error {
	if c.apiserver == nil || len(c.apiserverCmd) == 0 || c.spawner == nil {
		return errors.New("kube-apiserver was not started by this process: only the cluster's owner can restart it")
	}
	_ = syscall.Kill(-c.apiserver.PID, syscall.SIGKILL)
	if !c.apiserver.waitGone(10 * time.Second) {
		return fmt.Errorf("kube-apiserver (pid %d) did not exit after SIGKILL", c.apiserver.PID)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	p, err := startProc(c.spawner, c.Dir, "kube-apiserver", c.apiserverCmd[0], c.apiserverCmd[1:]...)
	if err != nil {
		return err
	}
	for i, old := range c.procs {
		if old == c.apiserver {
			c.procs[i] = p
		}
	}
	c.apiserver = p
	c.state.Components = c.procs
	if err := c.saveState(); err != nil {
		return err
	}
	return c.waitFor(ctx, p, "kube-apiserver to be ready again", c.apiReady)
}
