package probe

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
)

func TestPortsComeFromTheAnnotationOrFromTLSNamedContainerPorts(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{
		{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "https", ContainerPort: 8443}}},
		{Ports: []corev1.ContainerPort{{Name: "grpc-tls", ContainerPort: 9443}, {Name: "dns-tls", ContainerPort: 853, Protocol: corev1.ProtocolUDP}}},
	}}
	for name, tc := range map[string]struct {
		annotations map[string]string
		want        string
		wantErr     string
	}{
		"named ports without the annotation":    {want: "8443/https 9443/grpc-tls"},
		"the annotation wins":                   {annotations: map[string]string{api.AnnotationProbe: "8080"}, want: "8080/http"},
		"numbers and names, duplicates dropped": {annotations: map[string]string{api.AnnotationProbe: " 9443, https ,8443,10250"}, want: "8443/https 9443/grpc-tls 10250"},
		"an empty annotation probes nothing":    {annotations: map[string]string{api.AnnotationProbe: ""}, want: ""},
		"a name no container has":               {annotations: map[string]string{api.AnnotationProbe: "https,metrics,70000"}, want: "8443/https", wantErr: `"metrics" names no container port; "70000" is not a port number`},
	} {
		t.Run(name, func(t *testing.T) {
			ports, err := Ports(tc.annotations, spec)
			var got []string
			for _, p := range ports {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("ports %v, want %s", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one saying %s", err, tc.wantErr)
			}
		})
	}
}

func TestServerNameSkipsWildcards(t *testing.T) {
	if got := ServerName([]string{"*.example.com", "api.example.com"}); got != "api.example.com" {
		t.Errorf("got %q", got)
	}
	if got := ServerName([]string{"*.example.com"}); got != "" {
		t.Errorf("got %q for wildcards only", got)
	}
}

// tlsServer serves the certificate httptest makes, recording the SNI it was asked for.
func tlsServer(t *testing.T) (addr string, served certs.Certificate, sni chan string) {
	t.Helper()
	sni = make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.TLS.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sni <- h.ServerName
		return &srv.TLS.Certificates[0], nil
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), certs.FromX509(srv.Certificate()), sni
}

func TestAProbeReadsTheServedLeafAndSendsTheServerName(t *testing.T) {
	addr, want, sni := tlsServer(t)
	got, err := Prober{}.Port(context.Background(), addr, "api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != want.Fingerprint {
		t.Errorf("served %s, want %s", got.Fingerprint, want.Fingerprint)
	}
	if name := <-sni; name != "api.example.com" {
		t.Errorf("SNI %q", name)
	}
}

// mapDialer sends every dial to one address: what a test does to reach a pod IP it cannot route to.
type mapDialer map[string]string

func (m mapDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if to, ok := m[address]; ok {
		address = to
	}
	return (&net.Dialer{}).DialContext(ctx, network, address)
}

func TestAPodIsJudgedByWhatEachOfItsPortsServes(t *testing.T) {
	addr, cert, _ := tlsServer(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	p := Prober{Dialer: mapDialer{
		"10.0.0.7:8443": addr,
		"10.0.0.7:8080": strings.TrimPrefix(plain.URL, "http://"),
		"10.0.0.7:9443": closedAddr,
	}}
	served := p.Pod(context.Background(), "10.0.0.7", []Port{{Number: 8443}, {Number: 8080}, {Number: 9443}}, "")
	if !served[0].OK() || served[0].Leaf.Fingerprint != cert.Fingerprint {
		t.Errorf("8443: %+v", served[0])
	}
	if served[1].OK() || !strings.Contains(served[1].Err.Error(), "does not speak TLS") {
		t.Errorf("8080 (plain HTTP): %+v", served[1])
	}
	if served[2].OK() {
		t.Errorf("9443 (closed): %+v", served[2])
	}
	if v := (Expectation{Leaves: []string{cert.Fingerprint}}).Judge(served); v != Current {
		t.Errorf("verdict %s with the served leaf expected", v)
	}
	if v := (Expectation{Leaves: []string{"renewed"}, Names: cert.DNSNames}).Judge(served); v != Old {
		t.Errorf("verdict %s with another version of the served leaf expected", v)
	}
	if v := (Expectation{Leaves: []string{"renewed"}, Names: []string{cert.Subject}}).Judge(served); v != Old {
		t.Errorf("verdict %s with a leaf of the same subject expected", v)
	}
	if v := (Expectation{Leaves: []string{"other"}, Names: []string{"other.example.com"}}).Judge(served); v != NotProbed {
		t.Errorf("verdict %s for a leaf the set does not track (it says nothing)", v)
	}
	if v := (Expectation{Leaves: []string{cert.Fingerprint}}).Judge(served[1:]); v != NotProbed {
		t.Errorf("verdict %s with no port answering", v)
	}
}
