package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/controller"
)

// KubeFlags are kubectl's connection flags: which kubeconfig, context, cluster, user and namespace a
// command talks to, and the overrides kubectl accepts (--server, --token, --as, --as-group, ...), bound
// through client-go's clientcmd so they mean exactly what they mean to kubectl.
type KubeFlags struct {
	Kubeconfig    string
	Context       string
	Namespace     string
	AllNamespaces bool
	// RequestTimeout bounds each request to the API server (not a whole --wait).
	RequestTimeout time.Duration
	// Overrides hold the other kubectl flags (--server, --token, --as, --cluster, --user, ...).
	Overrides clientcmd.ConfigOverrides

	// config is set by Complete; tests may set it directly.
	config *rest.Config
	// namespace is the resolved namespace: --namespace, else the context's, else "default".
	namespace string
	// contextName is the kubeconfig context used ("" when tests set config directly).
	contextName string
}

// addKubeFlags registers the flags on cmd. allNamespaces adds -A for commands that can span namespaces.
func (k *KubeFlags) addKubeFlags(cmd *cobra.Command, allNamespaces bool) {
	f := cmd.Flags()
	f.StringVar(&k.Kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
	f.StringVar(&k.Context, "context", "", "The kubeconfig context to use.")
	f.StringVarP(&k.Namespace, "namespace", "n", "", "The namespace (default: the context's namespace, else default).")
	f.DurationVar(&k.RequestTimeout, "request-timeout", 30*time.Second, "How long to wait for each response from the API server.")
	if allNamespaces {
		f.BoolVarP(&k.AllNamespaces, "all-namespaces", "A", false, "Look in every namespace (overrides --namespace).")
	}
	// The rest of kubectl's set, from client-go itself; context, namespace and timeout are ours above.
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.CurrentContext.LongName = ""
	names.ContextOverrideFlags.Namespace.LongName, names.ContextOverrideFlags.Namespace.ShortName = "", ""
	names.Timeout.LongName = ""
	clientcmd.BindOverrideFlags(&k.Overrides, f, names)
	for _, name := range kubectlOnlyFlags {
		_ = f.MarkHidden(name) // accepted as kubectl accepts them, but not advertised
	}
}

// kubectlOnlyFlags are accepted for kubectl compatibility but hidden from --help: basic authentication
// is long gone from Kubernetes, and the others are rarely wanted.
var kubectlOnlyFlags = []string{"username", "password", "proxy-url", "disable-compression"}

// Complete loads the kubeconfig and resolves the namespace. It contacts no server.
func (k *KubeFlags) Complete() error {
	if k.config != nil {
		if k.namespace == "" {
			k.namespace = k.Namespace
		}
		if k.namespace == "" {
			k.namespace = "default"
		}
		return nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	overrides := k.Overrides
	overrides.CurrentContext = k.Context
	overrides.Context.Namespace = k.Namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return &hint{err: err, kind: ErrNoKubeconfig, msg: "no cluster configured: pass --kubeconfig, set $KUBECONFIG or create ~/.kube/config"}
		}
		return &hint{err: err, kind: ErrNoKubeconfig, msg: fmt.Sprintf("loading the kubeconfig: %v", err)}
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	cfg.UserAgent = "certrollout-cli"
	cfg.Timeout = k.RequestTimeout
	cfg.QPS, cfg.Burst = 50, 100
	k.config, k.namespace = cfg, ns
	k.contextName = k.Context
	if raw, err := loader.RawConfig(); err == nil && k.contextName == "" {
		k.contextName = raw.CurrentContext
	}
	return nil
}

// ContextName is the kubeconfig context Complete used; "" when it was given a REST config instead.
func (k *KubeFlags) ContextName() string { return k.contextName }

// Config is the REST config Complete loaded.
func (k *KubeFlags) Config() *rest.Config { return k.config }

// ResolvedNamespace is --namespace, else the context's namespace, else "default".
func (k *KubeFlags) ResolvedNamespace() string { return k.namespace }

// ListNamespace is the namespace to list in: "" (all) under -A.
func (k *KubeFlags) ListNamespace() string {
	if k.AllNamespaces {
		return ""
	}
	return k.namespace
}

// Client returns a direct (uncached) client that knows certrollout's, cert-manager's and the built-in
// types.
func (k *KubeFlags) Client() (client.WithWatch, error) {
	c, err := client.NewWithWatch(k.config, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, explain(err, k.config)
	}
	return c, nil
}

// Reachable checks that the API server answers, and says how to fix it when it does not.
func (k *KubeFlags) Reachable(ctx context.Context) error {
	dc, err := discovery.NewDiscoveryClientForConfig(k.config)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := dc.ServerVersion()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return explain(err, k.config)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Scheme knows the built-in types, certrollout.io/v1alpha1 and the cert-manager fields certrollout reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	// These only fail on conflicting registrations, which would be a programming error caught by any test.
	_ = clientgoscheme.AddToScheme(s)
	_ = api.AddToScheme(s)
	_ = certmanager.AddToScheme(s)
	return s
}

// Snapshot reads the cluster once through the controller's own caches and discovery (see
// controller.Snapshot), in the namespace of the flags or in all of them under -A. Close it when done.
func (k *KubeFlags) Snapshot(ctx context.Context, o controller.Options) (*controller.Snapshot, error) {
	ctrl.SetLogger(logr.Discard()) // controller-runtime's own logs are for the controller, not the CLI
	if err := k.Reachable(ctx); err != nil {
		return nil, err
	}
	if ns := k.ListNamespace(); ns != "" {
		o.Namespaces = []string{ns}
	} else {
		o.Namespaces = nil
	}
	s, err := controller.NewSnapshot(ctx, k.config, o)
	if err != nil {
		return nil, explain(err, k.config)
	}
	return s, nil
}
