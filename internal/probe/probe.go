// Package probe finds out which certificate a pod actually serves: it connects to the pod's TLS ports,
// completes a handshake, and records the leaf the pod presented. Where a probe exists, staleness is a
// fact rather than an inference from start times: a pod that hot-reloaded its certificate serves the new
// one and needs no restart, and a pod that was restarted but still serves the old one is a failed
// rollout.
//
// A workload declares its TLS ports with the annotation certrollout.io/probe ("8443,https": port numbers
// or container port names); without it, container ports named "https" or with "tls" in their name are
// probed. The probe sends no data beyond the handshake and never trusts what it receives: it reads the
// leaf and hangs up.
//
// Dialing goes through a Dialer: the controller dials pod IPs directly, the CLI dials through the API
// server's port-forward (PortForwardDialer), and tests map a pod's address to a listener of their own.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
)

// DefaultTimeout bounds one probe: the dial and the handshake together. A pod that does not answer in
// this time is reported as not probed; it never holds a reconcile longer.
const DefaultTimeout = 3 * time.Second

// MaxPorts bounds the ports probed per pod, whatever an annotation lists.
const MaxPorts = 8

// Dialer opens a connection to a pod's address ("10.0.0.7:8443"). *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Port is one TLS port of a pod.
type Port struct {
	Number int32
	// Name is the container port's name, if it has one.
	Name string
}

func (p Port) String() string {
	if p.Name != "" {
		return fmt.Sprintf("%d/%s", p.Number, p.Name)
	}
	return strconv.Itoa(int(p.Number))
}

// Ports are the TLS ports to probe on the pods of a workload with these annotations and this pod spec.
// The annotation wins when present; its entries are port numbers or names of the containers' ports, and
// an entry that is neither is an error naming it (the caller reports it on the workload). Without the
// annotation, container ports named "https" or containing "tls" are the TLS ports. No ports: no probe.
func Ports(annotations map[string]string, spec *corev1.PodSpec) ([]Port, error) {
	named := map[string]int32{}
	var auto []Port
	if spec != nil {
		for _, c := range spec.Containers {
			for _, p := range c.Ports {
				if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
					continue
				}
				if p.Name != "" {
					named[p.Name] = p.ContainerPort
				}
				if n := strings.ToLower(p.Name); n == "https" || strings.Contains(n, "tls") {
					auto = append(auto, Port{Number: p.ContainerPort, Name: p.Name})
				}
			}
		}
	}
	value, declared := annotations[api.AnnotationProbe]
	if !declared {
		return limit(auto), nil
	}
	var out []Port
	var bad []string
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if isDigits(entry) {
			n, err := strconv.ParseUint(entry, 10, 16)
			if err != nil || n == 0 {
				bad = append(bad, fmt.Sprintf("%q is not a port number (1-65535)", entry))
				continue
			}
			name := ""
			for k, v := range named {
				if v == int32(n) {
					name = k
				}
			}
			out = append(out, Port{Number: int32(n), Name: name})
			continue
		}
		if n, ok := named[entry]; ok {
			out = append(out, Port{Number: n, Name: entry})
			continue
		}
		bad = append(bad, fmt.Sprintf("%q names no container port", entry))
	}
	if len(bad) > 0 {
		return limit(out), fmt.Errorf("annotation %s=%q: %s", api.AnnotationProbe, value, strings.Join(bad, "; "))
	}
	return limit(out), nil
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

// limit sorts the ports, drops duplicates and keeps at most MaxPorts.
func limit(ports []Port) []Port {
	slices.SortFunc(ports, func(a, b Port) int { return int(a.Number - b.Number) })
	ports = slices.CompactFunc(ports, func(a, b Port) bool { return a.Number == b.Number })
	if len(ports) > MaxPorts {
		ports = ports[:MaxPorts]
	}
	return ports
}

// ServerName picks the SNI name to send: the first DNS name of the certificate the pods should serve,
// skipping wildcards (a wildcard is no host name). Empty when there is none; the handshake then carries
// no SNI and the server presents its default certificate.
func ServerName(dnsNames []string) string {
	for _, n := range dnsNames {
		if n != "" && !strings.HasPrefix(n, "*") {
			return n
		}
	}
	return ""
}

