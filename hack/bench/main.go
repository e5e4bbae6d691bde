// Command bench measures certrollout on the local cluster (`make bench`): how long a certificate renewal
// takes to become a pod-template patch, against a minimal reactor that watches Secrets and sends one PATCH
// per change (the floor any controller can reach), measured in the same run and alternating; the
// controller's peak memory with many large non-certificate Secrets; and its API requests by verb in steady
// state and per renewal. Table on stdout, JSON in --out. With --check it measures `certrollout check`
// instead (check.go).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

type config struct {
	secrets, certSecrets, payload, deployments, replicas, renewals int
	steady, gap                                                    time.Duration
	clusterDir, controller, out, memLimit                          string
}

func main() {
	var c config
	flag.IntVar(&c.secrets, "secrets", 10000, "Secrets in all")
	flag.IntVar(&c.certSecrets, "cert-secrets", 2000, "of which hold certificates (two per Deployment)")
	flag.IntVar(&c.payload, "payload", 64<<10, "bytes of each non-certificate Secret")
	flag.IntVar(&c.deployments, "deployments", 1000, "Deployments; half opted in to certrollout, half handled by the baseline")
	flag.IntVar(&c.replicas, "replicas", 10, "pods per Deployment")
	flag.IntVar(&c.renewals, "renewals", 100, "renewals per side (certrollout and baseline alternate)")
	flag.DurationVar(&c.steady, "steady", 30*time.Second, "steady-state window for counting API requests")
	flag.DurationVar(&c.gap, "gap", time.Second, "pause after each renewal, so the rollout it caused settles before the next")
	flag.StringVar(&c.clusterDir, "cluster-dir", "", "use the running cluster in this folder instead of starting one")
	flag.StringVar(&c.controller, "controller", "bin/certrollout", "certrollout binary to run")
	flag.StringVar(&c.out, "out", "bench/results", "folder for the JSON result")
	flag.StringVar(&c.memLimit, "controller-gomemlimit", "", "GOMEMLIMIT for the controller only (e.g. 80MiB)")
	check := flag.Bool("check", false, "measure `certrollout check -A -o json` instead of the controller (see the --check-* flags)")
	var cc checkConfig
	cc.register(flag.CommandLine)
	flag.Parse()
	do := func(ctx context.Context) error { return run(ctx, c) }
	if *check {
		do = func(ctx context.Context) error { return runCheckBench(ctx, c, cc) }
	}
	if err := do(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	Date           time.Time          `json:"date"`
	Config         map[string]any     `json:"config"`
	Certrollout    latency            `json:"certrolloutLatencyMs"`
	Baseline       latency            `json:"baselineLatencyMs"`
	RatioP50       float64            `json:"ratioP50"`
	RatioP99       float64            `json:"ratioP99"`
	PeakRSSMB      float64            `json:"controllerPeakRSSMB"`
	SteadyRequests map[string]float64 `json:"steadyStateRequestsByVerb"`
	PerRenewal     map[string]float64 `json:"requestsPerRenewalByVerb"`
	Scrape         scrapeCost         `json:"metricsScrape"`
}

// scrapeCost is what a Prometheus scrape of /metrics costs once the controller runs (the bench has
// scraped it before: certificates are parsed at the first scrape and then only when they change).
type scrapeCost struct {
	P50Ms, MaxMs             float64
	Bytes, CertrolloutSeries int
}

type latency struct {
	P50, P90, P99, Max float64
	N                  int
}

const ns = "bench"

func run(ctx context.Context, c config) error {
	if c.replicas < 1 || c.replicas > 1000 || c.deployments < 2 || c.renewals < 1 {
		return errors.New("--replicas must be 1..1000, --deployments at least 2, --renewals at least 1")
	}
	if c.certSecrets != 2*c.deployments {
		return fmt.Errorf("--cert-secrets must be twice --deployments (%d)", 2*c.deployments)
	}
	cl, stop, err := cluster(ctx, c)
	if err != nil {
		return err
	}
	defer stop()
	client := cl.Client
	fmt.Fprintf(os.Stderr, "Creating %d Secrets (%d with certificates) and %d Deployments × %d pods.\n", c.secrets, c.certSecrets, c.deployments, c.replicas)
	if err := populate(ctx, client, c); err != nil {
		return err
	}
	if err := waitFor(ctx, 15*time.Minute, "every Deployment to be available", func() (bool, string) {
		list, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, d := range list.Items {
			if d.Status.AvailableReplicas == *d.Spec.Replicas {
				ready++
			}
		}
		return ready == c.deployments, fmt.Sprintf("%d/%d available", ready, c.deployments)
	}); err != nil {
		return err
	}

	changes := watchTemplates(ctx, client)
	stopBaseline := baseline(ctx, client)
	defer stopBaseline()

	ctl, err := startController(c.controller, cl.Kubeconfig, c.memLimit)
	if err != nil {
		return err
	}
	defer ctl.stop()
	if err := waitFor(ctx, 10*time.Minute, "certrollout to reconcile every Deployment once", func() (bool, string) {
		n, err := ctl.scrape("controller_runtime_reconcile_total", "controller")
		if err != nil {
			return false, err.Error()
		}
		return int(n["deployment"]) >= c.deployments, fmt.Sprintf("%d/%d reconciled", int(n["deployment"]), c.deployments)
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, 10*time.Minute, "certrollout to record every opted-in Deployment", func() (bool, string) {
		list, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "bench-group=certrollout"})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, d := range list.Items {
			if d.Annotations[api.AnnotationCertificateHash] != "" {
				n++
			}
		}
		return n == len(list.Items), fmt.Sprintf("%d/%d recorded", n, len(list.Items))
	}); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "Counting API requests in a %s steady state.\n", c.steady)
	s0, err := ctl.requests()
	if err != nil {
		return err
	}
	time.Sleep(c.steady)
	s1, err := ctl.requests()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "Timing /metrics scrapes.")
	scrape, err := ctl.scrapeCost(10)
	if err != nil {
		return err
	}
	// The heap profile is a build output (bin/, ignored); only the small JSON result is committed.
	if err := os.MkdirAll("bin", 0o755); err != nil {
		return err
	}
	heapPath := filepath.Join("bin", time.Now().UTC().Format("2006-01-02T15-04-05Z")+"-bench-heap.pb.gz")
	if err := ctl.saveHeap(heapPath); err != nil {
		fmt.Fprintf(os.Stderr, "Could not save a heap profile: %v\n", err)
	} else {
		fmt.Fprintf(os.Stderr, "Saved the controller's steady-state heap profile: %s\n", heapPath)
	}

	fmt.Fprintf(os.Stderr, "Renewing %d certificates per side.\n", c.renewals)
	ca := testgen.CA(fatal{}, "bench-ca")
	var ours, theirs []float64
	r0, _ := ctl.requests()
	for i := range 2 * c.renewals {
		// Pairs alternate their order (certrollout first, then baseline first) so neither side always
		// follows the other's rollout.
		group := (i%2 == 0) == (i/2%2 == 0)
		d := rand.IntN(c.deployments/2) * 2 //nolint:gosec // sampling which Deployment to renew, not security
		if !group {
			d++ // odd Deployments belong to the baseline
		}
		name := deploymentName(d)
		before := time.Now()
		if err := renewSecret(ctx, client, certSecretName(2*d), ca); err != nil {
			return err
		}
		at, err := changes.waitAfter(name, before, 60*time.Second)
		if err != nil {
			return fmt.Errorf("renewal %d (%s): %w", i, name, err)
		}
		ms := float64(at.Sub(before).Microseconds()) / 1000
		if group {
			ours = append(ours, ms)
		} else {
			theirs = append(theirs, ms)
		}
		time.Sleep(c.gap)
	}
	r1, _ := ctl.requests()
	peak, err := ctl.peakRSS()
	if err != nil {
		return err
	}

	res := result{
		Date: time.Now().UTC(),
		Config: map[string]any{"secrets": c.secrets, "certSecrets": c.certSecrets, "payloadBytes": c.payload,
			"deployments": c.deployments, "replicas": c.replicas, "renewalsPerSide": c.renewals, "settlePeriod": "0s", "gap": c.gap.String(),
			"controllerGOMEMLIMIT": c.memLimit},
		Certrollout: summarize(ours), Baseline: summarize(theirs),
		PeakRSSMB:      peak,
		SteadyRequests: diff(s0, s1, 1),
		PerRenewal:     diff(r0, r1, float64(c.renewals)),
		Scrape:         scrape,
	}
	res.RatioP50 = res.Certrollout.P50 / res.Baseline.P50
	res.RatioP99 = res.Certrollout.P99 / res.Baseline.P99
	print(res)
	return save(c.out, res)
}

