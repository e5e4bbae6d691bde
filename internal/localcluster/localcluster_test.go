package localcluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPublishedReplaces(t *testing.T) {
	gomod := `module k8s.io/kubernetes

require (
	k8s.io/api v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api // staging
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	github.com/x/y v1.0.0 => github.com/x/y v1.0.1
)

replace go.etcd.io/etcd/api/v3 => ../api
`
	got := publishedReplaces(gomod, "v1.33.2")
	want := []string{
		"github.com/x/y v1.0.0 => github.com/x/y v1.0.1",
		"k8s.io/api => k8s.io/api v0.33.2",
		"k8s.io/client-go => k8s.io/client-go v0.33.2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("publishedReplaces:\n got %q\nwant %q", got, want)
	}
}

func TestVersionsFromEnv(t *testing.T) {
	for name, tc := range map[string]struct {
		env     string
		want    string
		wantErr bool
	}{
		"keeps the pinned version when unset":   {env: "", want: DefaultVersions.Kubernetes},
		"takes an override with a leading v":    {env: "v1.33.1", want: "v1.33.1"},
		"adds the v a user left out":            {env: "1.33.1", want: "v1.33.1"},
		"accepts a pre-release":                 {env: "v1.35.0-rc.1", want: "v1.35.0-rc.1"},
		"rejects something that is no version":  {env: "latest", wantErr: true},
		"rejects a version without patch level": {env: "v1.33", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("K8S_VERSION", tc.env)
			v, err := VersionsFromEnv()
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "K8S_VERSION") {
					t.Fatalf("want an error naming K8S_VERSION, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Kubernetes != tc.want {
				t.Fatalf("got %s, want %s", v.Kubernetes, tc.want)
			}
		})
	}
}

func TestConcatYAMLSkipsKustomizationAndSeparatesDocuments(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"b.yaml":             "kind: B",
		"a.yaml":             "kind: A\n",
		"kustomization.yaml": "kind: Kustomization\n",
		"README.md":          "not yaml",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "all.yaml")
	if err := concatYAML(dir, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "---\nkind: A\n---\nkind: B\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := concatYAML(t.TempDir(), out); err == nil {
		t.Fatal("an empty folder should be an error")
	}
}

func TestPidAliveTellsZombiesFromLiveProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !pidAlive(pid) {
		t.Fatal("a running child should be alive")
	}
	_ = cmd.Process.Kill()
	// Not yet reaped: a zombie, which must count as gone.
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if pidAlive(pid) {
		t.Fatal("a killed, unreaped child should not count as alive")
	}
	_ = cmd.Wait()
}

func TestGeneratedPKIChainsAndKeepsKeysPrivate(t *testing.T) {
	dir := t.TempDir()
	p, err := generatePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.CAKey, p.ServingKey, p.AdminKey, p.ServiceAccountKey} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", f, fi.Mode())
		}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.caPEM)
	for file, usage := range map[string]x509.ExtKeyUsage{p.ServingCert: x509.ExtKeyUsageServerAuth, p.AdminCert: x509.ExtKeyUsageClientAuth} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}
		if file == p.ServingCert {
			opts.DNSName = "localhost"
		}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("%s does not chain to the CA: %v", file, err)
		}
	}
}

func testBinaries(t *testing.T) *Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("builds or reuses the cluster binaries")
	}
	v, err := VersionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	bins, err := EnsureBinaries(context.Background(), BuildOptions{Versions: v})
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

func TestFailedStartNamesTheComponentShowsItsLogAndStopsEverything(t *testing.T) {
	bins := *testBinaries(t)
	broken := filepath.Join(t.TempDir(), "kube-apiserver")
	script := "#!/bin/sh\necho 'flag provided but not defined: --imaginary' >&2\nexit 3\n"
	if err := os.WriteFile(broken, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bins.APIServer = broken
	dir := filepath.Join(t.TempDir(), "cluster")
	_, err := Start(context.Background(), Options{Dir: dir, Binaries: &bins, Timeout: time.Minute})
	var ce *ComponentError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ComponentError, got %v", err)
	}
	if ce.Component != "kube-apiserver" || !strings.Contains(ce.LogTail, "--imaginary") {
		t.Fatalf("error should name kube-apiserver and show its log, got: %v", err)
	}
	if left := ProcessesUsing(dir); len(left) > 0 {
		t.Fatalf("processes left running after a failed start: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file should be gone after a failed start, stat: %v", err)
	}
}

// The helper process: started by TestKilledTestRunLeavesNoProcesses, it runs a cluster the way a test
// package does (attached) and then waits to be killed.
const envHelperDir = "CERTROLLOUT_LOCALCLUSTER_HELPER_DIR"

func TestHelperClusterOwner(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("helper process for TestKilledTestRunLeavesNoProcesses")
	}
	if _, err := Start(context.Background(), Options{Dir: dir, WithoutCertManager: true, Log: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "helper-ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Minute)
}

func TestKilledTestRunLeavesNoProcesses(t *testing.T) {
	testBinaries(t) // build outside the helper, whose output nobody reads
	dir := filepath.Join(t.TempDir(), "cluster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperClusterOwner$", "-test.timeout=15m")
	helper.Env = append(os.Environ(), envHelperDir+"="+dir)
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- helper.Wait() }()
	ready := false
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline) && !ready; {
		select {
		case err := <-exited:
			t.Fatalf("helper exited before its cluster was ready: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		_, err := os.Stat(filepath.Join(dir, "helper-ready"))
		ready = err == nil
	}
	if !ready {
		_ = helper.Process.Kill()
		t.Fatalf("helper's cluster not ready in time\n%s", out.String())
	}
	running := ProcessesUsing(dir)
	if len(running) < 5 {
		t.Fatalf("want etcd, apiserver, controller-manager, scheduler and kwok running, found pids %v", running)
	}

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("the helper exited cleanly; it should have died of SIGKILL")
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(ProcessesUsing(dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := ProcessesUsing(dir); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("components outlived their SIGKILLed owner: %v", left)
	}
}
