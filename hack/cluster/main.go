// Command cluster runs the local development cluster: `go run ./hack/cluster up|down|status|build|demo`.
// The Makefile's cluster-up, cluster-down and demo targets call it; tests use package localcluster
// directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/config/crd"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/localcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

type upOptions struct {
	dir                string
	podStages          string
	nodes              int
	withoutCertManager bool
	withoutCRDs        bool
	controlPlane       bool
	nodesSet           bool
	timeout            time.Duration
}

func defaultDir() string {
	if d := os.Getenv("CLUSTER_DIR"); d != "" {
		return d
	}
	return ".cluster"
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "cluster",
		Short:         "Run the local Kubernetes cluster used by certrollout's tests and demo",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBuild(), newUp(), newDown(), newStatus(), newDemo())
	return root
}

func newBuild() *cobra.Command {
	return &cobra.Command{
		Use:   "build",
		Short: "Build (or find in the cache) every component binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := localcluster.VersionsFromEnv()
			if err != nil {
				return err
			}
			bins, err := localcluster.EnsureBinaries(cmd.Context(), localcluster.BuildOptions{Versions: v, Log: os.Stderr})
			if err != nil {
				return err
			}
			for _, p := range []string{bins.Etcd, bins.APIServer, bins.ControllerManager, bins.Scheduler, bins.Kwok, bins.CertManager, bins.CertManagerCRDs} {
				fmt.Println(p)
			}
			return nil
		},
	}
}

func addUpFlags(cmd *cobra.Command, o *upOptions) {
	cmd.Flags().StringVar(&o.dir, "dir", defaultDir(), "Cluster folder (state, logs, kubeconfig); default $CLUSTER_DIR or .cluster.")
	cmd.Flags().StringVar(&o.podStages, "pod-stages", "general", "kwok pod behaviour: general (like a kubelet) or fast (Ready at once, for large benchmarks).")
	cmd.Flags().IntVar(&o.nodes, "nodes", 1, "Number of kwok nodes (1000 pods each).")
	cmd.Flags().BoolVar(&o.withoutCertManager, "without-cert-manager", false, "Do not install cert-manager.")
	cmd.Flags().BoolVar(&o.withoutCRDs, "without-crds", false, "Do not install certrollout's CRDs (CertRollout, RolloutPolicy, MaintenanceHold, TrustBundleSync).")
	cmd.Flags().BoolVar(&o.controlPlane, "control-plane", false, "Start a kubeadm-shaped control plane instead: three nodes cp-1..3 on 127.0.0.1-3, PKI by real kubeadm, static pods run by a kubelet stand-in; --nodes then counts kwok nodes for workloads (default none) and cert-manager is not installed.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long to wait for the cluster to be ready (building binaries is not counted).")
}

func (o *upOptions) start(ctx context.Context) (*localcluster.Cluster, error) {
	v, err := localcluster.VersionsFromEnv()
	if err != nil {
		return nil, err
	}
	bins, err := localcluster.EnsureBinaries(ctx, localcluster.BuildOptions{Versions: v, Log: os.Stderr})
	if err != nil {
		return nil, err
	}
	if o.controlPlane {
		kwokNodes := 0
		if o.nodesSet {
			kwokNodes = o.nodes
		}
		cp, err := localcluster.StartControlPlane(ctx, localcluster.ControlPlaneOptions{
			Dir: o.dir, Versions: v, Binaries: bins, KwokNodes: kwokNodes, Detach: true, Log: os.Stderr, Timeout: max(o.timeout, 8*time.Minute),
		})
		if err != nil {
			return nil, err
		}
		c := cp.Cluster
		if o.withoutCRDs {
			return c, nil
		}
		return c, installCRDs(ctx, c)
	}
	c, err := localcluster.Start(ctx, localcluster.Options{
		Dir: o.dir, Versions: v, Binaries: bins, PodStages: o.podStages, Nodes: o.nodes,
		WithoutCertManager: o.withoutCertManager, Detach: true, Log: os.Stderr, Timeout: o.timeout,
	})
	if err != nil || o.withoutCRDs {
		return c, err
	}
	return c, installCRDs(ctx, c)
}

// installCRDs installs certrollout's own API: the CLI's status and restart, and the controller's
// policies, need it.
func installCRDs(ctx context.Context, c *localcluster.Cluster) error {
	all, err := crd.All()
	if err != nil {
		return err
	}
	if err := c.InstallCRDs(ctx, api.GroupVersion.Group, all...); err != nil {
		return fmt.Errorf("installing certrollout's CRDs: %w", err)
	}
	fmt.Fprintln(os.Stderr, "Installed certrollout's CRDs (CertRollout, RolloutPolicy, MaintenanceHold, TrustBundleSync).")
	return nil
}

func newUp() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the cluster (or keep the healthy one already running) and write its kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.nodesSet = cmd.Flags().Changed("nodes")
			c, err := o.start(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Printf("Kubeconfig: %s\nTry: kubectl --kubeconfig %s get nodes\nStop it with: make cluster-down\n", c.Kubeconfig, c.Kubeconfig)
			return nil
		},
	}
	addUpFlags(cmd, o)
	return cmd
}

func newDown() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process of the cluster",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			stopErr := localcluster.StopDir(abs)
			// Anything still naming the folder (a lost state file, a crashed start) goes too.
			if left := localcluster.ProcessesUsing(abs); len(left) > 0 {
				fmt.Fprintf(os.Stderr, "Killing %d leftover process(es) of %s: %v\n", len(left), abs, left)
				for _, pid := range left {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if stopErr != nil {
				return stopErr
			}
			fmt.Fprintf(os.Stderr, "Cluster in %s stopped.\n", abs)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir(), "Cluster folder; default $CLUSTER_DIR or .cluster.")
	return cmd
}

