package nodeagent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"
)

// Dialer opens a connection, as net.Dialer.DialContext does. Tests route endpoints through it.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// DefaultProbeTimeout bounds one probe: dial and handshake.
const DefaultProbeTimeout = 2 * time.Second

// Probe connects to endpoint with TLS and returns the fingerprint (internal/certs' format: hex SHA-256 of
// the DER) of the leaf the server presents. The leaf is taken while the handshake runs, so a server that
// aborts it afterwards (etcd, which demands a client certificate the agent does not have) still shows its
// certificate; nothing is verified. dial nil uses net.Dialer.
func Probe(ctx context.Context, dial Dialer, endpoint string, timeout time.Duration) (string, error) {
	if endpoint == "" {
		return "", errors.New("no endpoint")
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := dial(ctx, "tcp", endpoint)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	var served string
	cfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the agent only looks at the certificate served; it sends nothing
		MinVersion:         tls.VersionTLS12,
		// Called as soon as the server's certificate arrived, before the client's is asked for.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				served = hex.EncodeToString(sum[:])
			}
			return nil
		},
	}
	if host, _, err := net.SplitHostPort(endpoint); err == nil && net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	herr := conn.HandshakeContext(ctx)
	if served != "" {
		return served, nil
	}
	if herr != nil {
		return "", fmt.Errorf("TLS handshake with %s: %w", endpoint, herr)
	}
	return "", fmt.Errorf("%s presented no certificate", endpoint)
}
