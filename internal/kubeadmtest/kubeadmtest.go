// Package kubeadmtest runs real kubeadm (built from hack/cluster/components/kubeadm by localcluster) for
// tests: it makes a node's /etc/kubernetes with `kubeadm init phase certs|kubeconfig all` and runs kubeadm
// commands against it. kubeadm reads its kubeconfigs from /etc/kubernetes whatever its flags say, so
// commands that read them run in a private mount namespace where /etc/kubernetes is the node's folder:
// that needs root and unshare(1), and a test that cannot have them is skipped with the reason. Tests
// import it; nothing that ships does.
package kubeadmtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/certrollout/certrollout/internal/localcluster"
)

var (
	binOnce sync.Once
	bin     string
	binErr  error
)

// Binary is the kubeadm binary, or skips the test where real kubeadm cannot run (-short, not root, no
// unshare). The first call in a process may build kubeadm (minutes); the result is cached on disk.
func Binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real kubeadm (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("kubeadm reads /etc/kubernetes: the test bind-mounts it in a private mount namespace, which needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not found")
	}
	binOnce.Do(func() {
		bins, err := localcluster.EnsureBinaries(context.Background(), localcluster.BuildOptions{Versions: localcluster.DefaultVersions, Log: io.Discard})
		if err != nil {
			binErr = err
			return
		}
		bin = bins.Kubeadm
	})
	if binErr != nil {
		t.Fatalf("building kubeadm: %v", binErr)
	}
	return bin
}

// Node is a node's /etc/kubernetes made by real kubeadm, and the config that made it.
type Node struct {
	Kubeadm string
	// Dir is the node's /etc/kubernetes.
	Dir string
	// Config is the kubeadm config file; its certificatesDir is Dir/pki.
	Config string

	name    string
	cluster string
}

// NodeOption changes the kubeadm config a Node is made with.
type NodeOption func(*Node)

// WithClusterConfiguration sets the lines (YAML, unindented, each ending in a newline) added to the
// ClusterConfiguration, e.g. "certificateValidityPeriod: 48h0m0s\n"; the last one given wins.
func WithClusterConfiguration(lines string) NodeOption {
	return func(n *Node) { n.cluster = lines }
}

// NewNode runs `kubeadm init phase certs all` and `init phase kubeconfig all` into a temporary folder,
// as a real control-plane node named name gets them.
func NewNode(t *testing.T, kubeadm, name string, opts ...NodeOption) *Node {
	t.Helper()
	n := &Node{Kubeadm: kubeadm, name: name}
	for _, o := range opts {
		o(n)
	}
	n.place(t, t.TempDir())
	if err := os.MkdirAll(filepath.Join(n.Dir, "pki"), 0o750); err != nil {
		t.Fatal(err)
	}
	n.Run(t, false, "init", "phase", "certs", "all", "--config", n.Config)
	n.Run(t, false, "init", "phase", "kubeconfig", "all", "--config", n.Config, "--kubeconfig-dir", n.Dir)
	return n
}

// place sets the node's folder under root and writes its config there.
func (n *Node) place(t *testing.T, root string) {
	t.Helper()
	n.Dir, n.Config = filepath.Join(root, "etc", "kubernetes"), filepath.Join(root, "kubeadm.yaml")
	// kubeadm refuses a loopback advertise address; 198.18.0.1 is a benchmarking address nothing is sent to.
	config := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.1
nodeRegistration:
  name: ` + n.name + `
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
certificatesDir: ` + filepath.Join(n.Dir, "pki") + "\n" + n.cluster
	if err := os.WriteFile(n.Config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Copy is another node with a copy of n's folder (modes kept) and a config that points at it, made with
// n's options and then opts.
func (n *Node) Copy(t *testing.T, opts ...NodeOption) *Node {
	t.Helper()
	c := &Node{Kubeadm: n.Kubeadm, name: n.name, cluster: n.cluster}
	for _, o := range opts {
		o(c)
	}
	c.place(t, t.TempDir())
	if err := os.CopyFS(c.Dir, os.DirFS(n.Dir)); err != nil {
		t.Fatal(err)
	}
	// CopyFS makes every file 0666 or 0777 less the umask, whatever the source; kubeadm's keys are 0600.
	err := filepath.WalkDir(n.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(n.Dir, path)
		if err != nil {
			return err
		}
		return os.Chmod(filepath.Join(c.Dir, rel), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Run runs kubeadm with args; inside, in a private mount namespace whose /etc/kubernetes is n.Dir.
func (n *Node) Run(t *testing.T, inside bool, args ...string) string {
	t.Helper()
	var cmd *exec.Cmd
	if inside {
		if _, err := os.Stat("/etc/kubernetes"); errors.Is(err, fs.ErrNotExist) {
			// A mount point for the bind mount; empty, and left for the next run.
			if err := os.MkdirAll("/etc/kubernetes", 0o755); err != nil { //nolint:gosec // kubeadm's own folder
				t.Fatal(err)
			}
		}
		script := `mount --make-rprivate / && mount --bind "$1" /etc/kubernetes && shift && exec "$@"`
		cmd = exec.Command("unshare", append([]string{"-m", "sh", "-c", script, "sh", n.Dir, n.Kubeadm}, args...)...) //nolint:gosec // the test's kubeadm
	} else {
		cmd = exec.Command(n.Kubeadm, args...) //nolint:gosec // the test's kubeadm
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubeadm %v: %v\n%s\n%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

// CheckExpiration is `kubeadm certs check-expiration` on the node.
func (n *Node) CheckExpiration(t *testing.T) string {
	t.Helper()
	return n.Run(t, true, "certs", "check-expiration", "--config", n.Config)
}

// RenewAll is `kubeadm certs renew all` on the node; it returns kubeadm's output.
func (n *Node) RenewAll(t *testing.T) string {
	t.Helper()
	return n.Run(t, true, "certs", "renew", "all", "--config", n.Config)
}