// Served is what one port of one pod presented.
type Served struct {
	Port Port
	// Leaf is the certificate the pod presented first; zero when Err is set.
	Leaf certs.Certificate
	// Err says why the port could not be probed (refused, timed out, not TLS).
	Err error
}

// OK reports whether the port was probed.
func (s Served) OK() bool { return s.Err == nil && s.Leaf.Fingerprint != "" }

// Prober probes pods. Its zero value dials with a net.Dialer and DefaultTimeout.
type Prober struct {
	Dialer  Dialer
	Timeout time.Duration
}

// Port probes one port at address ("10.0.0.7:8443"), sending serverName as SNI when not empty.
func (p Prober) Port(ctx context.Context, address, serverName string) (certs.Certificate, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d Dialer = &net.Dialer{}
	if p.Dialer != nil {
		d = p.Dialer
	}
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return certs.Certificate{}, err
	}
	defer func() { _ = raw.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(deadline)
	}
	// The probe only reads what the pod presents; it trusts nothing and sends nothing after the
	// handshake. Verifying the chain would hide exactly the pods this is for: those serving a
	// certificate that has expired or that a rotated CA no longer signs.
	conn := tls.Client(raw, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // reads the served leaf; trusts nothing
	if err := conn.HandshakeContext(ctx); err != nil {
		return certs.Certificate{}, handshakeError(err)
	}
	defer func() { _ = conn.Close() }()
	peer := conn.ConnectionState().PeerCertificates
	if len(peer) == 0 {
		return certs.Certificate{}, errors.New("the TLS handshake presented no certificate")
	}
	return certs.FromX509(peer[0]), nil
}

// handshakeError makes a failed handshake readable: a plain-text port answers with bytes that are not
// a TLS record.
func handshakeError(err error) error {
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) {
		return errors.New("the port does not speak TLS")
	}
	return fmt.Errorf("TLS handshake: %w", err)
}

// Pod probes every port of the pod at ip, in parallel, and returns one Served per port in ports' order.
func (p Prober) Pod(ctx context.Context, ip string, ports []Port, serverName string) []Served {
	out := make([]Served, len(ports))
	var wg sync.WaitGroup
	for i, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leaf, err := p.Port(ctx, net.JoinHostPort(ip, strconv.Itoa(int(port.Number))), serverName)
			out[i] = Served{Port: port, Leaf: leaf, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// Verdict is what a pod's probes say about the certificates it should serve.
type Verdict string

// Verdicts.
const (
	// NotProbed: no port answered; staleness falls back to start times.
	NotProbed Verdict = "NotProbed"
	// Current: every port that answered serves one of the expected certificates.
	Current Verdict = "Current"
	// Old: some port serves a certificate that is not one of the expected ones.
	Old Verdict = "Old"
)

// Expectation is what a pod should serve: the leaf certificates of the workload's current set.
type Expectation struct {
	// Leaves are the fingerprints of the set's leaf (non-CA) certificates.
	Leaves []string
	// Names are their DNS names and subjects. A served leaf that is none of Leaves but shares one of
	// these is another version of them: an old one. A served leaf that shares none is a certificate
	// certrollout does not track (one the process made, a sidecar's): it says nothing either way.
	Names []string
}

// Judge compares what a pod served with what it should serve: Old when a port serves another version of
// an expected leaf, Current when every port that serves one of them serves an expected one, NotProbed
// when no port answered with a leaf that concerns the set.
func (e Expectation) Judge(served []Served) Verdict {
	v := NotProbed
	for _, s := range served {
		switch {
		case !s.OK():
		case slices.Contains(e.Leaves, s.Leaf.Fingerprint):
			if v == NotProbed {
				v = Current
			}
		case e.related(s.Leaf):
			return Old
		}
	}
	return v
}

// related reports whether leaf names one of the expected names.
func (e Expectation) related(leaf certs.Certificate) bool {
	if slices.Contains(e.Names, leaf.Subject) {
		return true
	}
	return slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(e.Names, n) })
}
