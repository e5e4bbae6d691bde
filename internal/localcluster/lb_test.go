package localcluster

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers each line with its name and the line.
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(name + ":" + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

func ask(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer through the load balancer: %v", err)
	}
	return strings.TrimSpace(got)
}

// Connections take turns among the backends; a backend that refuses is passed over, so clients see no
// outage while another serves.
func TestTheLoadBalancerSpreadsConnectionsAndPassesOverABackendThatIsDown(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	defer b.Close()
	lb, err := NewLoadBalancer([]string{a.Addr().String(), b.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	addr := strings.TrimPrefix(lb.URL(), "https://")
	seen := map[string]bool{}
	for range 4 {
		seen[strings.SplitN(ask(t, addr, "hi"), ":", 2)[0]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("connections went to %v, want both backends", seen)
	}
	a.Close()
	for range 4 {
		if got := ask(t, addr, "hi"); got != "b:hi" {
			t.Errorf("with a down, got %q; want b to answer every connection", got)
		}
	}
}

// An HTTPS backend that fails its health check leaves the rotation and loses its open connections, so a
// client that keeps its connection (as client-go does) reconnects to one that serves.
func TestABackendThatTurnsUnreadyLosesItsConnections(t *testing.T) {
	var ready [2]atomic.Bool
	var servers [2]*httptest.Server
	for i := range servers {
		ready[i].Store(true)
		servers[i] = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/readyz" && !ready[i].Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, i)
		}))
		defer servers[i].Close()
	}
	lb, err := NewLoadBalancer([]string{servers[0].Listener.Addr().String(), servers[1].Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	lb.checkHTTPS("/readyz", 50*time.Millisecond)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test servers
	who := func() string {
		resp, err := hc.Get(lb.URL() + "/who")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	first := who()
	if again := who(); again != first {
		t.Fatalf("a kept connection went to %s then %s", first, again)
	}
	i := map[string]int{"0": 0, "1": 1}[first]
	ready[i].Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for lb.Ready()[i] {
		if time.Now().After(deadline) {
			t.Fatal("the load balancer never saw the backend fail its check")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := who(); got == first {
		t.Errorf("after backend %s turned unready the client still reached it", first)
	}
}
