package etcdops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certrollout/certrollout/internal/etcdops"
)

// Stopping a member's etcd the way an operator (or the kubelet) would: its manifest leaves the
// manifests folder and the node's static-pod runner stops the process.
func TestCheckHealthIsDegradedNamingTheMemberWhoseEtcdIsStopped(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	n, err := cp.Node("cp-3")
	if err != nil {
		t.Fatal(err)
	}
	through := config(cp.Nodes[0])
	pid, err := cp.ComponentPID(n.Name, "etcd")
	if err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(t.TempDir(), "etcd.yaml")
	if err := os.Rename(n.ManifestPath("etcd"), aside); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(aside); err == nil {
			if err := os.Rename(aside, n.ManifestPath("etcd")); err != nil {
				t.Fatal(err)
			}
		}
		// Leave the cluster as the other tests expect it.
		eventually(t, "etcd to be healthy again", func(ctx context.Context) (bool, string) { return healthy(ctx, through) })
	})
	eventually(t, "cp-3's etcd to stop", func(context.Context) (bool, string) {
		_, err := cp.ComponentPID(n.Name, "etcd")
		return err != nil, "pid still running"
	})
	t.Logf("cp-3's etcd (pid %d) stopped", pid)

	h, err := etcdops.CheckHealth(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Degraded {
		t.Fatalf("not degraded with cp-3's etcd stopped: %+v", h)
	}
	for _, r := range h.Reasons {
		t.Logf("reason: %s", r)
	}
	if len(h.Reasons) != 1 || !strings.HasPrefix(h.Reasons[0], "etcd member cp-3 (https://127.0.0.3:") || !strings.Contains(h.Reasons[0], "did not answer") {
		t.Errorf("reasons %q, want one saying cp-3 did not answer", h.Reasons)
	}
	for _, m := range h.Members {
		if unhealthy := m.Name == "cp-3"; m.Healthy == unhealthy || (m.Error != "") != unhealthy {
			t.Errorf("member %s: healthy %v, error %q; want only cp-3 unhealthy", m.Name, m.Healthy, m.Error)
		}
	}
	if h.Leader == "" || h.Leader == "cp-3" {
		t.Errorf("leader %q with cp-3 down", h.Leader)
	}

	if err := os.Rename(aside, n.ManifestPath("etcd")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "etcd to be healthy after cp-3's manifest came back", func(ctx context.Context) (bool, string) { return healthy(ctx, through) })
}
