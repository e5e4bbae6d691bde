package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
)

// Exit codes of every command except check, one scheme so that a script branches the same way after
// restart, renew, status or plan. check keeps the monitoring-plugin codes it documents (checkExit*: 1
// warning, 2 critical), and shares 3 with the others: its "could not run" includes an unreachable cluster.
const (
	// ExitOK: done (with --wait or --watch: everything followed succeeded).
	ExitOK = 0
	// ExitFailed: the operation failed (a rollout or issuance failed, forbidden, not found) or the input
	// was wrong (flags, arguments).
	ExitFailed = 1
	// ExitTimedOut: --timeout passed before what --wait or --watch followed finished; it goes on.
	ExitTimedOut = 2
	// ExitUnreachable: the cluster could not be reached or did not accept the credentials (connection
	// refused, DNS, TLS, 401 Unauthorized, no usable kubeconfig).
	ExitUnreachable = 3
)

// exitCode is the process exit code for err, a command's error: an exitError's own code, ExitUnreachable
// for anything that says the cluster was not reached or refused the credentials, else ExitFailed.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, ErrUnreachable), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNoKubeconfig),
		apierrors.IsUnauthorized(err), isUnreachable(err):
		// The last two catch an error a code path returned without explain.
		return ExitUnreachable
	}
	return ExitFailed
}

// Errors a user can act on. explain turns API and transport errors into these, keeping the original
// wrapped (errors.Is/As still see it).
var (
	// ErrUnreachable: no API server answered (refused, DNS, TLS, timeout).
	ErrUnreachable = errors.New("cannot reach the Kubernetes API server")
	// ErrUnauthorized: the API server did not accept the kubeconfig's credentials (401).
	ErrUnauthorized = errors.New("the API server rejected the credentials")
	// ErrNoKubeconfig: no kubeconfig could be loaded, so there is no cluster to talk to.
	ErrNoKubeconfig = errors.New("no usable kubeconfig")
	// ErrCRDsMissing: certrollout.io is not served.
	ErrCRDsMissing = errors.New("the certrollout.io CRDs are not installed")
	// ErrCertManagerMissing: cert-manager.io is not served.
	ErrCertManagerMissing = errors.New("cert-manager is not installed")
)

// hint wraps an error with the sentence that says what to do about it.
type hint struct {
	err  error
	msg  string
	kind error
}

func (h *hint) Error() string { return h.msg }
func (h *hint) Unwrap() []error {
	if h.kind != nil {
		return []error{h.kind, h.err}
	}
	return []error{h.err}
}

// explain maps err to an error message a user can act on. cfg (may be nil) names the server.
func explain(err error, cfg *rest.Config) error {
	if err == nil {
		return nil
	}
	var h *hint
	if errors.As(err, &h) {
		return err
	}
	server := "the API server"
	if cfg != nil && cfg.Host != "" {
		server = cfg.Host
	}
	var noMatch *apimeta.NoKindMatchError
	var noResource *apimeta.NoResourceMatchError
	switch {
	case errors.As(err, &noMatch) && noMatch.GroupKind.Group == api.GroupVersion.Group,
		errors.As(err, &noResource) && noResource.PartialResource.Group == api.GroupVersion.Group,
		isNotServed(err, api.GroupVersion.Group):
		return &hint{err: err, kind: ErrCRDsMissing, msg: fmt.Sprintf(
			"%v on %s: install them with `kubectl apply -k config/crd` (or config/default with the controller)", ErrCRDsMissing, server)}
	case errors.As(err, &noMatch) && noMatch.GroupKind.Group == certmanager.GroupVersion.Group,
		errors.As(err, &noResource) && noResource.PartialResource.Group == certmanager.GroupVersion.Group,
		isNotServed(err, certmanager.GroupVersion.Group):
		return &hint{err: err, kind: ErrCertManagerMissing, msg: fmt.Sprintf(
			"%v on %s (no cert-manager.io/v1 Certificates are served): install cert-manager, or use Secrets directly", ErrCertManagerMissing, server)}
	case apierrors.IsForbidden(err):
		return &hint{err: err, msg: forbidden(err)}
	case apierrors.IsUnauthorized(err):
		return &hint{err: err, kind: ErrUnauthorized, msg: fmt.Sprintf("%s rejected the credentials of the kubeconfig (Unauthorized): log in again or pick another --context", server)}
	case isUnreachable(err):
		return &hint{err: err, kind: ErrUnreachable, msg: fmt.Sprintf(
			"%v at %s: %v (is the cluster running? check --kubeconfig and --context)", ErrUnreachable, server, rootCause(err))}
	}
	return err
}

// forbidden names the verb and resource the API server refused, and who asked.
func forbidden(err error) string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return err.Error()
	}
	msg := se.Status().Message
	if msg == "" || msg == "unknown" {
		// A 403 without a Status body, e.g. for /version (which everyone may read): the request was
		// refused before authorization of the call itself, which in practice means impersonation.
		return "forbidden: the API server refused the request (403) without saying why: if you pass --as, --as-group or --as-uid, your credentials may not impersonate that user or group"
	}
	// The API server says `secrets is forbidden: User "u" cannot list resource "secrets" in API group ""
	// in the namespace "n"`: keep its words (they name verb and resource) and add what to do.
	return "forbidden: " + strings.TrimPrefix(msg, "forbidden: ") + " — ask for RBAC that allows it, or narrow the command with --namespace"
}

// isMissingObject reports whether err says that an object of group does not exist, as opposed to its
// whole type not being served (the CRDs or cert-manager not installed, which explain names).
func isMissingObject(err error, group string) bool {
	return apierrors.IsNotFound(err) && !isNotServed(err, group)
}

// notFound is the sentence every command uses for a missing object, with the command that lists what
// there is when listHint is not empty.
func notFound(kind, name, ns, listHint string) string {
	s := fmt.Sprintf("%s %q not found in namespace %q", kind, name, ns)
	if listHint != "" {
		s += " (list them with `" + listHint + "`)"
	}
	return s
}

// isNotServed recognises the 404 the API server answers for a group it does not serve.
func isNotServed(err error, group string) bool {
	if !apierrors.IsNotFound(err) {
		return false
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	d := se.Status().Details
	// A missing object names its kind and name; a missing resource type has no name and says "the server
	// could not find the requested resource".
	return d != nil && d.Name == "" && d.Group == group && se.Status().Reason == metav1.StatusReasonNotFound &&
		strings.Contains(se.Status().Message, "could not find the requested resource")
}

// isUnreachable recognises a request that reached no API server: refused, DNS, TLS, a request timeout.
// An interrupt (context.Canceled) is not one, though client-go wraps it the same way.
func isUnreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.As(err, &oe) || (errors.As(err, &ue) && errors.As(err, &ne))
}

// rootCause is the network error under the URL and client wrappers ("dial tcp 127.0.0.1:6443: connect:
// connection refused"), or err itself.
func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	return err
}