type fatal struct{}

func (fatal) Helper()           {}
func (fatal) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func cluster(ctx context.Context, c config) (*localcluster.Cluster, func(), error) {
	if c.clusterDir != "" {
		cl, err := localcluster.Attach(ctx, c.clusterDir)
		return cl, func() {}, err
	}
	dir, err := os.MkdirTemp("", "certrollout-bench-")
	if err != nil {
		return nil, nil, err
	}
	pods := c.deployments * c.replicas
	fmt.Fprintf(os.Stderr, "Starting a cluster in %s (fast pod stages, %d nodes).\n", dir, pods/900+1)
	cl, err := localcluster.Start(ctx, localcluster.Options{Dir: dir, PodStages: "fast", Nodes: pods/900 + 1, WithoutCertManager: true, Log: os.Stderr})
	if err != nil {
		return nil, nil, err
	}
	return cl, func() { _ = cl.Stop(); _ = os.RemoveAll(dir) }, nil
}

func deploymentName(i int) string { return fmt.Sprintf("app-%04d", i) }
func certSecretName(i int) string { return fmt.Sprintf("cert-%04d", i) }

func populate(ctx context.Context, c kubernetes.Interface, cfg config) error {
	_, _ = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err := waitFor(ctx, time.Minute, "the default ServiceAccount", func() (bool, string) {
		_, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return err
	}
	ca := testgen.CA(fatal{}, "bench-ca")
	payload := make([]byte, cfg.payload)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	work := make(chan func() error)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range cfg.certSecrets {
		group := groupOf(i / 2)
		work <- func() error {
			leaf := testgen.Leaf(fatal{}, ca, certSecretName(i))
			_, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: certSecretName(i), Labels: map[string]string{"bench-group": group, "bench-deployment": deploymentName(i / 2)}},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(fatal{}), "ca.crt": ca.PEM()},
			}, metav1.CreateOptions{})
			return ignoreExists(err)
		}
	}
	for i := range cfg.secrets - cfg.certSecrets {
		work <- func() error {
			_, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sh.helm.release.v1.app-%05d.v1", i), Labels: map[string]string{"owner": "helm"}},
				Type:       "helm.sh/release.v1", Data: map[string][]byte{"release": payload},
			}, metav1.CreateOptions{})
			return ignoreExists(err)
		}
	}
	for d := range cfg.deployments {
		work <- func() error {
			var opts []testgen.DeploymentOption
			if groupOf(d) == "certrollout" {
				opts = append(opts, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
			}
			replicas := int32(cfg.replicas) //nolint:gosec // validated to 1..1000 in run
			dep := testgen.Deployment(ns, deploymentName(d), replicas,
				[]testgen.PodOption{testgen.WithSecretVolume(certSecretName(2 * d)), testgen.WithSecretEnv(certSecretName(2*d+1), "tls.crt")}, opts...)
			dep.Labels = map[string]string{"bench-group": groupOf(d)}
			_, err := c.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
			return ignoreExists(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func groupOf(d int) string {
	if d%2 == 0 {
		return "certrollout"
	}
	return "baseline"
}

func ignoreExists(err error) error {
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return err
}

func renewSecret(ctx context.Context, c kubernetes.Interface, name string, ca *testgen.Cert) error {
	leaf := testgen.Leaf(fatal{}, ca, name)
	data, _ := json.Marshal(map[string]any{"data": map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(fatal{})}})
	_, err := c.CoreV1().Secrets(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{})
	return err
}

// baseline is the floor: an informer on the baseline group's Secrets that sends one PATCH per change to
// the Deployment named in the Secret's label.
func baseline(ctx context.Context, c kubernetes.Interface) func() {
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "bench-group=baseline" }))
	inf := f.Core().V1().Secrets().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) {
		s := obj.(*corev1.Secret)
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench/baseline":%q}}}}}`, s.ResourceVersion)
		_, _ = c.AppsV1().Deployments(ns).Patch(ctx, s.Labels["bench-deployment"], types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	}})
	stop := make(chan struct{})
	f.Start(stop)
	f.WaitForCacheSync(stop)
	return func() { close(stop) }
}