func newStatus() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the cluster is running and healthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := localcluster.Attach(cmd.Context(), dir)
			if err != nil {
				return err
			}
			fmt.Printf("Running: %s\nKubeconfig: %s\n", c.Config.Host, c.Kubeconfig)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir(), "Cluster folder; default $CLUSTER_DIR or .cluster.")
	return cmd
}

func newDemo() *cobra.Command {
	o := &upOptions{}
	var manifests string
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start the cluster, deploy the demo application and show its certificate renewing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.start(ctx)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(manifests)
			if err != nil {
				return err
			}
			if err := localcluster.Apply(ctx, c.Config, data); err != nil {
				return err
			}
			fmt.Println("Deployed the demo application (namespace demo): Certificate web-tls renews about every 30 s;\nDeployment web mounts it and is annotated certrollout.io/enabled=true.")
			return runDemo(ctx, c, watch)
		},
	}
	addUpFlags(cmd, o)
	cmd.Flags().StringVar(&manifests, "manifests", "hack/demo/demo.yaml", "Demo application manifests.")
	cmd.Flags().DurationVar(&watch, "watch", 75*time.Second, "How long to run the controller and show renewals turning into rollouts (0: deploy only).")
	return cmd
}

// runDemo runs the certrollout controller against the demo application and narrates each renewal
// turning into one rollout.
func runDemo(ctx context.Context, c *localcluster.Cluster, watch time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		ready, _ := localcluster.CertificateReady(wctx, c, "demo", "web-tls")
		dep, err := c.Client.AppsV1().Deployments("demo").Get(wctx, "web", metav1.GetOptions{})
		if ready && err == nil && deploymentAvailable(dep) {
			break
		}
		select {
		case <-wctx.Done():
			return errors.New("timed out waiting for Certificate demo/web-tls and Deployment demo/web")
		case <-time.After(time.Second):
		}
	}
	if watch <= 0 {
		return nil
	}
	opts := controller.DefaultOptions()
	opts.SettlePeriod = 2 * time.Second
	opts.MinRestartInterval = 0 // the demo certificate renews every 30 s; the default cooldown is 10m
	ctrl.SetLogger(logr.Discard())
	mgr, err := controller.NewManager(c.Config, controller.ManagerOptions{Options: opts, MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		return err
	}
	// Start from what the Deployment holds now (a second `make demo` finds the first one's annotations).
	var seen bool
	var lastLedger, lastRestart string
	if dep, err := c.Client.AppsV1().Deployments("demo").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		lastLedger, lastRestart = dep.Annotations[api.AnnotationCertificateHash], dep.Spec.Template.Annotations[api.AnnotationRestartHash]
		seen = lastLedger != ""
	}
	mctx, stopController := context.WithCancel(ctx)
	defer stopController()
	go func() { _ = mgr.Start(mctx) }()
	fmt.Printf("Started the certrollout controller (settle period 2s, no cooldown). Watching for %s:\n", watch)

	deadline := time.Now().Add(watch)
	lastSerial := ""
	// What the controller did is read off the Deployment: the ledger (the certificates its pods run on)
	// and the pod template's restart hash (changing it is what rolls the pods). A new ledger with the same
	// template means certrollout recorded certificates the pods already run on; a new template, a rollout.
	for time.Now().Before(deadline) {
		if _, serial, err := localcluster.CertificateRevision(ctx, c, "demo", "web-tls"); err == nil && serial != lastSerial {
			if lastSerial != "" {
				fmt.Printf("  %s  cert-manager renewed web-tls (serial %s)\n", time.Now().Format(time.TimeOnly), serial)
			}
			lastSerial = serial
		}
		if dep, err := c.Client.AppsV1().Deployments("demo").Get(ctx, "web", metav1.GetOptions{}); err == nil {
			ledger := dep.Annotations[api.AnnotationCertificateHash]
			restart := dep.Spec.Template.Annotations[api.AnnotationRestartHash]
			if ledger != "" && (ledger != lastLedger || restart != lastRestart) {
				rs, _ := c.Client.AppsV1().ReplicaSets("demo").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
				now := time.Now().Format(time.TimeOnly)
				switch {
				case restart != lastRestart && !seen:
					fmt.Printf("  %s  certrollout rolled Deployment web at first sight: its pods had started before the certificate they mount was issued (onto %s; %d ReplicaSets so far)\n", now, ledger, len(rs.Items))
				case restart != lastRestart:
					fmt.Printf("  %s  certrollout rolled Deployment web once, onto certificates %s (%d ReplicaSets so far)\n", now, ledger, len(rs.Items))
				default:
					fmt.Printf("  %s  certrollout recorded the certificates web's pods already run on (%s): no rollout needed\n", now, ledger)
				}
				seen, lastLedger, lastRestart = true, ledger, restart
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Printf(`
The cluster keeps running (the controller stopped with this command). Look around:
  export KUBECONFIG=%s
  kubectl -n demo get certificate,replicasets,pods
  kubectl -n demo get events --field-selector reason=Restarted
Run the controller yourself:
  make build && bin/certrollout controller --kubeconfig %s --leader-elect=false --min-restart-interval=0
Stop the cluster with: make cluster-down
`, c.Kubeconfig, c.Kubeconfig)
	return nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" {
			return d.Status.AvailableReplicas == *d.Spec.Replicas
		}
	}
	return false
}
