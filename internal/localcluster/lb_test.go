package localcluster

import (
	"bufio"
	"net"
	"strings"
	"testing"
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
