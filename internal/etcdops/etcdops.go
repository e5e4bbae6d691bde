// Package etcdops is what the node agent does to etcd on a control-plane node before it touches the
// node: the runbook's `etcdctl member list`, `endpoint health --cluster` and `endpoint status --cluster`
// (CheckHealth, which also says whether the cluster is too degraded to start), and `etcdctl snapshot
// save` to a host folder with retention (Snapshot). It speaks etcd's gRPC API through etcd's own Go
// client, with the client certificate kubeadm writes for health checks
// (/etc/kubernetes/pki/etcd/healthcheck-client.crt).
//
// The decision whether a cluster is degraded is a pure function of what was gathered (assess), so the
// rules are tested without a cluster and the reasons are sentences a rollout's status can show verbatim.
package etcdops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config says how to reach etcd.
type Config struct {
	// Endpoints are client URLs (https://10.0.0.1:2379). CheckHealth lists the members through any of
	// them, then probes every member's own client URLs; Snapshot tries them in order.
	Endpoints []string
	// CAFile, CertFile and KeyFile are etcd's CA and a client certificate it accepts; all empty means
	// plain connections.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds connecting to one endpoint; default 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds each request (member list, health read, status, alarm list); default 5 s.
	// It does not bound a snapshot's stream, which the caller's context does.
	RequestTimeout time.Duration
}

const defaultTimeout = 5 * time.Second

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = defaultTimeout
	}
	return c
}

func (c Config) validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("etcdops: no etcd endpoints")
	}
	files := 0
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
		if f != "" {
			files++
		}
	}
	if files != 0 && files != 3 {
		return errors.New("etcdops: CAFile, CertFile and KeyFile go together")
	}
	return nil
}

// dialer connects to etcd endpoints with a Config's timeouts and credentials.
type dialer struct {
	cfg Config
	tls *tls.Config // nil for plain connections
}

// newDialer checks cfg, fills in its defaults and loads its credentials.
func newDialer(cfg Config) (dialer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return dialer{}, err
	}
	d := dialer{cfg: cfg}
	if cfg.CAFile == "" {
		return d, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return dialer{}, fmt.Errorf("etcdops: loading the etcd client certificate: %w", err)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return dialer{}, fmt.Errorf("etcdops: reading the etcd CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return dialer{}, fmt.Errorf("etcdops: no certificate in the etcd CA file %s", cfg.CAFile)
	}
	d.tls = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return d, nil
}

// client connects to the given endpoints only: a client given one endpoint talks to that member alone,
// which is what a per-member check and a snapshot need.
func (d dialer) client(endpoints ...string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: d.cfg.DialTimeout,
		TLS:         d.tls,
		// Errors are returned and end up in reasons; the client's own log would only repeat them.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdops: connecting to %v: %w", endpoints, err)
	}
	return cli, nil
}

// request bounds one request by RequestTimeout.
func (d dialer) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.RequestTimeout)
}

// memberID formats an id as etcdctl prints it.
func memberID(id uint64) string {
	return strconv.FormatUint(id, 16)
}
