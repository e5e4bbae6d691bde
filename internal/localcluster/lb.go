package localcluster

import (
	"context"
	"errors"
	"io"
	"net"
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
	next     atomic.Uint64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
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
	lb := &LoadBalancer{ln: ln, backends: append([]string(nil), backends...), conns: map[net.Conn]struct{}{}}
	lb.wg.Add(1)
	go lb.serve()
	return lb, nil
}

// ControlPlaneLoadBalancer is a load balancer in front of every node's API server.
func (cp *ControlPlane) ControlPlaneLoadBalancer() (*LoadBalancer, error) {
	var backends []string
	for _, n := range cp.Nodes {
		backends = append(backends, net.JoinHostPort(n.IP, strconv.Itoa(n.Ports.APIServer)))
	}
	return NewLoadBalancer(backends)
}

// URL is https://<address>.
func (lb *LoadBalancer) URL() string { return "https://" + lb.ln.Addr().String() }

// Close stops listening and cuts every forwarded connection.
func (lb *LoadBalancer) Close() error {
	lb.mu.Lock()
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
	start := lb.next.Add(1)
	var b net.Conn
	for i := range lb.backends {
		addr := lb.backends[(int(start)+i)%len(lb.backends)]
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			b = conn
			break
		}
	}
	if b == nil || !lb.track(c, b) {
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

func (lb *LoadBalancer) track(conns ...net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return false
	}
	for _, c := range conns {
		lb.conns[c] = struct{}{}
	}
	return true
}

func (lb *LoadBalancer) untrack(conns ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range conns {
		delete(lb.conns, c)
		_ = c.Close()
	}
}
