package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadBalancer is a TCP load balancer on loopback in front of the control plane's API servers, as the
// load balancer of a kubeadm HA cluster's controlPlaneEndpoint: each connection goes to the next backend
// that accepts one, so a client of it sees no outage while one API server restarts and the others serve.
// TLS passes through untouched (every API server's certificate names 127.0.0.1).
type LoadBalancer struct {
	ln       net.Listener
	backends []string
	// ready[i] is whether backends[i] answered its last health check (all true without checks).
	ready []atomic.Bool
	stop  chan struct{}
	next  atomic.Uint64
	wg    sync.WaitGroup
	mu    sync.Mutex
	// conns are the forwarded connections, each with the backend it goes to.
	conns  map[net.Conn]int
	closed bool
}

// NewLoadBalancer listens on 127.0.0.1 (a free port) and forwards to backends (host:port).
func NewLoadBalancer(backends []string) (*LoadBalancer, error) {
	if len(backends) == 0 {
		return nil, errors.New("a load balancer needs at least one backend")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lb := &LoadBalancer{ln: ln, backends: append([]string(nil), backends...), conns: map[net.Conn]int{},
		ready: make([]atomic.Bool, len(backends)), stop: make(chan struct{})}
	for i := range lb.ready {
		lb.ready[i].Store(true)
	}
	lb.wg.Add(1)
	go lb.serve()
	return lb, nil
}

// checkHTTPS asks every backend for path over TLS each interval, as a load balancer's health check does
// (an API server whose etcd is gone still accepts connections; its /readyz says it cannot serve), and
// sends new connections to those that answered 200 — to all, when none did. A backend that fails its
// check loses its open connections (haproxy's on-marked-down shutdown-sessions): clients that keep
// connections open, as client-go does, reconnect to one that serves.
func (lb *LoadBalancer) checkHTTPS(path string, interval time.Duration) {
	hc := &http.Client{Timeout: interval, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a health check of our own backends, as haproxy's "check-ssl verify none"
	}}
	check := func() {
		for i, b := range lb.backends {
			resp, err := hc.Get("https://" + b + path)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				_ = resp.Body.Close()
			}
			if was := lb.ready[i].Swap(ok); was && !ok {
				lb.cut(i)
			}
		}
	}
	check()
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		for {
			select {
			case <-lb.stop:
				return
			case <-time.After(interval):
				check()
			}
		}
	}()
}

// ControlPlaneLoadBalancer is a load balancer in front of every node's API server.
func (cp *ControlPlane) ControlPlaneLoadBalancer() (*LoadBalancer, error) {
	var backends []string
	for _, n := range cp.Nodes {
		backends = append(backends, net.JoinHostPort(n.IP, strconv.Itoa(n.Ports.APIServer)))
	}
	lb, err := NewLoadBalancer(backends)
	if err != nil {
		return nil, err
	}
	lb.checkHTTPS("/readyz", time.Second)
	return lb, nil
}

// Ready says, per backend (in the order given), whether it passed its last health check.
func (lb *LoadBalancer) Ready() []bool {
	out := make([]bool, len(lb.ready))
	for i := range lb.ready {
		out[i] = lb.ready[i].Load()
	}
	return out
}

// URL is https://<address>.
func (lb *LoadBalancer) URL() string { return "https://" + lb.ln.Addr().String() }

// Close stops listening and cuts every forwarded connection.
func (lb *LoadBalancer) Close() error {
	lb.mu.Lock()
	if !lb.closed {
		close(lb.stop)
	}
	lb.closed = true
	for c := range lb.conns {
		_ = c.Close()
	}
	lb.mu.Unlock()
	err := lb.ln.Close()
	lb.wg.Wait()
	return err
}

func (lb *LoadBalancer) serve() {
	defer lb.wg.Done()
	for {
		c, err := lb.ln.Accept()
		if err != nil {
			return
		}
		lb.wg.Add(1)
		go lb.forward(c)
	}
}

// forward connects c to the first backend, from the next in turn, that accepts.
func (lb *LoadBalancer) forward(c net.Conn) {
	defer lb.wg.Done()
	start := int(lb.next.Add(1) % uint64(len(lb.backends))) //nolint:gosec // less than the number of backends
	var b net.Conn
	backend := -1
	for _, onlyReady := range []bool{true, false} {
		for i := range lb.backends {
			j := (start + i) % len(lb.backends)
			if onlyReady && !lb.ready[j].Load() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", lb.backends[j])
			cancel()
			if err == nil {
				b, backend = conn, j
				break
			}
		}
		if b != nil {
			break
		}
	}
	if b == nil || !lb.track(backend, c, b) {
		_ = c.Close()
		if b != nil {
			_ = b.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
	lb.untrack(c, b)
}

func (lb *LoadBalancer) track(backend int, conns ...net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return false
	}
	for _, c := range conns {
		lb.conns[c] = backend
	}
	return true
}

// cut closes the connections forwarded to backend.
func (lb *LoadBalancer) cut(backend int) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for c, b := range lb.conns {
		if b == backend {
			_ = c.Close()
		}
	}
}

func (lb *LoadBalancer) untrack(conns ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range conns {
		delete(lb.conns, c)
		_ = c.Close()
	}
}