// templateChanges records when each Deployment's pod template annotations last changed, as seen through a
// watch: both sides are observed the same way.
type templateChanges struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func watchTemplates(ctx context.Context, c kubernetes.Interface) *templateChanges {
	tc := &templateChanges{last: map[string]time.Time{}}
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := f.Apps().V1().Deployments().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
		o, n := oldObj.(*appsv1.Deployment), newObj.(*appsv1.Deployment)
		if o.Spec.Template.Annotations[api.AnnotationRestartHash] != n.Spec.Template.Annotations[api.AnnotationRestartHash] ||
			o.Spec.Template.Annotations["bench/baseline"] != n.Spec.Template.Annotations["bench/baseline"] {
			tc.mu.Lock()
			tc.last[n.Name] = time.Now()
			tc.mu.Unlock()
		}
	}})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return tc
}

func (tc *templateChanges) waitAfter(name string, after time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		tc.mu.Lock()
		t := tc.last[name]
		tc.mu.Unlock()
		if t.After(after) {
			return t, nil
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, errors.New("no template change")
}

type controllerProc struct {
	cmd            *exec.Cmd
	metrics, pprof string
}

// saveHeap writes the controller's heap profile (after a GC) for `go tool pprof`.
func (p *controllerProc) saveHeap(path string) error {
	resp, err := http.Get(p.pprof + "?gc=1") //nolint:gosec // a loopback address this program chose
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func startController(bin, kubeconfig, memLimit string) (*controllerProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pprofAddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "--leader-elect=false", "--pprof-bind-address", pprofAddr,
		"--settle-period=0", "--min-restart-interval=0", "--restart-rate=1000", "--restart-burst=1000",
		"--metrics-bind-address", addr, "--health-probe-bind-address", "0")
	logf, err := os.CreateTemp("", "certrollout-bench-controller-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (run `make build` first): %w", bin, err)
	}
	return &controllerProc{cmd: cmd, metrics: "http://" + addr + "/metrics", pprof: "http://" + pprofAddr + "/debug/pprof/heap"}, nil
}

