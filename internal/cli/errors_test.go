package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/certrollout/certrollout/internal/clustertest"
)

func TestErrorsSayWhatToDo(t *testing.T) {
	cfg := &rest.Config{Host: "https://10.0.0.1:6443"}
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/version", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	cases := map[string]struct {
		err        error
		is         error
		wantPhrase string
	}{
		"a missing certrollout.io kind says to install the CRDs": {
			err: &apimeta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "certrollout.io", Kind: "CertRollout"}},
			is:  ErrCRDsMissing, wantPhrase: "kubectl apply -k config/crd",
		},
		"a missing cert-manager kind says cert-manager is not installed": {
			err: &apimeta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "cert-manager.io", Kind: "Certificate"}},
			is:  ErrCertManagerMissing, wantPhrase: "install cert-manager",
		},
		"a refused connection names the server and the kubeconfig flags": {
			err: refused, is: ErrUnreachable, wantPhrase: "at https://10.0.0.1:6443: dial tcp: connect: connection refused (is the cluster running? check --kubeconfig and --context)",
		},
		"forbidden keeps the API server's verb and resource": {
			err:        apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New(`User "bob" cannot list resource "secrets" in API group "" in the namespace "prod"`)),
			wantPhrase: `User "bob" cannot list resource "secrets" in API group "" in the namespace "prod" — ask for RBAC`,
		},
		"a wrapped error is explained too": {
			err: fmt.Errorf("listing: %w", &apimeta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "certrollout.io", Kind: "RolloutPolicy"}}),
			is:  ErrCRDsMissing, wantPhrase: "certrollout.io CRDs are not installed on https://10.0.0.1:6443",
		},
	}
	for sentence, c := range cases {
		got := explain(c.err, cfg)
		if !strings.Contains(got.Error(), c.wantPhrase) {
			t.Errorf("%s: got %q", sentence, got)
		}
		if c.is != nil && !errors.Is(got, c.is) {
			t.Errorf("%s: errors.Is(%v) is false", sentence, c.is)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("%s: the original error is no longer wrapped", sentence)
		}
	}
	if err := errors.New("something else"); explain(err, cfg) != err { //nolint:errorlint // the very same error must come back
		t.Error("an error explain does not know is returned as it is")
	}
}

// TestAForbiddenListNamesTheVerbAndResource runs plan as a user without any RBAC (--as, as kubectl).
func TestAForbiddenListNamesTheVerbAndResource(t *testing.T) {
	ns := clustertest.Namespace(t)
	_, _, err := run(t, "certrollout", "plan", "--kubeconfig", clustertest.Cluster(t).Kubeconfig, "--as", "nobody@example.com", "-n", ns)
	want := `forbidden: User "nobody@example.com" cannot list resource "secrets" in API group "" in the namespace "` + ns + `"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("want %q, got %v", want, err)
	}
}

func TestCompletionScriptsAreGenerated(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := run(t, "certrollout", "completion", shell)
		if err != nil || !strings.Contains(out, "certrollout") || len(out) < 500 {
			t.Errorf("%s: %v (%d bytes)", shell, err, len(out))
		}
	}
}
