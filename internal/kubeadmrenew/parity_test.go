package kubeadmrenew

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/certrollout/certrollout/internal/kubeadmtest"
)

// These tests compare Renew with real kubeadm v1.34 (internal/kubeadmtest). The node's files are made
// with a 48h validity, so they are close to expiry; both renewals use 96h, so the renewed files differ
// visibly from the old ones in check-expiration.

const (
	shortValidity   = 48 * time.Hour
	renewedValidity = 96 * time.Hour
)

func validityLines(d time.Duration) kubeadmtest.NodeOption {
	return kubeadmtest.WithClusterConfiguration("certificateValidityPeriod: " + d.String() + "\n")
}

func TestRenewProducesWhatKubeadmCertsRenewProduces(t *testing.T) {
	n := kubeadmtest.NewNode(t, kubeadmtest.Binary(t), "cp-1", validityLines(shortValidity))
	theirs, ours := n.Copy(t, validityLines(renewedValidity)), n.Copy(t)
	before := time.Now()
	theirs.RenewAll(t)
	res, err := Renew(Options{Dir: ours.Dir, Validity: renewedValidity, BackupDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	t.Run("renews the files kubeadm renews", func(t *testing.T) {
		old, a, b := fingerprints(t, n.Dir), fingerprints(t, theirs.Dir), fingerprints(t, ours.Dir)
		var kubeadms, renewed []string
		for name := range old {
			if a[name] != old[name] {
				kubeadms = append(kubeadms, name)
			}
			if b[name] != old[name] {
				renewed = append(renewed, name)
			}
		}
		slices.Sort(kubeadms)
		slices.Sort(renewed)
		if !slices.Equal(kubeadms, renewed) || !slices.Equal(kubeadms, Names()) {
			t.Errorf("kubeadm renewed %v, we renewed %v; all: %v", kubeadms, renewed, Names())
		}
		if len(res.Renewed) != len(Names()) {
			t.Errorf("result lists %d renewed files, want %d", len(res.Renewed), len(Names()))
		}
	})

	for _, name := range Names() {
		t.Run(name+" has the fields kubeadm gives it", func(t *testing.T) {
			o, a, b := readOnDisk(t, n.Dir, name), readOnDisk(t, theirs.Dir, name), readOnDisk(t, ours.Dir, name)
			sameFields(t, o, a, b)
			// kubeadm's NotBefore is its start less 5 minutes; ours is Now less 5 minutes.
			for who, d := range map[string]*onDisk{"kubeadm's": a, "ours": b} {
				lo, hi := before.Add(-Backdate-time.Second), after.Add(-Backdate+time.Second)
				if d.cert.NotBefore.Before(lo) || d.cert.NotBefore.After(hi) {
					t.Errorf("%s NotBefore %s is not the run's start less %s (%s..%s)", who, d.cert.NotBefore, Backdate, lo, hi)
				}
			}
		})
	}

	t.Run("with kubeadm's default validity and an ECDSA encryption algorithm", func(t *testing.T) {
		theirs, ours := n.Copy(t, kubeadmtest.WithClusterConfiguration("encryptionAlgorithm: ECDSA-P256\n")), n.Copy(t)
		theirs.Run(t, true, "certs", "renew", "apiserver", "--config", theirs.Config)
		theirs.Run(t, true, "certs", "renew", "admin.conf", "--config", theirs.Config)
		if _, err := Renew(Options{Dir: ours.Dir, Names: []string{"apiserver", "admin.conf"}, KeyAlgorithm: "ECDSA-P256", BackupDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"apiserver", "admin.conf"} {
			a, b := readOnDisk(t, theirs.Dir, name), readOnDisk(t, ours.Dir, name)
			sameFields(t, readOnDisk(t, n.Dir, name), a, b)
			if b.keyType != "ECDSA P-256" || b.cert.NotAfter.Sub(b.cert.NotBefore) != DefaultValidity+Backdate {
				t.Errorf("%s: %s key, valid %s; want ECDSA P-256, a year from the start", name, b.keyType, b.cert.NotAfter.Sub(b.cert.NotBefore))
			}
		}
	})

	t.Run("kubeconfigs differ from kubeadm's only in the client certificate and key", func(t *testing.T) {
		for _, name := range Names() {
			o, a, b := readOnDisk(t, n.Dir, name), readOnDisk(t, theirs.Dir, name), readOnDisk(t, ours.Dir, name)
			if o.config == nil {
				continue
			}
			wa, wb, wo := withoutClientCredentials(t, a), withoutClientCredentials(t, b), withoutClientCredentials(t, o)
			if !bytes.Equal(wa, wb) || !bytes.Equal(wa, wo) {
				t.Errorf("%s:\n--- ours\n%s\n--- kubeadm's\n%s\n--- before\n%s", name, wb, wa, wo)
			}
		}
	})

	t.Run("kubeadm check-expiration reads the renewed files as it reads its own", func(t *testing.T) {
		theirTable, ourTable := theirs.CheckExpiration(t), ours.CheckExpiration(t)
		if !strings.Contains(ourTable, "3d") || strings.Contains(ourTable, "MISSING") {
			t.Errorf("check-expiration should show 3d left for the renewed files:\n%s", ourTable)
		}
		for _, name := range Names() {
			want := name + " " + readOnDisk(t, ours.Dir, name).cert.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST")
			if !strings.Contains(squeeze(ourTable), want) {
				t.Errorf("check-expiration lacks %q:\n%s", want, ourTable)
			}
		}
		if a, b := withoutTimes(theirTable), withoutTimes(ourTable); a != b {
			t.Errorf("check-expiration after our renewal:\n%s\n--- after kubeadm's:\n%s", ourTable, theirTable)
		}
	})
}

// sameFields compares what matters of the certificate kubeadm renewed (a) and ours (b), and both with
// the old one (o).
func sameFields(t *testing.T, o, a, b *onDisk) {
	t.Helper()
	ca, cb := a.cert, b.cert
	checks := []struct {
		what   string
		theirs any
		ours   any
	}{
		{"subject", ca.Subject.String(), cb.Subject.String()},
		{"issuer", ca.Issuer.String(), cb.Issuer.String()},
		{"DNS names", ca.DNSNames, cb.DNSNames},
		{"IP addresses", ca.IPAddresses, cb.IPAddresses},
		{"key usage", ca.KeyUsage, cb.KeyUsage},
		{"extended key usage", ca.ExtKeyUsage, cb.ExtKeyUsage},
		{"basic constraints", [2]bool{ca.BasicConstraintsValid, ca.IsCA}, [2]bool{cb.BasicConstraintsValid, cb.IsCA}},
		{"signature algorithm", ca.SignatureAlgorithm, cb.SignatureAlgorithm},
		{"public key", a.keyType, b.keyType},
		{"key reused", sameKey(o.pub, a.pub), sameKey(o.pub, b.pub)},
		{"subject key ID present", len(ca.SubjectKeyId) > 0, len(cb.SubjectKeyId) > 0},
		{"authority key ID", string(ca.AuthorityKeyId), string(cb.AuthorityKeyId)},
		{"matches its key", a.matches(), b.matches()},
		{"mode", [2]any{a.mode, a.keyMode}, [2]any{b.mode, b.keyMode}},
		{"key PEM type", pemType(a.keyData), pemType(b.keyData)},
	}
	for _, c := range checks {
		if !equal(c.theirs, c.ours) {
			t.Errorf("%s: kubeadm's %v, ours %v", c.what, c.theirs, c.ours)
		}
	}
	if d := ca.NotAfter.Sub(ca.NotBefore) - cb.NotAfter.Sub(cb.NotBefore); d < -time.Minute || d > time.Minute {
		t.Errorf("validity: kubeadm's %s, ours %s", ca.NotAfter.Sub(ca.NotBefore), cb.NotAfter.Sub(cb.NotBefore))
	}
	if ca.Subject.String() != o.cert.Subject.String() || sameKey(o.pub, a.pub) {
		t.Errorf("kubeadm kept the subject %s (now %s) and made a new key: the test's premise", o.cert.Subject, ca.Subject)
	}
}

func equal(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func pemType(data []byte) string {
	_, rest, _ := bytes.Cut(data, []byte("-----BEGIN "))
	typ, _, _ := bytes.Cut(rest, []byte("-----"))
	return string(typ)
}

// withoutClientCredentials is the kubeconfig as written without its users' certificates and keys.
func withoutClientCredentials(t *testing.T, d *onDisk) []byte {
	t.Helper()
	cfg := d.config.DeepCopy()
	for _, u := range cfg.AuthInfos {
		u.ClientCertificateData, u.ClientKeyData = nil, nil
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	tableTime = regexp.MustCompile(`[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC`)
	spaces    = regexp.MustCompile(` +`)
)

// withoutTimes is a check-expiration table without its EXPIRES times (the two renewals may straddle a
// minute) and with single spaces.
func withoutTimes(table string) string { return squeeze(tableTime.ReplaceAllString(table, "T")) }

func squeeze(s string) string { return spaces.ReplaceAllString(s, " ") }
