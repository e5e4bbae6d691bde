package incluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/charttest"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/containertest"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/image"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

func TestMain(m *testing.M) {
	containertest.Init() // in the re-executed binary: become the container's entrypoint
	ctrl.SetLogger(logr.Discard())
	clustertest.Main(m)
}

// platform is this machine's: the image is built for it so its binary runs here.
var platform = "linux/" + runtime.GOARCH

var (
	imageOnce   sync.Once
	imageLayout string
	imageErr    error
)

// builtImage builds certrollout for this platform and the OCI image of it, once per test binary, and
// returns the layout folder.
func builtImage(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		root, err := localcluster.FindRepoRoot(".")
		if err != nil {
			imageErr = err
			return
		}
		dir, err := os.MkdirTemp("", "certrollout-image-")
		if err != nil {
			imageErr = err
			return
		}
		bin := filepath.Join(dir, "certrollout")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/certrollout")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("building certrollout: %w\n%s", err, out)
			return
		}
		license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
		if err != nil {
			imageErr = err
			return
		}
		o := image.Options{
			Version: "v0.0.0-test", Revision: "test", Created: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
			License: license, Binaries: map[string]string{platform: bin},
		}
		idx, err := image.Build(o)
		if err != nil {
			imageErr = err
			return
		}
		imageLayout = filepath.Join(dir, "layout")
		imageErr = image.WriteLayout(imageLayout, idx, o)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageLayout
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// pod is the controller running as a container.
type pod struct {
	cmd    *exec.Cmd
	logs   *clustertest.SyncBuffer
	probes int
	// namespace is the release's: the pod's own.
	namespace string
}

// runAsPod renders the chart for a release in ns, applies everything it renders but the Deployment
// (whose pod this test is), and starts the image's entrypoint with the Deployment's arguments and
// environment, the chart's ServiceAccount token and the pod's KUBERNETES_SERVICE_* variables.
func runAsPod(t *testing.T, ns string) *pod {
	t.Helper()
	ctx := context.Background()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t) // the chart applies the same CRDs; this waits until they are served
	layout := builtImage(t)

	probes, metrics := freePort(t), freePort(t)
	vals, err := charttest.Values(fmt.Sprintf("replicaCount: 1\nmetrics: {port: %d}\nhealthProbe: {port: %d}\n", metrics, probes))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := charttest.Load()
	if err != nil {
		t.Fatal(err)
	}
	r, err := charttest.Render(ch, "certrollout", ns, vals)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := r.YAML(func(u *unstructured.Unstructured) bool { return u.GetKind() == "Deployment" })
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, c.Config, manifests); err != nil {
		t.Fatalf("applying the chart's objects: %v", err)
	}
	u, err := r.Get("Deployment", "certrollout")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := apiruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	ctr := spec.Containers[0]

	// The ServiceAccount volume the kubelet would mount: a bound token, the cluster CA, the namespace.
	tok, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for the chart's ServiceAccount %q: %v", spec.ServiceAccountName, err)
	}
	ca, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	sa := t.TempDir()
	for name, data := range map[string][]byte{"token": []byte(tok.Status.Token), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(sa, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sa, 0o755); err != nil {
		t.Fatal(err)
	}

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := image.Unpack(layout, platform, rootfs); err != nil {
		t.Fatal(err)
	}
	img, err := image.FromLayout(layout, platform)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := user(t, cfg.Config.User)
	if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("the chart should make the root filesystem read-only (it runs read-only here either way)")
	}
	if psc := spec.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != int64(uid) {
		t.Errorf("the chart's runAsUser should be the image's user %d: %+v", uid, psc)
	}

	host, port, err := net.SplitHostPort(strings.TrimPrefix(c.Config.Host, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	// As the kubelet builds it: the image's environment, the container's, then the service variables.
	env := append([]string{}, cfg.Config.Env...)
	for _, e := range ctr.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s comes from %v: resolve it here as the kubelet would", e.Name, e.ValueFrom)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	env = append(env, "HOSTNAME=certrollout-test", "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)

	args := append(append([]string{}, cfg.Config.Entrypoint...), ctr.Args...)
	cmd, err := containertest.Command(containertest.Spec{
		Rootfs: rootfs, Args: args, Env: env, UID: uid, GID: gid,
		Mounts: []containertest.Mount{{Source: sa, Target: containertest.ServiceAccountDir, ReadOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{cmd: cmd, logs: &clustertest.SyncBuffer{}, probes: probes, namespace: ns}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("controller logs:\n%s", p.logs.String())
		}
	})
	return p
}

// readyController runs the controller as a pod in a release namespace of its own, waits until it is
// ready, and returns it with a fresh namespace for the test's workloads.
func readyController(t *testing.T) (*pod, string) {
	t.Helper()
	p := runAsPod(t, clustertest.Namespace(t))
	p.ready(t)
	return p, clustertest.Namespace(t)
}

func ptr[T any](v T) *T { return &v }

// user parses an image's "uid:gid".
func user(t *testing.T, s string) (uint32, uint32) {
	t.Helper()
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("the image's user %q is not numeric uid:gid (runAsNonRoot needs numbers)", s)
	}
	return uint32(uid), uint32(gid)
}

