package probe

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go's spdy and port-forward dialers still take these types
)

func TestParsePodAddress(t *testing.T) {
	tests := map[string]struct {
		address      string
		ns, pod      string
		port         int32
		wantErrMatch string
	}{
		"splits namespace, pod and port as Prober.Pod joins them": {address: "team-a/api-7d9f:8443", ns: "team-a", pod: "api-7d9f", port: 8443},
		"refuses a pod IP, which port-forward cannot reach":       {address: "10.0.0.7:8443", wantErrMatch: "not a pod IP"},
		"refuses an empty namespace":                              {address: "/api:8443", wantErrMatch: "<namespace>/<pod>:<port>"},
		"refuses an empty pod":                                    {address: "ns/:8443", wantErrMatch: "<namespace>/<pod>:<port>"},
		"refuses a nested path":                                   {address: "ns/a/b:8443", wantErrMatch: "not a pod IP"},
		"refuses a missing port":                                  {address: "ns/api", wantErrMatch: "<namespace>/<pod>:<port>"},
		"refuses port 0":                                          {address: "ns/api:0", wantErrMatch: "1 to 65535"},
		"refuses a named port (Ports resolves names to numbers)":  {address: "ns/api:https", wantErrMatch: "1 to 65535"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ns, pod, port, err := ParsePodAddress(tt.address)
			if tt.wantErrMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrMatch) {
					t.Fatalf("ParsePodAddress(%q) error = %v, want one containing %q", tt.address, err, tt.wantErrMatch)
				}
				return
			}
			if err != nil || ns != tt.ns || pod != tt.pod || port != tt.port {
				t.Fatalf("ParsePodAddress(%q) = %q, %q, %d, %v; want %q, %q, %d", tt.address, ns, pod, port, err, tt.ns, tt.pod, tt.port)
			}
		})
	}
}

func TestPortForwardDialerErrors(t *testing.T) {
	podsPF := schema.GroupResource{Resource: "pods/portforward"}
	tests := map[string]struct {
		dialErr error
		want    []string
	}{
		"names the missing RBAC verb when the API server forbids the forward": {
			dialErr: apierrors.NewForbidden(podsPF, "api-1", errors.New(`User "dev" cannot create resource "pods/portforward"`)),
			want:    []string{"team-a/api-1", "create on pods/portforward in namespace team-a", "kubectl auth can-i create pods/portforward -n team-a"},
		},
		"recognises forbidden in an upgrade failure's text (SPDY reports no status)": {
			dialErr: errors.New(`unable to upgrade connection: pods "api-1" is forbidden: User "dev" cannot create resource "pods/portforward"`),
			want:    []string{"create on pods/portforward"},
		},
		"says the pod is gone": {
			dialErr: apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "api-1"),
			want:    []string{"the pod does not exist"},
		},
		"says the pod cannot be reached when it is not running": {
			dialErr: errors.New("unable to upgrade connection: pod not running"),
			want:    []string{"could not reach the pod", "pod not running"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d := &PortForwardDialer{dial: func(context.Context, string, string) (httpstream.Connection, error) { return nil, tt.dialErr }}
			_, err := d.DialContext(context.Background(), "tcp", "team-a/api-1:8443")
			if err == nil {
				t.Fatal("DialContext succeeded; want the dial error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !errors.Is(err, tt.dialErr) {
				t.Errorf("error %q does not wrap the dial error", err)
			}
		})
	}
}

func TestPortForwardDialerRefusesOtherNetworksAndAddresses(t *testing.T) {
	dialed := false
	d := &PortForwardDialer{dial: func(context.Context, string, string) (httpstream.Connection, error) {
		dialed = true
		return nil, errors.New("unexpected")
	}}
	if _, err := d.DialContext(context.Background(), "udp", "ns/api:53"); err == nil || !strings.Contains(err.Error(), "tcp only") {
		t.Errorf("udp: error = %v, want tcp only", err)
	}
	if _, err := d.DialContext(context.Background(), "tcp", "10.0.0.7:8443"); err == nil || !strings.Contains(err.Error(), "not a pod IP") {
		t.Errorf("pod IP: error = %v, want not a pod IP", err)
	}
	if dialed {
		t.Error("the API server was dialed for an address the dialer refuses")
	}
}
