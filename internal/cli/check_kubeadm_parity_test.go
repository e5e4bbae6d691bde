package cli

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
	"time"

	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// These tests run real kubeadm (built from hack/cluster/components/kubeadm) and compare its
// `certs check-expiration` with `check -o kubeadm`, byte for byte. kubeadm reads its kubeconfigs from
// /etc/kubernetes whatever its flags say, so it runs in a private mount namespace where /etc/kubernetes is
// the test's folder: that needs root and unshare(1).

var (
	kubeadmBinOnce sync.Once
	kubeadmBin     string
	kubeadmBinErr  error
)

// realKubeadm is the kubeadm binary, or skips the test where real kubeadm cannot run.
func realKubeadm(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real kubeadm (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("kubeadm's check-expiration reads /etc/kubernetes: the test bind-mounts it in a private mount namespace, which needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not found")
	}
	kubeadmBinOnce.Do(func() {
		bins, err := localcluster.EnsureBinaries(context.Background(), localcluster.BuildOptions{Versions: localcluster.DefaultVersions, Log: io.Discard})
		if err != nil {
			kubeadmBinErr = err
			return
		}
		kubeadmBin = bins.Kubeadm
	})
	if kubeadmBinErr != nil {
		t.Fatalf("building kubeadm: %v", kubeadmBinErr)
	}
	return kubeadmBin
}

// kubeadmNode is a node's /etc/kubernetes made by real kubeadm, and the config that made it.
type kubeadmNode struct {
	kubeadm string
	// dir is the node's /etc/kubernetes.
	dir, config string
}

// newKubeadmNode runs `kubeadm init phase certs all` and `init phase kubeconfig all` into a temporary
// folder, as a real control-plane node named name gets them.
func newKubeadmNode(t *testing.T, kubeadm, name string) *kubeadmNode {
	t.Helper()
	root := t.TempDir()
	n := &kubeadmNode{kubeadm: kubeadm, dir: filepath.Join(root, "etc", "kubernetes"), config: filepath.Join(root, "kubeadm.yaml")}
	// kubeadm refuses a loopback advertise address; 198.18.0.1 is a benchmarking address nothing is sent to.
	writeFixture(t, n.config, []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.1
nodeRegistration:
  name: `+name+`
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
certificatesDir: `+filepath.Join(n.dir, "pki")+`
`))
	if err := os.MkdirAll(filepath.Join(n.dir, "pki"), 0o750); err != nil {
		t.Fatal(err)
	}
	n.run(t, false, "init", "phase", "certs", "all", "--config", n.config)
	n.run(t, false, "init", "phase", "kubeconfig", "all", "--config", n.config, "--kubeconfig-dir", n.dir)
	return n
}

// run runs kubeadm with args; inside, in a private mount namespace whose /etc/kubernetes is n.dir.
func (n *kubeadmNode) run(t *testing.T, inside bool, args ...string) string {
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
		cmd = exec.Command("unshare", append([]string{"-m", "sh", "-c", script, "sh", n.dir, n.kubeadm}, args...)...) //nolint:gosec // the test's kubeadm
	} else {
		cmd = exec.Command(n.kubeadm, args...) //nolint:gosec // the test's kubeadm
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubeadm %v: %v\n%s\n%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

// checkExpiration is `kubeadm certs check-expiration` on the node.
func (n *kubeadmNode) checkExpiration(t *testing.T) string {
	t.Helper()
	return n.run(t, true, "certs", "check-expiration", "--config", n.config)
}

// sameAsKubeadm runs ours just before and just after kubeadm and compares when the two of ours agree (a
// residual time that ticks over between the runs would otherwise fail the test for nothing).
func sameAsKubeadm(t *testing.T, n *kubeadmNode, ours func(*testing.T) string) {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		before := ours(t)
		theirs := n.checkExpiration(t)
		after := ours(t)
		if before != after {
			continue
		}
		if before != theirs {
			t.Fatalf("check -o kubeadm differs from kubeadm certs check-expiration:\n--- ours\n%s--- kubeadm\n%s", visible(before), visible(theirs))
		}
		return
	}
	t.Fatal("our output changed between every pair of runs: cannot compare with kubeadm")
}

// visible marks line ends, so trailing spaces show in a failure (cat -A style).
func visible(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte("$\n")))
}

func checkKubeadmText(t *testing.T, dir string) string {
	t.Helper()
	out, stderr, code := runCheck(t, time.Now(), "--kubeadm="+dir, "-o", "kubeadm")
	// kubeadm exits 0 whatever it prints; check keeps its exit codes (2 for an expired certificate).
	if code == checkExitUnknown {
		t.Fatalf("check --kubeadm %s -o kubeadm: exit %d\n%s", dir, code, stderr)
	}
	return out
}

func TestCheckOutputKubeadmIsByteForByteKubeadms(t *testing.T) {
	kubeadm := realKubeadm(t)
	n := newKubeadmNode(t, kubeadm, "cp-1")
	ours := func(t *testing.T) string { return checkKubeadmText(t, n.dir) }

	t.Run("as kubeadm init wrote it", func(t *testing.T) { sameAsKubeadm(t, n, ours) })

	t.Run("after kubeadm certs renew all", func(t *testing.T) {
		n.run(t, true, "certs", "renew", "all", "--config", n.config)
		sameAsKubeadm(t, n, ours)
	})

	t.Run("with an externally managed CA, a missing kubeconfig and a missing etcd certificate", func(t *testing.T) {
		for _, f := range []string{"pki/ca.key", "super-admin.conf", "pki/etcd/peer.crt", "pki/etcd/peer.key"} {
			if err := os.Remove(filepath.Join(n.dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		out := ours(t)
		for _, want := range []string{"!MISSING! super-admin.conf", "!MISSING! etcd-peer", "yes"} {
			if !bytes.Contains([]byte(out), []byte(want)) {
				t.Errorf("ours lacks %q:\n%s", want, out)
			}
		}
		sameAsKubeadm(t, n, ours)
	})

	t.Run("with an expired certificate", func(t *testing.T) {
		// kubeadm reads front-proxy-client without verifying it: an expired one from another CA will do.
		now := time.Now()
		ca := testgen.CA(t, "front-proxy-ca", testgen.WithValidity(now.AddDate(-2, 0, 0), now.AddDate(8, 0, 0)))
		leaf := testgen.Leaf(t, ca, "front-proxy-client", testgen.WithValidity(now.AddDate(-1, 0, 0), now.AddDate(0, 0, -3)))
		writeFixture(t, filepath.Join(n.dir, "pki", "front-proxy-client.crt"), leaf.PEM())
		out := ours(t)
		if !bytes.Contains([]byte(out), []byte("<invalid>")) {
			t.Errorf("an expired certificate's residual time is kubeadm's <invalid>:\n%s", out)
		}
		sameAsKubeadm(t, n, ours)
	})
}