// ready waits until /readyz answers 200.
func (p *pod) ready(t *testing.T) {
	t.Helper()
	readyz := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.probes)), Path: "/readyz"}
	clustertest.Eventually(t, 2*time.Minute, "the controller to report ready on /readyz", func(ctx context.Context) (bool, error) {
		if st := p.cmd.ProcessState; st != nil {
			return false, fmt.Errorf("the controller exited: %v\n%s", st, p.logs.String())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("/readyz: %s", resp.Status)
		}
		return true, nil
	})
}

// proc returns the lines of /proc/PID/<file> of the controller.
func (p *pod) proc(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.cmd.Process.Pid, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

// status reads a line of /proc/PID/status ("Uid:", "Gid:").
func (p *pod) status(t *testing.T, field string) []string {
	t.Helper()
	for _, line := range p.proc(t, "status") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no %s in the controller's /proc status", field)
	return nil
}

// rootMount is the mount options of the process's /.
func (p *pod) rootMount(t *testing.T) string {
	t.Helper()
	for _, line := range p.proc(t, "mountinfo") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			return f[5]
		}
	}
	t.Fatal("no / in the process's mountinfo")
	return ""
}

func TestTheImageRunsAsAPodWithTheChartsRBACAndRollsAConsumerOnceAfterARenewal(t *testing.T) {
	c := clustertest.Cluster(t)
	ctx := context.Background()
	p, apps := readyController(t)
	if uids := p.status(t, "Uid:"); len(uids) < 3 || uids[0] != "65532" || uids[1] != "65532" || uids[2] != "65532" {
		t.Errorf("the controller runs as uid %v, want 65532 (real, effective, saved)", uids)
	}
	if opts := p.rootMount(t); !strings.HasPrefix(opts, "ro,") && opts != "ro" {
		t.Errorf("the controller's root filesystem is mounted %q, want read-only", opts)
	}
	if logs := p.logs.String(); !strings.Contains(logs, "Starting certrollout controller") {
		t.Errorf("the controller's log should say it started:\n%s", logs)
	}

	// The leader publishes its settings in its own namespace with the chart's RBAC, and anyone
	// authenticated may read them (rbac.settingsReaders), so a tenant's plan decides as it does.
	clustertest.Eventually(t, time.Minute, "the controller to publish its settings", func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ConfigMaps(p.namespace).Get(ctx, controller.SettingsConfigMap, metav1.GetOptions{})
		return err == nil, nil
	})
	tenantCfg := rest.CopyConfig(c.Config)
	tenantCfg.Impersonate = rest.ImpersonationConfig{UserName: "some-tenant", Groups: []string{"system:authenticated"}}
	tenant, err := client.New(tenantCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	settings, found, err := controller.FindSettings(ctx, tenant, p.namespace, apps)
	if err != nil || !found || settings.Namespace != p.namespace || settings.Kind != controller.SettingsKind {
		t.Errorf("a tenant should find the controller's settings in %s: %+v found=%v err=%v", p.namespace, settings, found, err)
	}

	// A real cert-manager chain; the consumer starts after its leaf is issued, so the first sight
	// restarts nothing and only the renewal rolls it.
	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(apps, "api", "api-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "Certificate api to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, apps, "api")
	})
	dep := testgen.Deployment(apps, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")},
		testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(apps).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ledger string
	clustertest.Eventually(t, 2*time.Minute, "the controller to record the certificates web runs on", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(apps).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ledger = d.Annotations[api.AnnotationCertificateHash]
		return ledger != "" && d.Status.UpdatedReplicas == 2 && d.Status.AvailableReplicas == 2, nil
	})
	before := replicaSets(t, apps)

	clustertest.Renew(t, c, apps, "api")
	clustertest.Eventually(t, 2*time.Minute, "the controller to roll web onto the renewed certificate", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(apps).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		h := d.Annotations[api.AnnotationCertificateHash]
		if h == ledger || d.Spec.Template.Annotations[api.AnnotationRestartHash] != h {
			return false, fmt.Errorf("ledger %q, template %q", h, d.Spec.Template.Annotations[api.AnnotationRestartHash])
		}
		return true, nil
	})
	// Settled: exactly one more ReplicaSet, and it stays so.
	time.Sleep(5 * time.Second)
	if got := replicaSets(t, apps); got != before+1 {
		t.Errorf("web has %d ReplicaSets after one renewal, want %d (one rollout)", got, before+1)
	}
	events, err := c.Client.CoreV1().Events(apps).List(ctx, metav1.ListOptions{FieldSelector: "reason=Restarted,involvedObject.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) == 0 {
		t.Error("no Restarted Event on web: the chart's RBAC should let the controller record Events")
	}
}

