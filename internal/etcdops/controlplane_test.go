package etcdops_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/etcdops"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// envControlPlane names a folder holding a control plane started by `hack/cluster up --control-plane`;
// when set, the tests use it instead of starting their own (quick iteration).
const envControlPlane = "CERTROLLOUT_TEST_CONTROL_PLANE"

var shared *localcluster.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx := context.Background()
	if dir := os.Getenv(envControlPlane); dir != "" {
		cp, err := localcluster.AttachControlPlane(ctx, dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "etcdops: %s=%s: %v\n", envControlPlane, dir, err)
			return 1
		}
		shared = cp
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "certrollout-etcdops-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	cp, err := localcluster.StartControlPlane(ctx, localcluster.ControlPlaneOptions{Dir: dir, Nodes: 3, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdops: starting the control plane: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "etcdops: control plane ready in %s (%s)\n", time.Since(start).Round(time.Second), dir)
	shared = cp
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "etcdops: stopping the control plane: %v\n", err)
		code = 1
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "etcdops: logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

func controlPlane(t *testing.T) *localcluster.ControlPlane {
	t.Helper()
	if shared == nil {
		t.Skip("needs the local control plane: run without -short")
	}
	return shared
}

// config reaches etcd through node i's client URL with the node's kubeadm healthcheck-client
// certificate, as the node agent does.
func config(n localcluster.ControlPlaneNode) etcdops.Config {
	pki := filepath.Join(n.Root, "etc", "kubernetes", "pki", "etcd")
	return etcdops.Config{
		Endpoints: []string{"https://" + net.JoinHostPort(n.IP, strconv.Itoa(n.Ports.EtcdClient))},
		CAFile:    filepath.Join(pki, "ca.crt"), CertFile: filepath.Join(pki, "healthcheck-client.crt"),
		KeyFile:     filepath.Join(pki, "healthcheck-client.key"),
		DialTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second,
	}
}

// eventually polls cond until it holds; the timeout is generous (shared cores), never asserted.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last string
	for {
		ok, state := cond(ctx)
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (last: %s)", what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func healthy(ctx context.Context, cfg etcdops.Config) (bool, string) {
	h, err := etcdops.CheckHealth(ctx, cfg)
	if err != nil {
		return false, err.Error()
	}
	return !h.Degraded, fmt.Sprint(h.Reasons)
}

func TestCheckHealthFindsThreeHealthyMembersFollowingOneLeader(t *testing.T) {
	cp := controlPlane(t)
	h, err := etcdops.CheckHealth(context.Background(), config(cp.Nodes[1]))
	if err != nil {
		t.Fatal(err)
	}
	if h.Degraded || len(h.Reasons) != 0 {
		t.Errorf("degraded %v: %q", h.Degraded, h.Reasons)
	}
	if len(h.Members) != 3 {
		t.Fatalf("%d members, want 3: %+v", len(h.Members), h.Members)
	}
	// The members come in etcd's member-list order (by id), as the cluster's own gateway lists them.
	listed, err := cp.EtcdMembers(context.Background(), "cp-1")
	if err != nil {
		t.Fatal(err)
	}
	var names, listedNames []string
	for _, m := range listed {
		listedNames = append(listedNames, m.Name)
	}
	leaders := 0
	for _, m := range h.Members {
		t.Logf("member %+v", m)
		names = append(names, m.Name)
		if !m.Healthy || m.Error != "" || len(m.Alarms) != 0 {
			t.Errorf("member %s: healthy %v, error %q, alarms %v", m.Name, m.Healthy, m.Error, m.Alarms)
		}
		if m.Version == "" || m.DBSize <= 0 || m.Revision <= 0 || m.RaftTerm == 0 || m.RaftIndex == 0 || len(m.ID) == 0 {
			t.Errorf("member %s has no status: %+v", m.Name, m)
		}
		if m.Leader {
			leaders++
			if h.Leader != m.Name {
				t.Errorf("leader %q, but member %s is marked leader", h.Leader, m.Name)
			}
		}
	}
	if fmt.Sprint(names) != fmt.Sprint(listedNames) {
		t.Errorf("members %v, want %v in etcd's order", names, listedNames)
	}
	if sorted := slices.Sorted(slices.Values(names)); fmt.Sprint(sorted) != "[cp-1 cp-2 cp-3]" {
		t.Errorf("members %v, want cp-1, cp-2 and cp-3", sorted)
	}
	if leaders != 1 || h.Leader == "" {
		t.Errorf("%d members marked leader, leader %q", leaders, h.Leader)
	}
}

