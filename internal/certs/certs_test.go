package certs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/testgen"
)

func TestParsePEM(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "api.example.com", testgen.WithDNSNames("api.example.com", "api"), testgen.WithIPs("10.0.0.7"))
	garbageCert := "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
	badBase64 := "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"

	for name, tc := range map[string]struct {
		in           []byte
		wantCerts    int
		wantSkipped  int
		wantErr      error
		wantErrParts []string
	}{
		"reads a leaf followed by its chain": {
			in: testgen.Concat(leaf.PEM(), ca.PEM()), wantCerts: 2,
		},
		"skips the private key of a combined PEM and counts it": {
			in: testgen.Concat(leaf.PEM(), leaf.KeyPEM(t), ca.PEM()), wantCerts: 2, wantSkipped: 1,
		},
		"ignores text around the blocks, as CA bundles with comments have": {
			in: testgen.Concat([]byte("# Root CA\n"), ca.PEM(), []byte("\ntrailing words\n")), wantCerts: 1,
		},
		"says there is no certificate when only a key is present": {
			in: leaf.KeyPEM(t), wantSkipped: 1, wantErr: ErrNoCertificate,
		},
		"says there is no certificate in empty input": {
			in: nil, wantErr: ErrNoCertificate,
		},
		"names the block and line of a certificate that is not valid DER": {
			in: testgen.Concat(ca.PEM(), []byte(garbageCert)), wantErrParts: []string{"PEM block 2 (CERTIFICATE) at line 1", "x509"},
		},
		"does not skip a broken certificate that a valid block follows": {
			in: testgen.Concat([]byte(badBase64), ca.PEM()), wantErrParts: []string{"PEM block 1 (CERTIFICATE) at line 1", "malformed PEM encoding"},
		},
		"names a block that never ends": {
			in: testgen.Concat(ca.PEM(), []byte("-----BEGIN CERTIFICATE-----\nMIIB\n")), wantErrParts: []string{"PEM block 2", "no END line"},
		},
		"names a block whose base64 is broken": {
			in: []byte("\n\n" + badBase64), wantErrParts: []string{"PEM block 1 (CERTIFICATE) at line 3", "malformed PEM encoding"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := ParsePEM(tc.in)
			switch {
			case tc.wantErrParts != nil:
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("want a ParseError, got %v", err)
				}
				for _, part := range tc.wantErrParts {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q should contain %q", err, part)
					}
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want %v, got %v", tc.wantErr, err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if len(b.Certificates) != tc.wantCerts || b.Skipped != tc.wantSkipped {
				t.Fatalf("got %d certificates and %d skipped, want %d and %d", len(b.Certificates), b.Skipped, tc.wantCerts, tc.wantSkipped)
			}
		})
	}
}

func TestCertificateFacts(t *testing.T) {
	ca := testgen.CA(t, "root")
	nb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	leaf := testgen.Leaf(t, ca, "api.example.com", testgen.WithValidity(nb, na),
		testgen.WithDNSNames("api.example.com"), testgen.WithIPs("10.0.0.7"))
	b, err := ParsePEM(testgen.Concat(leaf.PEM(), ca.PEM()))
	if err != nil {
		t.Fatal(err)
	}
	got := b.Leaf()
	sum := sha256.Sum256(leaf.DER)
	if got.Fingerprint != hex.EncodeToString(sum[:]) {
		t.Errorf("fingerprint %s is not the SHA-256 of the DER", got.Fingerprint)
	}
	if got.Subject != "CN=api.example.com" || got.Issuer != "CN=root" {
		t.Errorf("subject %q issuer %q", got.Subject, got.Issuer)
	}
	if got.SerialNumber != leaf.X509.SerialNumber.Text(16) {
		t.Errorf("serial %s", got.SerialNumber)
	}
	if !got.NotBefore.Equal(nb) || !got.NotAfter.Equal(na) {
		t.Errorf("validity %s – %s", got.NotBefore, got.NotAfter)
	}
	if got.IsCA || got.SelfSigned() {
		t.Error("the leaf is neither a CA nor self-signed")
	}
	if len(got.DNSNames) != 1 || len(got.IPAddresses) != 1 || got.IPAddresses[0] != "10.0.0.7" {
		t.Errorf("SANs %v %v", got.DNSNames, got.IPAddresses)
	}
	root := b.Certificates[1]
	if !root.IsCA || !root.SelfSigned() {
		t.Error("the root is a self-signed CA")
	}
	if got.AuthorityKeyID == "" || got.AuthorityKeyID != root.SubjectKeyID {
		t.Errorf("the leaf's authority key ID %q should be the root's subject key ID %q", got.AuthorityKeyID, root.SubjectKeyID)
	}
	if first := b.FirstToExpire(); first == nil || !first.NotAfter.Equal(na) {
		t.Errorf("the first to expire should be the leaf (notAfter %s), got %+v", na, first)
	}
}

func TestLeafIsTheFirstNonCA(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "svc")
	b, err := ParsePEM(testgen.Concat(ca.PEM(), leaf.PEM()))
	if err != nil {
		t.Fatal(err)
	}
	if b.Leaf().Subject != "CN=svc" {
		t.Fatalf("leaf %s", b.Leaf().Subject)
	}
	onlyCA, _ := ParsePEM(ca.PEM())
	if onlyCA.Leaf().Subject != "CN=root" {
		t.Fatal("a CA-only bundle's leaf is its first certificate")
	}
	if (&Bundle{}).Leaf() != nil {
		t.Fatal("an empty bundle has no leaf")
	}
}

