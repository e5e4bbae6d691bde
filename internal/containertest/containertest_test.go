package containertest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	Init()
	os.Exit(m.Run())
}

// probeReport is what testdata/probe prints.
type probeReport struct {
	UID              int      `json:"uid"`
	GID              int      `json:"gid"`
	Env              []string `json:"env"`
	RootWritable     bool     `json:"rootWritable"`
	TmpWritable      bool     `json:"tmpWritable"`
	SAWritable       bool     `json:"saWritable"`
	Token            string   `json:"token"`
	RootMountOptions string   `json:"rootMountOptions"`
	RootEntries      []string `json:"rootEntries"`
}

func TestTheEntrypointRunsAsTheImageUserOnAReadOnlyRootWithTheServiceAccountMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs an entrypoint as a container would and needs root (CI and the dev machines run as root)")
	}
	rootfs := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "probe"), "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	sa := t.TempDir()
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte("a-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, err := Command(Spec{
		Rootfs: rootfs,
		Args:   []string{"/probe"},
		Env:    []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=6443"},
		UID:    65532, GID: 65532,
		Mounts: []Mount{{Source: sa, Target: ServiceAccountDir, ReadOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("running the probe: %v\nstderr:\n%s", err, stderr.String())
	}
	var got probeReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("probe output: %v\n%s", err, stdout.String())
	}
	if got.UID != 65532 || got.GID != 65532 {
		t.Errorf("ran as %d:%d, want 65532:65532", got.UID, got.GID)
	}
	if got.RootWritable || !strings.HasPrefix(got.RootMountOptions, "ro") {
		t.Errorf("the root filesystem should be read-only: writable %v, mount options %q", got.RootWritable, got.RootMountOptions)
	}
	if !got.TmpWritable {
		t.Error("/tmp should be writable (a tmpfs, as an emptyDir would be)")
	}
	if got.Token != "a-token" || got.SAWritable {
		t.Errorf("the ServiceAccount folder should hold the token, read-only: token %q, writable %v", got.Token, got.SAWritable)
	}
	if !slices.Equal(got.Env, []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=6443"}) {
		t.Errorf("the environment should be the pod's alone, got %q", got.Env)
	}
	for _, name := range []string{"probe", "proc", "tmp", "dev", "var"} {
		if !slices.Contains(got.RootEntries, name) {
			t.Errorf("/ should hold %s, got %v (chrooted into the image?)", name, got.RootEntries)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "probe-was-here")); err == nil {
		t.Error("the probe wrote into the image's tree")
	}
}

func TestARelativeEntrypointIsRefused(t *testing.T) {
	if _, err := Command(Spec{Rootfs: t.TempDir(), Args: []string{"probe"}}); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("want an error about the absolute path, got %v", err)
	}
}