func (p *controllerProc) stop() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() }

// peakRSS reads the kernel's high-water mark of the controller's resident memory, in MB.
func (p *controllerProc) peakRSS() (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// scrapeCost times n scrapes of the whole /metrics page.
func (p *controllerProc) scrapeCost(n int) (scrapeCost, error) {
	var out scrapeCost
	var ms []float64
	for range n {
		start := time.Now()
		resp, err := http.Get(p.metrics) //nolint:gosec // a loopback address this program chose
		if err != nil {
			return out, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return out, err
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		out.Bytes, out.CertrolloutSeries = len(body), 0
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "certrollout_") {
				out.CertrolloutSeries++
			}
		}
	}
	l := summarize(ms)
	out.P50Ms, out.MaxMs = l.P50, l.Max
	return out, nil
}

// requests scrapes certrollout_api_requests_total, summed by verb.
func (p *controllerProc) requests() (map[string]float64, error) {
	return p.scrape("certrollout_api_requests_total", "verb")
}

// scrape sums the samples of one metric by the value of one label ("" sums them all under "").
func (p *controllerProc) scrape(metric, label string) (map[string]float64, error) {
	resp, err := http.Get(p.metrics) //nolint:gosec // a loopback address this program chose
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		j := strings.LastIndexByte(line, ' ')
		if j < 0 {
			continue
		}
		v, _ := strconv.ParseFloat(line[j+1:], 64)
		key := ""
		if i := strings.Index(line, label+`="`); label != "" && i >= 0 {
			rest := line[i+len(label)+2:]
			key = rest[:strings.IndexByte(rest, '"')]
		}
		out[key] += v
	}
	return out, sc.Err()
}

func diff(a, b map[string]float64, per float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d / per
		}
	}
	return out
}

func summarize(ms []float64) latency {
	if len(ms) == 0 {
		return latency{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return latency{P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: s[len(s)-1], N: len(s)}
}

func print(r result) {
	fmt.Printf("\nrenewal → pod-template patch (ms), %d renewals each, settle period 0\n", r.Certrollout.N)
	fmt.Printf("%-12s %8s %8s %8s %8s\n", "", "p50", "p90", "p99", "max")
	for _, row := range []struct {
		name string
		l    latency
	}{{"certrollout", r.Certrollout}, {"baseline", r.Baseline}} {
		fmt.Printf("%-12s %8.1f %8.1f %8.1f %8.1f\n", row.name, row.l.P50, row.l.P90, row.l.P99, row.l.Max)
	}
	fmt.Printf("%-12s %8.2f %8s %8.2f\n", "ratio", r.RatioP50, "", r.RatioP99)
	fmt.Printf("\ncontroller peak RSS: %.1f MB\n", r.PeakRSSMB)
	fmt.Printf("API requests in steady state: %v\n", r.SteadyRequests)
	fmt.Printf("API requests per renewal:     %v\n", r.PerRenewal)
	fmt.Printf("/metrics scrape: p50 %.1f ms (max %.1f), %d certrollout series, %d KB\n",
		r.Scrape.P50Ms, r.Scrape.MaxMs, r.Scrape.CertrolloutSeries, r.Scrape.Bytes>>10)
}

func save(dir string, r result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, r.Date.Format("2006-01-02T15-04-05Z")+".json")
	fmt.Printf("\nsaved %s\n", path)
	return os.WriteFile(path, data, 0o644)
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, status := cond()
		if ok {
			return nil
		}
		if status != last {
			fmt.Fprintf(os.Stderr, "  waiting for %s: %s\n", what, status)
			last = status
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return fmt.Errorf("timed out waiting for %s (%s)", what, last)
}