func TestFingerprintsAreSortedAndUnique(t *testing.T) {
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "svc")
	b, err := ParsePEM(testgen.Concat(leaf.PEM(), ca.PEM(), leaf.PEM()))
	if err != nil {
		t.Fatal(err)
	}
	fps := b.Fingerprints()
	if len(fps) != 2 || fps[0] > fps[1] {
		t.Fatalf("want two sorted fingerprints, got %v", fps)
	}
}

func TestParseReadsDERAndRejectsOtherBinary(t *testing.T) {
	ca := testgen.CA(t, "root")
	b, err := Parse(ca.DER)
	if err != nil || len(b.Certificates) != 1 {
		t.Fatalf("DER: %v %+v", err, b)
	}
	if _, err := Parse([]byte{0x00, 0x01, 0x02}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("random bytes: want ErrNoCertificate, got %v", err)
	}
	if _, err := Parse([]byte{0x30, 0x03, 0x01, 0x01, 0xff}); err == nil || errors.Is(err, ErrNoCertificate) {
		t.Fatalf("a truncated DER sequence: want a parse error, got %v", err)
	}
	if !HasPEMCertificate(ca.PEM()) || HasPEMCertificate(ca.KeyPEM(t)) {
		t.Fatal("HasPEMCertificate")
	}
}

func FuzzParse(f *testing.F) {
	ca := testgen.CA(f, "root")
	leaf := testgen.Leaf(f, ca, "svc")
	f.Add(testgen.Concat(leaf.PEM(), leaf.KeyPEM(f), ca.PEM()))
	f.Add(ca.DER)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN "))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		if len(b.Certificates) == 0 {
			t.Fatal("success with no certificate")
		}
		for _, c := range b.Certificates {
			if len(c.Fingerprint) != 64 {
				t.Fatalf("fingerprint %q", c.Fingerprint)
			}
		}
	})
}

func TestEachBlockReportsTheLineEachBlockStartsOn(t *testing.T) {
	data := []byte("# bundle\n\n-----BEGIN A-----\nAAAA\n-----END A-----\ntext\n-----BEGIN B-----\nAAAA\n-----END B-----\n-----BEGIN C-----\nAAAA\n-----END C-----")
	var got []int
	if err := EachBlock(data, func(_ *pem.Block, _, line int) error { got = append(got, line); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 7, 10}; !slices.Equal(got, want) {
		t.Fatalf("lines %v, want %v", got, want)
	}
}

// BenchmarkEachBlockManyTinyBlocks walks 1 MiB of tiny PEM blocks, what a hostile Secret may hold: the
// walk must stay linear in the input (it runs in the informer's goroutine for every write).
func BenchmarkEachBlockManyTinyBlocks(b *testing.B) {
	block := []byte("-----BEGIN X-----\nAAAA\n-----END X-----\n")
	data := bytes.Repeat(block, (1<<20)/len(block))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		n := 0
		if err := EachBlock(data, func(*pem.Block, int, int) error { n++; return nil }); err != nil || n != (1<<20)/len(block) {
			b.Fatalf("%d blocks, %v", n, err)
		}
	}
}

func TestKeyWithoutCertificateReadsOnlyHeaders(t *testing.T) {
	key := func(label string) string {
		return "-----BEGIN " + label + "-----\nMHcCAQEEIA==\n-----END " + label + "-----\n"
	}
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	for name, tc := range map[string]struct {
		data string
		want bool
	}{
		"a PKCS #8 key alone is a key without a certificate":    {key("PRIVATE KEY"), true},
		"so is a PKCS #1 RSA key":                               {key("RSA PRIVATE KEY"), true},
		"so is an SEC 1 EC key after a comment":                 {"# the portal's key\n" + key("EC PRIVATE KEY"), true},
		"so is an encrypted key":                                {key("ENCRYPTED PRIVATE KEY"), true},
		"a key with its certificate is a pair, not a finding":   {key("PRIVATE KEY") + cert, false},
		"a public key is no private key":                        {key("PUBLIC KEY"), false},
		"text that only mentions a private key is no PEM key":   {"put your PRIVATE KEY here", false},
		"nothing at all is nothing":                             {"", false},
		"a BEGIN line with no label is not a key":               {"-----BEGIN -----\n", false},
		"a certificate request is neither":                      {key("CERTIFICATE REQUEST"), false},
		"a label cut short by the end of the data is not a key": {"-----BEGIN PRIVATE KE", false},
		"a key in the second block still counts, after a param": {key("EC PARAMETERS") + key("EC PRIVATE KEY"), true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := KeyWithoutCertificate([]byte(tc.data)); got != tc.want {
				t.Errorf("KeyWithoutCertificate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNamedLikeKey(t *testing.T) {
	for name, want := range map[string]bool{
		"tls.key": true, "ca.key": true, "etcd/peer.key": true, "privkey.pem": true, "tls-key.pem": true,
		"server_key.pem": true, "KEY.PEM": true, "key": true,
		"tls.crt": false, "ca.pem": false, "server.pem": false, "cert.pem": false, "fullchain.pem": false,
		"key.pem.bak/tls.crt": false, "keys/server.pem": false,
	} {
		if got := NamedLikeKey(name); got != want {
			t.Errorf("NamedLikeKey(%q) = %v, want %v", name, got, want)
		}
	}
}
