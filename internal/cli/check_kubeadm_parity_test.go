package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/kubeadmtest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// These tests run real kubeadm (internal/kubeadmtest) and compare its `certs check-expiration` with
// `check -o kubeadm`, byte for byte.

// sameAsKubeadm runs ours just before and just after kubeadm and compares when the two of ours agree (a
// residual time that ticks over between the runs would otherwise fail the test for nothing).
func sameAsKubeadm(t *testing.T, n *kubeadmtest.Node, ours func(*testing.T) string) {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		before := ours(t)
		theirs := n.CheckExpiration(t)
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
	n := kubeadmtest.NewNode(t, kubeadmtest.Binary(t), "cp-1")
	ours := func(t *testing.T) string { return checkKubeadmText(t, n.Dir) }

	t.Run("as kubeadm init wrote it", func(t *testing.T) { sameAsKubeadm(t, n, ours) })

	t.Run("after kubeadm certs renew all", func(t *testing.T) {
		n.RenewAll(t)
		sameAsKubeadm(t, n, ours)
	})

	t.Run("with an externally managed CA, a missing kubeconfig and a missing etcd certificate", func(t *testing.T) {
		for _, f := range []string{"pki/ca.key", "super-admin.conf", "pki/etcd/peer.crt", "pki/etcd/peer.key"} {
			if err := os.Remove(filepath.Join(n.Dir, f)); err != nil {
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
		writeFixture(t, filepath.Join(n.Dir, "pki", "front-proxy-client.crt"), leaf.PEM())
		out := ours(t)
		if !bytes.Contains([]byte(out), []byte("<invalid>")) {
			t.Errorf("an expired certificate's residual time is kubeadm's <invalid>:\n%s", out)
		}
		sameAsKubeadm(t, n, ours)
	})
}
