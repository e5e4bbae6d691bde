package smoke

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// buildClusterTool builds hack/cluster, the program behind `make cluster-up` and `make cluster-down`.
func buildClusterTool(t *testing.T) string {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "cluster")
	cmd := exec.Command("go", "build", "-o", bin, "./hack/cluster")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hack/cluster: %v\n%s", err, out)
	}
	return bin
}

func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	root, _ := localcluster.FindRepoRoot(".")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestClusterUpIsIdempotentRunsBesideAnotherAndDownLeavesNoProcess(t *testing.T) {
	other := clustertest.Cluster(t) // this package's cluster keeps running beside the one started here
	tool := buildClusterTool(t)
	dir := filepath.Join(t.TempDir(), "side")
	t.Cleanup(func() {
		_ = exec.Command(tool, "down", "--dir", dir).Run()
	})

	runTool(t, tool, "up", "--dir", dir)
	first := localcluster.ProcessesUsing(dir)
	if len(first) != 6 {
		t.Fatalf("want 6 component processes (etcd, apiserver, controller-manager, scheduler, kwok, cert-manager), got %v", first)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host == other.Config.Host {
		t.Fatalf("both clusters serve on %s", cfg.Host)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("want one node through the written kubeconfig, got %v (err %v)", nodes, err)
	}
	side, err := localcluster.Attach(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ready, err := localcluster.CertificateReady(ctx, side, localcluster.ProbeNamespace, "probe")
	if err != nil || !ready {
		t.Fatalf("up returned before the probe Certificate was Ready (err %v)", err)
	}
	if _, err := other.Client.Discovery().ServerVersion(); err != nil {
		t.Fatalf("the package's own cluster stopped answering: %v", err)
	}

	out := runTool(t, tool, "up", "--dir", dir)
	if !strings.Contains(out, "already running") {
		t.Fatalf("a second up should keep the running cluster, said:\n%s", out)
	}
	if again := localcluster.ProcessesUsing(dir); !slices.Equal(first, again) {
		t.Fatalf("a second up replaced processes: before %v, after %v", first, again)
	}

	runTool(t, tool, "down", "--dir", dir)
	if left := localcluster.ProcessesUsing(dir); len(left) > 0 {
		t.Fatalf("processes still running after down: %v", left)
	}
	if _, err := other.Client.Discovery().ServerVersion(); err != nil {
		t.Fatalf("down stopped the other cluster too: %v", err)
	}
	// Down on a stopped cluster is not an error.
	runTool(t, tool, "down", "--dir", dir)
	if _, err := os.Stat(filepath.Join(dir, "logs")); err != nil {
		t.Fatalf("down should keep the logs: %v", err)
	}
}