func TestSnapshotWritesAVerifiedFileAndKeepsTheNewest(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "etcd-backups")
	cfg := config(cp.Nodes[0])
	unrelated := filepath.Join(dir, "etcd-snapshot-by-hand.db")
	t0 := time.Date(2026, 11, 28, 10, 15, 0, 0, time.UTC)

	first, removed, err := etcdops.Snapshot(ctx, cfg, dir, 3, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("removed %v from a new folder", removed)
	}
	if want := filepath.Join(dir, "etcd-snapshot-20261128T101500Z.db"); first.Path != want {
		t.Errorf("path %s, want %s", first.Path, want)
	}
	checkSnapshotFile(t, first)
	if first.Member != "cp-1" || first.Revision <= 0 || !first.TakenAt.Equal(t0) {
		t.Errorf("member %q, revision %d, taken at %s", first.Member, first.Revision, first.TakenAt)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v, %v; want 0700", fi.Mode(), err)
	}
	if err := os.WriteFile(unrelated, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}

	var last etcdops.SnapshotInfo
	for i := 1; i <= 3; i++ {
		last, removed, err = etcdops.Snapshot(ctx, cfg, dir, 3, t0.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshotFile(t, last)
	}
	if len(removed) != 1 || removed[0] != first.Path {
		t.Errorf("the fourth snapshot removed %v, want [%s]", removed, first.Path)
	}
	// A second snapshot in the same second must not replace the first.
	if again, _, err := etcdops.Snapshot(ctx, cfg, dir, 3, last.TakenAt); err == nil {
		t.Errorf("a snapshot with the name of an existing one succeeded: %+v", again)
	}
	if sum := fileSHA256(t, last.Path); sum != last.SHA256 {
		t.Errorf("%s changed: %s, was %s", last.Path, sum, last.SHA256)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"etcd-snapshot-20261128T111500Z.db", "etcd-snapshot-20261128T121500Z.db", "etcd-snapshot-20261128T131500Z.db", "etcd-snapshot-by-hand.db"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("folder holds %v, want %v", names, want)
	}
}

func checkSnapshotFile(t *testing.T, info etcdops.SnapshotInfo) {
	t.Helper()
	data, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", info.Path, fi.Mode())
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != info.SHA256 || int64(len(data)) != info.Size || info.Size == 0 {
		t.Errorf("%s: %d bytes with SHA-256 %x, info says %d bytes %s", info.Path, len(data), sum, info.Size, info.SHA256)
	}
	// A bolt database is whole pages; etcd appends the SHA-256 of it.
	if len(data)%512 != sha256.Size {
		t.Errorf("%s: %d bytes is not pages plus etcd's checksum", info.Path, len(data))
	}
}

// deadEndpoint is a client URL nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "https://" + l.Addr().String()
}

func TestADeadFirstEndpointIsPassedOver(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	cfg := config(cp.Nodes[1])
	cfg.Endpoints = append([]string{deadEndpoint(t)}, cfg.Endpoints...)
	cfg.DialTimeout, cfg.RequestTimeout = time.Second, time.Second
	h, err := etcdops.CheckHealth(ctx, cfg)
	if err != nil || h.Degraded || len(h.Members) != 3 {
		t.Errorf("health through a dead endpoint and cp-2: %+v, %v", h, err)
	}
	info, _, err := etcdops.Snapshot(ctx, cfg, t.TempDir(), 1, time.Now())
	if err != nil || info.Member != "cp-2" {
		t.Errorf("snapshot through a dead endpoint and cp-2: %+v, %v", info, err)
	}
}

func TestSnapshotFromAnUnreachableEndpointFailsAndLeavesNoFile(t *testing.T) {
	cp := controlPlane(t)
	cfg := config(cp.Nodes[0])
	cfg.Endpoints = []string{deadEndpoint(t)}
	cfg.DialTimeout, cfg.RequestTimeout = time.Second, time.Second
	dir := t.TempDir()
	info, _, err := etcdops.Snapshot(context.Background(), cfg, dir, 3, time.Now())
	if err == nil {
		t.Fatalf("a snapshot from %v succeeded: %+v", cfg.Endpoints, info)
	}
	t.Logf("error: %v", err)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the folder holds %v after a failed snapshot", entries)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