// The image has no /usr/share/zoneinfo: the binary carries its own time zone database, or every policy
// window with a timeZone would be invalid in the shipped controller.
func TestThePolicyTimeZonesWorkInTheImage(t *testing.T) {
	c := clustertest.Cluster(t)
	ctx := context.Background()
	_, apps := readyController(t)
	cl, err := client.New(c.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	for name, zone := range map[string]string{"berlin": "Europe/Berlin", "nowhere": "Mars/Olympus_Mons"} {
		pol := &api.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: apps},
			Spec: api.RolloutPolicySpec{
				Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Windows:  []api.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: zone}},
			},
		}
		if err := cl.Create(ctx, pol); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]metav1.ConditionStatus{"berlin": metav1.ConditionTrue, "nowhere": metav1.ConditionFalse} {
		clustertest.Eventually(t, time.Minute, "RolloutPolicy "+name+" to be judged", func(ctx context.Context) (bool, error) {
			var pol api.RolloutPolicy
			if err := cl.Get(ctx, client.ObjectKey{Namespace: apps, Name: name}, &pol); err != nil {
				return false, err
			}
			cond := apimeta.FindStatusCondition(pol.Status.Conditions, api.ConditionValid)
			if cond == nil {
				return false, fmt.Errorf("no Valid condition yet")
			}
			if cond.Status != want {
				return false, fmt.Errorf("Valid=%s: %s", cond.Status, cond.Message)
			}
			return true, nil
		})
	}
}

func scheme(t *testing.T) *apiruntime.Scheme {
	t.Helper()
	s := apiruntime.NewScheme()
	if err := api.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func replicaSets(t *testing.T, ns string) int {
	t.Helper()
	list, err := clustertest.Cluster(t).Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}
