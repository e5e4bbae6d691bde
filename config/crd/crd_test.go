package crd

import (
	"os"
	"strings"
	"testing"
	"unicode"
)

// gofmt rewrites two single quotes in a doc comment as one typographic quote, and controller-gen copies
// markers from doc comments: a CEL rule comparing with the empty string literal would reach the CRD
// broken. Rules must stay plain ASCII.
func TestValidationRulesArePlainASCII(t *testing.T) {
	manifests, err := Manifests()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 7 {
		t.Fatalf("want the RolloutPolicy, CertRollout, MaintenanceHold, TrustBundleSync, NodeCertificates, ControlPlanePolicy and ControlPlaneRollout CRDs, got %d manifests", len(manifests))
	}
	rules := 0
	for name, m := range manifests {
		for i, line := range strings.Split(string(m), "\n") {
			if !strings.Contains(line, "rule:") {
				continue
			}
			rules++
			for _, r := range line {
				if r > unicode.MaxASCII {
					t.Errorf("%s:%d: non-ASCII %q in a CEL rule: %s", name, i+1, r, strings.TrimSpace(line))
				}
			}
		}
	}
	if rules == 0 {
		t.Error("no CEL rule found: the CRDs lost their validation")
	}
}

// kubectl apply -k config/default installs what kustomization.yaml lists: every generated CRD must be there.
func TestTheKustomizationListsEveryCRD(t *testing.T) {
	manifests, err := Manifests()
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name := range manifests {
		if !strings.Contains(string(k), "- bases/"+name+"\n") {
			t.Errorf("config/crd/kustomization.yaml does not list bases/%s", name)
		}
	}
}
