package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go's spdy and port-forward dialers still take these types
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForwardDialer dials pods through the API server's pods/portforward subresource, as `kubectl
// port-forward` does, so the CLI can probe pods from outside the cluster network. Each dial opens its
// own port-forward connection with one data stream: a probe is a single short handshake, and no local
// listener is left behind.
//
// Addresses are "<namespace>/<pod>:<port>", which is what Prober.Pod builds from the "ip" "ns/pod".
type PortForwardDialer struct {
	// dial opens a port-forward connection to the pod (a seam for tests of the error paths).
	dial func(ctx context.Context, namespace, pod string) (httpstream.Connection, error)
	// requests numbers the streams, as the port-forward protocol asks.
	requests atomic.Int64
}

// NewPortForwardDialer returns a dialer that reaches pods through the API server cfg points at. It
// tries the WebSocket protocol first and falls back to SPDY for API servers that do not offer it, as
// kubectl does.
func NewPortForwardDialer(cfg *rest.Config) (*PortForwardDialer, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	spdyTransport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	d := &PortForwardDialer{}
	d.dial = func(ctx context.Context, namespace, pod string) (httpstream.Connection, error) {
		u := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
		return dialPortForward(ctx, cfg, u, spdy.NewDialer(upgrader, &http.Client{Transport: spdyTransport}, http.MethodPost, u))
	}
	return d, nil
}

// dialPortForward negotiates the port-forward protocol, giving up when ctx ends: the client-go dialers
// take no context, so a dial that outlives ctx is closed when it finally returns.
func dialPortForward(ctx context.Context, cfg *rest.Config, u *url.URL, spdyDialer httpstream.Dialer) (httpstream.Connection, error) {
	dialer := spdyDialer
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, spdyDialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	type result struct {
		conn httpstream.Connection
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, protocol, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		if err == nil && protocol != portforward.PortForwardProtocolV1Name {
			_ = conn.Close()
			err = fmt.Errorf("the API server offered protocol %q, not %q", protocol, portforward.PortForwardProtocolV1Name)
		}
		done <- result{conn, err}
	}()
	select {
	case r := <-done:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// ParsePodAddress splits "<namespace>/<pod>:<port>" into its parts.
func ParsePodAddress(address string) (namespace, pod string, port int32, err error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", "", 0, fmt.Errorf("address %q: want <namespace>/<pod>:<port>", address)
	}
	namespace, pod, ok := strings.Cut(host, "/")
	if !ok || namespace == "" || pod == "" || strings.Contains(pod, "/") {
		return "", "", 0, fmt.Errorf("address %q: want <namespace>/<pod>:<port>, not a pod IP", address)
	}
	n, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || n == 0 {
		return "", "", 0, fmt.Errorf("address %q: port %q is not a number from 1 to 65535", address, portText)
	}
	return namespace, pod, int32(n), nil
}

// DialContext opens a stream to the pod's port. network must be "tcp".
func (d *PortForwardDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("port-forward carries tcp only, not %q", network)
	}
	namespace, pod, port, err := ParsePodAddress(address)
	if err != nil {
		return nil, err
	}
	conn, err := d.dial(ctx, namespace, pod)
	if err != nil {
		return nil, portForwardError(namespace, pod, err)
	}
	c, err := d.openStreams(conn, namespace, pod, port)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// openStreams creates the error and data streams of one forward, as the port-forward protocol defines
// them: the server reports a failure to reach the pod's port on the error stream.
func (d *PortForwardDialer) openStreams(conn httpstream.Connection, namespace, pod string, port int32) (*streamConn, error) {
	id := strconv.FormatInt(d.requests.Add(1), 10)
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: creating the error stream: %w", namespace, pod, err)
	}
	// The client sends nothing on the error stream.
	_ = errStream.Close()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: creating the data stream: %w", namespace, pod, err)
	}
	c := &streamConn{conn: conn, data: data, remote: podAddr(fmt.Sprintf("%s/%s:%d", namespace, pod, port)), failed: make(chan struct{})}
	go c.watchErrors(errStream)
	return c, nil
}

// portForwardError turns a refused port-forward into advice.
func portForwardError(namespace, pod string, err error) error {
	msg := err.Error()
	switch {
	case apierrors.IsForbidden(err) || strings.Contains(strings.ToLower(msg), "forbidden"):
		return fmt.Errorf("port-forward to pod %s/%s was forbidden: probing through the API server needs the RBAC verb "+
			"create on pods/portforward in namespace %s (kubectl auth can-i create pods/portforward -n %s): %w",
			namespace, pod, namespace, namespace, err)
	case apierrors.IsNotFound(err) || strings.Contains(msg, "not found"):
		return fmt.Errorf("port-forward to pod %s/%s: the pod does not exist (any more): %w", namespace, pod, err)
	case strings.Contains(msg, "not running") || strings.Contains(msg, "unable to upgrade connection"):
		return fmt.Errorf("port-forward to pod %s/%s: the API server could not reach the pod (is it running, is its node's kubelet reachable?): %w", namespace, pod, err)
	}
	return fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
}

// podAddr is the net.Addr of a forwarded pod port.
type podAddr string

func (a podAddr) Network() string { return "portforward" }
func (a podAddr) String() string  { return string(a) }

// streamConn is one forwarded port as a net.Conn. Deadlines close it: streams have none of their own.
type streamConn struct {
	conn   httpstream.Connection
	data   httpstream.Stream
	remote podAddr

	once   sync.Once
	failed chan struct{}
	// remoteErr is what the server reported on the error stream; read after failed is closed.
	remoteErr error

	mu    sync.Mutex
	timer *time.Timer
}

// watchErrors reads the error stream: anything on it means the server could not reach the pod's port.
func (c *streamConn) watchErrors(errStream httpstream.Stream) {
	msg, err := io.ReadAll(errStream)
	switch {
	case err != nil:
		c.remoteErr = fmt.Errorf("port-forward to %s: reading the error stream: %w", c.remote, err)
	case len(msg) > 0:
		c.remoteErr = fmt.Errorf("port-forward to %s: %s", c.remote, strings.TrimSpace(string(msg)))
	}
	close(c.failed)
	if c.remoteErr != nil {
		_ = c.Close()
	}
}

// Read returns the server's own reason when the forward broke, rather than a bare EOF.
func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != nil && n == 0 {
		select {
		case <-c.failed:
			if c.remoteErr != nil {
				return 0, c.remoteErr
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) { return c.data.Write(p) }

// Close ends the stream and the connection that carried it.
func (c *streamConn) Close() error {
	c.once.Do(func() {
		_ = c.data.Reset()
		_ = c.conn.Close()
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return podAddr("local") }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline closes the connection at t: a probe that passes its deadline is over.
func (c *streamConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() { _ = c.Close() })
	}
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

var _ Dialer = (*PortForwardDialer)(nil)

// PodIPDialer dials pod IP addresses ("10.0.0.7:8443", what the controller's decisions dial) through
// Forward, which takes "namespace/pod:port" (a PortForwardDialer): Lookup finds the pod at an IP. It lets
// `certrollout plan --probe` decide as the controller does, from a laptop that cannot route to pods.
type PodIPDialer struct {
	Forward Dialer
	Lookup  func(ctx context.Context, ip string) (namespace, pod string, err error)
}

// DialContext implements Dialer.
func (d PodIPDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ip, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ns, pod, err := d.Lookup(ctx, ip)
	if err != nil {
		return nil, err
	}
	return d.Forward.DialContext(ctx, network, ns+"/"+pod+":"+port)
}
