package nodeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// server is a TLS listener on 127.0.0.1 serving a certificate pair, as a component serves its files.
type server struct {
	t    *testing.T
	ln   net.Listener
	wg   sync.WaitGroup
	done chan struct{}
}

// serve listens with certPEM/keyPEM; requireClient demands a client certificate signed by clientCA, as
// etcd does (the agent has none, so the handshake fails after the server sent its certificate).
func serve(t *testing.T, certPEM, keyPEM []byte, requireClient bool, maxVersion uint16) *server {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
	if requireClient {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = x509.NewCertPool()
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, ln: ln, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	_ = s.ln.Close()
	s.wg.Wait()
}

func TestProbeSeesTheLeafEvenWhenTheServerDemandsAClientCertificate(t *testing.T) {
	ca, caKey := selfSignedCA(t, "etcd-ca")
	leaf, key := issue(t, ca, caKey, "cp-1", nil)
	want := fingerprintOf(t, leaf)
	cases := map[string]struct {
		requireClient bool
		maxVersion    uint16
	}{
		"over TLS 1.3 without client authentication":                 {false, tls.VersionTLS13},
		"over TLS 1.3 from a server that requires a client cert":     {true, tls.VersionTLS13},
		"over TLS 1.2 from a server that aborts without client cert": {true, tls.VersionTLS12},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := serve(t, leaf, key, c.requireClient, c.maxVersion)
			got, err := Probe(context.Background(), nil, s.addr(), 2*time.Second)
			if err != nil || got != want {
				t.Errorf("Probe: %s, %v; want %s", got, err, want)
			}
		})
	}
	t.Run("reports a closed port", func(t *testing.T) {
		s := serve(t, leaf, key, false, 0)
		addr := s.addr()
		s.stop()
		if fp, err := Probe(context.Background(), nil, addr, 2*time.Second); err == nil {
			t.Errorf("closed port served %s", fp)
		}
	})
	t.Run("gives up on a server that never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if fp, err := Probe(context.Background(), nil, ln.Addr().String(), 200*time.Millisecond); err == nil {
			t.Errorf("silent server served %s", fp)
		}
	})
}

// router is the agent's dialer in tests: the endpoints the manifests name go to the test's listeners.
type router struct {
	mu     sync.Mutex
	routes map[string]string
}

func (r *router) set(endpoint, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[endpoint] = addr
}

