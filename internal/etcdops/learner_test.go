package etcdops_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/certrollout/certrollout/internal/etcdops"
)

// A learner added with `etcdctl member add --learner` whose etcd never starts stays in the member list
// without a name or client URLs: a membership change nobody finished.
func TestCheckHealthIsDegradedByALearnerThatHasNotStarted(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	cfg := config(cp.Nodes[0])
	cli := rawClient(t, cfg)
	const peer = "https://127.0.0.9:2380"
	// etcd refuses membership changes ("unhealthy cluster") until every member has been connected for
	// a few seconds; another test may just have restarted one.
	var id uint64
	eventually(t, "etcd to accept a learner", func(ctx context.Context) (bool, string) {
		added, err := cli.MemberAddAsLearner(ctx, []string{peer})
		if err != nil {
			return false, err.Error()
		}
		id = added.Member.ID
		return true, ""
	})
	t.Cleanup(func() {
		if _, err := cli.MemberRemove(context.Background(), id); err != nil {
			t.Errorf("removing the learner: %v", err)
		}
		eventually(t, "etcd to be healthy without the learner", func(ctx context.Context) (bool, string) { return healthy(ctx, cfg) })
	})

	h, err := etcdops.CheckHealth(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "etcd learner " + strconv.FormatUint(id, 16) + " (peer " + peer + ") is in the member list but has not started"
	if !h.Degraded || len(h.Reasons) != 1 || h.Reasons[0] != want {
		t.Errorf("degraded %v, reasons %q; want [%q]", h.Degraded, h.Reasons, want)
	}
	if len(h.Members) != 4 {
		t.Fatalf("%d members, want 4", len(h.Members))
	}
	for _, m := range h.Members {
		if isLearner := m.ID == strconv.FormatUint(id, 16); m.Learner != isLearner || m.Healthy == isLearner {
			t.Errorf("member %s (%s): learner %v, healthy %v", m.Name, m.ID, m.Learner, m.Healthy)
		}
	}
}

// rawClient is etcd's client itself, for what etcdops never does (changing the membership).
func rawClient(t *testing.T, cfg etcdops.Config) *clientv3.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", cfg.CAFile)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
