package controlplane

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// Nodes 2 and 3 hold node 1's authorities (what join --control-plane copies) but leaves of their own.
func TestNodesShareTheAuthoritiesButNotTheLeaves(t *testing.T) {
	cp := controlPlane(t)
	read := func(node, file string) []byte {
		n, err := cp.Node(node)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(n.Root, "etc", "kubernetes", "pki", file))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, f := range []string{"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt", "sa.pub"} {
		if string(read("cp-1", f)) != string(read("cp-2", f)) || string(read("cp-1", f)) != string(read("cp-3", f)) {
			t.Errorf("%s differs between nodes", f)
		}
	}
	for _, f := range []string{"apiserver.crt", "etcd/server.crt", "etcd/peer.crt"} {
		if string(read("cp-1", f)) == string(read("cp-2", f)) {
			t.Errorf("%s is the same on cp-1 and cp-2", f)
		}
	}
	block, _ := pem.Decode(read("cp-3", "etcd/server.crt"))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ip := range cert.IPAddresses {
		found = found || ip.String() == "127.0.0.3"
	}
	if !found {
		t.Errorf("cp-3's etcd server certificate lacks 127.0.0.3: %v", cert.IPAddresses)
	}
}