func (r *router) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	to, ok := r.routes[addr]
	r.mu.Unlock()
	if !ok {
		to = "127.0.0.1:1" // nothing listens: refused
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

func component(st api.NodeCertificatesStatus, name string) api.ControlPlaneComponent {
	for _, c := range st.Components {
		if c.Name == name {
			return c
		}
	}
	return api.ControlPlaneComponent{}
}

// TestServedTruth runs the kubeadm node's apiserver and etcd endpoints as Go TLS listeners serving the
// node's files, renews certificates with kubeadm and sees ServesOld until the listener restarts.
func TestServedTruth(t *testing.T) {
	n := newKubeadmNode(t)
	r := &router{routes: map[string]string{}}
	start := func(endpoint, crt, key string, requireClient bool) *server {
		s := serve(t, n.read(crt), n.read(key), requireClient, 0)
		r.set(endpoint, s.addr())
		return s
	}
	apiserver := start("198.18.0.1:6443", "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/apiserver.key", false)
	start("127.0.0.1:2379", "etc/kubernetes/pki/etcd/server.crt", "etc/kubernetes/pki/etcd/server.key", true)
	start("198.18.0.1:2380", "etc/kubernetes/pki/etcd/peer.crt", "etc/kubernetes/pki/etcd/peer.key", true)
	start("198.18.0.1:10250", "var/lib/kubelet/pki/kubelet.crt", "var/lib/kubelet/pki/kubelet.key", false)

	clock := time.Now().UTC().Truncate(time.Second)
	started := metav1.NewTime(clock.Add(time.Minute)) // after every file was written
	pods := func(context.Context, string) ([]corev1.Pod, error) {
		var out []corev1.Pod
		for _, c := range []string{Etcd, KubeAPIServer, KubeControllerManager} { // no scheduler: NotRunning
			out = append(out, corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: c + "-cp-1", Namespace: "kube-system", Labels: map[string]string{"component": c}},
				Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: c, State: corev1.ContainerState{
					Running: &corev1.ContainerStateRunning{StartedAt: started}}}}},
			})
		}
		return out, nil
	}
	a := &Agent{Node: "cp-1", Scan: ScanOptions{HostRoot: n.root}, KubeletAddress: "198.18.0.1:10250", Pods: pods, Dial: r.dial,
		Now: func() time.Time { return clock }}
	node := &corev1.Node{}
	scan := func() api.NodeCertificatesStatus {
		st := Decide(a.Gather(context.Background(), node, a.prev))
		a.prev = &st
		return st
	}
	clock = clock.Add(2 * time.Minute)
	st := scan()
	want := map[string]string{Etcd: api.ComponentCurrent, KubeAPIServer: api.ComponentCurrent, Kubelet: api.ComponentCurrent,
		KubeControllerManager: api.ComponentUnreachable, KubeScheduler: api.ComponentNotRunning}
	for name, state := range want {
		if c := component(st, name); c.State != state {
			t.Errorf("%s: %s, want %s (%s) %+v", name, c.State, state, c.Message, c.Checks)
		}
	}
	if st.ComponentsServingOld != 0 || len(st.Problems) != 0 {
		t.Fatalf("componentsServingOld %d, problems %+v", st.ComponentsServingOld, st.Problems)
	}
	if etcd := component(st, Etcd); len(etcd.Checks) != 2 || etcd.Checks[0].Served == "" || etcd.Checks[0].Served != etcd.Checks[0].Expected {
		t.Errorf("etcd, which demands client certificates: %+v", etcd.Checks)
	}

	// kubeadm renews the apiserver's serving certificate and its etcd client certificate; the
	// listener still serves the old one, and the apiserver started before the client certificate changed.
	n.renew("apiserver")
	n.renew("apiserver-etcd-client")
	// The files' modification time is real time, behind this test's clock: since is then the previous
	// scan, the earliest the change can have happened.
	renewedAt := clock
	clock = clock.Add(10 * time.Minute)
	st = scan()
	c := component(st, KubeAPIServer)
	if c.State != api.ComponentServesOld || st.ComponentsServingOld != 1 || c.OldSince == nil || !c.OldSince.Time.Equal(renewedAt) {
		t.Fatalf("after renewal: %s oldSince %v (%s), componentsServingOld %d", c.State, c.OldSince, c.Message, st.ComponentsServingOld)
	}
	if c.Checks[0].State != api.ComponentServesOld || c.Checks[1].State != api.ComponentServesOld {
		t.Errorf("checks %+v", c.Checks)
	}
	t.Logf("kube-apiserver: %s", c.Message)
	t.Logf("  %s", c.Checks[1].Message)

	// A restart: the listener serves the new file and the container started after the renewal.
	apiserver.stop()
	start("198.18.0.1:6443", "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/apiserver.key", false)
	started = metav1.NewTime(clock.Add(time.Minute))
	clock = clock.Add(2 * time.Minute)
	st = scan()
	if c := component(st, KubeAPIServer); c.State != api.ComponentCurrent || st.ComponentsServingOld != 0 {
		t.Errorf("after the restart: %s (%s) %+v", c.State, c.Message, c.Checks)
	}
	if f := fileByNameIn(st.Files, "apiserver"); !f.Since.Time.Equal(renewedAt) {
		t.Errorf("apiserver's since %s, want when the agent saw it change, %s", f.Since, renewedAt)
	}
}

func fileByNameIn(files []api.NodeCertificateFile, name string) api.NodeCertificateFile {
	for _, f := range files {
		if f.Name == name {
			return f
		}
	}
	return api.NodeCertificateFile{}
}
