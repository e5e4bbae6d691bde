package main

// `make bench-check`: the wall time and peak memory of `certrollout check -A -o json` over a cluster with
// many Secrets, most of them large ones check has no use for. The target (PRODUCT.md): 20,000 Secrets,
// 15,000 of them 100 KB Helm releases, in under 5 s and 100 MB.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certrollout/certrollout/internal/testgen"
)

// checkConfig is the population of the check benchmark.
type checkConfig struct {
	helm, helmPayload int
	certSecrets       int
	// others are Opaque Secrets without certificates, a third each of 1 KB, 10 KB and 100 KB: large
	// Secrets the API server does not filter out for us, unlike Helm releases.
	others, configMaps, bundles int
	namespaces                  int
	deployments, replicas       int
	runs                        int
}

func (c *checkConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.helm, "check-helm", 15000, "check mode: Helm release Secrets (type helm.sh/release.v1)")
	fs.IntVar(&c.helmPayload, "check-helm-payload", 100<<10, "check mode: bytes of each Helm release Secret")
	fs.IntVar(&c.certSecrets, "check-cert-secrets", 2000, "check mode: TLS Secrets (leaf, chain, key, ca.crt)")
	fs.IntVar(&c.others, "check-others", 3000, "check mode: Opaque Secrets without certificates, a third each of 1 KB, 10 KB and 100 KB")
	fs.IntVar(&c.configMaps, "check-configmaps", 1000, "check mode: ConfigMaps without certificates (2 KB)")
	fs.IntVar(&c.bundles, "check-bundles", 100, "check mode: ConfigMaps holding a CA bundle")
	fs.IntVar(&c.namespaces, "check-namespaces", 10, "check mode: namespaces the objects are spread over")
	fs.IntVar(&c.deployments, "check-deployments", 200, "check mode: Deployments, each using one TLS Secret")
	fs.IntVar(&c.replicas, "check-replicas", 2, "check mode: pods per Deployment")
	fs.IntVar(&c.runs, "check-runs", 5, "check mode: times check is run (the first is reported apart: cold caches)")
}

type checkRun struct {
	WallMs    float64 `json:"wallMs"`
	PeakRSSMB float64 `json:"peakRSSMB"`
	ExitCode  int     `json:"exitCode"`
}

type checkResult struct {
	Date      time.Time      `json:"date"`
	Command   []string       `json:"command"`
	Config    map[string]any `json:"config"`
	Secrets   int            `json:"secrets"`
	Items     int            `json:"items"`
	Problems  int            `json:"problems"`
	Runs      []checkRun     `json:"runs"`
	MaxWallMs float64        `json:"maxWallMs"`
	MaxRSSMB  float64        `json:"maxPeakRSSMB"`
}

func checkNamespace(i int) string { return fmt.Sprintf("bench-check-%02d", i) }

func runCheckBench(ctx context.Context, c config, cc checkConfig) error {
	if cc.namespaces < 1 || cc.runs < 1 || cc.certSecrets < cc.deployments {
		return errors.New("--check-namespaces and --check-runs must be at least 1, --check-cert-secrets at least --check-deployments")
	}
	// cluster() sizes the kwok nodes from these.
	c.deployments, c.replicas = cc.deployments, cc.replicas
	cl, stop, err := cluster(ctx, c)
	if err != nil {
		return err
	}
	defer stop()
	total := cc.helm + cc.certSecrets + cc.others
	fmt.Fprintf(os.Stderr, "Creating %d Secrets (%d Helm releases of %d KB, %d with certificates, %d others up to 100 KB), %d ConfigMaps and %d Deployments × %d pods in %d namespaces.\n",
		total, cc.helm, cc.helmPayload>>10, cc.certSecrets, cc.others, cc.configMaps+cc.bundles, cc.deployments, cc.replicas, cc.namespaces)
	start := time.Now()
	if err := populateCheck(ctx, cl.Client, cc); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Created them in %s.\n", time.Since(start).Round(time.Second))
	if err := waitFor(ctx, 15*time.Minute, "every Deployment to be available", func() (bool, string) {
		ready := 0
		for i := range cc.namespaces {
			list, err := cl.Client.AppsV1().Deployments(checkNamespace(i)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, d := range list.Items {
				if d.Status.AvailableReplicas == *d.Spec.Replicas {
					ready++
				}
			}
		}
		return ready == cc.deployments, fmt.Sprintf("%d/%d available", ready, cc.deployments)
	}); err != nil {
		return err
	}

	args := []string{"check", "-A", "-o", "json", "--kubeconfig", cl.Kubeconfig}
	res := checkResult{
		Date: time.Now().UTC(), Command: append([]string{c.controller}, args...), Secrets: total,
		Config: map[string]any{"helmSecrets": cc.helm, "helmPayloadBytes": cc.helmPayload, "certSecrets": cc.certSecrets,
			"otherSecrets": cc.others, "configMaps": cc.configMaps, "caBundles": cc.bundles, "namespaces": cc.namespaces,
			"deployments": cc.deployments, "replicas": cc.replicas},
	}
	for i := range cc.runs {
		run, rep, err := timeCheck(ctx, c.controller, args)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  run %d: %.0f ms, peak RSS %.1f MB, %d items, %d problems, exit %d\n", i+1, run.WallMs, run.PeakRSSMB, len(rep.Items), len(rep.Problems), run.ExitCode)
		res.Runs = append(res.Runs, run)
		res.Items, res.Problems = len(rep.Items), len(rep.Problems)
		res.MaxWallMs = max(res.MaxWallMs, run.WallMs)
		res.MaxRSSMB = max(res.MaxRSSMB, run.PeakRSSMB)
	}
	// Sanity: every TLS Secret shows up (tls.crt and ca.crt), so the run measured real work.
	if res.Items < 2*cc.certSecrets {
		return fmt.Errorf("check listed %d items, want at least %d (two keys per TLS Secret)", res.Items, 2*cc.certSecrets)
	}
	walls := make([]float64, 0, len(res.Runs))
	for _, r := range res.Runs {
		walls = append(walls, r.WallMs)
	}
	slices.Sort(walls)
	fmt.Printf("\ncertrollout check -A -o json over %d Secrets (%d × %d KB Helm releases), %d runs\n", total, cc.helm, cc.helmPayload>>10, cc.runs)
	fmt.Printf("wall time: median %.0f ms, max %.0f ms (target < 5000 ms)\n", walls[len(walls)/2], res.MaxWallMs)
	fmt.Printf("peak RSS:  max %.1f MB (target < 100 MB)\n", res.MaxRSSMB)
	fmt.Printf("items %d, problems %d\n", res.Items, res.Problems)
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(c.out, res.Date.Format("2006-01-02T15-04-05Z")+"-check.json")
	fmt.Printf("\nsaved %s\n", path)
	return os.WriteFile(path, data, 0o644)
}

// timeCheck runs check once: wall time from start to exit, and the kernel's high-water mark of its
// resident memory (getrusage of the child), so nothing is sampled and no peak is missed.
func timeCheck(ctx context.Context, bin string, args []string) (checkRun, *struct {
	Items    []json.RawMessage `json:"items"`
	Problems []json.RawMessage `json:"problems"`
}, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var run checkRun
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() <= 2:
		// 1 and 2 are findings (something expires), not failures.
		run.ExitCode = exit.ExitCode()
	default:
		return run, nil, fmt.Errorf("%s %v: %w\n%s", bin, args, err, errOut.String())
	}
	run.WallMs = float64(wall.Microseconds()) / 1000
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.PeakRSSMB = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	var rep struct {
		Items    []json.RawMessage `json:"items"`
		Problems []json.RawMessage `json:"problems"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return run, nil, fmt.Errorf("check printed no CheckReport: %w", err)
	}
	return run, &rep, nil
}

func populateCheck(ctx context.Context, c kubernetes.Interface, cc checkConfig) error {
	for i := range cc.namespaces {
		_, _ = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: checkNamespace(i)}}, metav1.CreateOptions{})
		if err := waitFor(ctx, time.Minute, "the default ServiceAccount of "+checkNamespace(i), func() (bool, string) {
			_, err := c.CoreV1().ServiceAccounts(checkNamespace(i)).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, fmt.Sprint(err)
		}); err != nil {
			return err
		}
	}
	ca := testgen.CA(fatal{}, "bench-check-ca")
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	helm := fill(cc.helmPayload)
	sizes := [][]byte{fill(1 << 10), fill(10 << 10), fill(100 << 10)}
	work := make(chan func() error)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for f := range work {
				if err := f(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	ns := func(i int) string { return checkNamespace(i % cc.namespaces) }
	create := func(s *corev1.Secret) error {
		_, err := c.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		return ignoreExists(err)
	}
	for i := range cc.certSecrets {
		work <- func() error {
			leaf := testgen.Leaf(fatal{}, ca, fmt.Sprintf("svc-%05d", i))
			return create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: fmt.Sprintf("tls-%05d", i)}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(fatal{}), "ca.crt": ca.PEM()}})
		}
	}
	for i := range cc.helm {
		work <- func() error {
			return create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: fmt.Sprintf("sh.helm.release.v1.app-%05d.v1", i), Labels: map[string]string{"owner": "helm"}},
				Type: "helm.sh/release.v1", Data: map[string][]byte{"release": helm}})
		}
	}
	for i := range cc.others {
		work <- func() error {
			return create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: fmt.Sprintf("opaque-%05d", i)},
				Data: map[string][]byte{"config": sizes[i%len(sizes)]}})
		}
	}
	for i := range cc.configMaps + cc.bundles {
		work <- func() error {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns(i), Name: fmt.Sprintf("cm-%05d", i)}, Data: map[string]string{"settings": string(sizes[0]) + string(sizes[0])}}
			if i >= cc.configMaps {
				cm.Data = map[string]string{"ca.crt": string(ca.PEM())}
			}
			_, err := c.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
			return ignoreExists(err)
		}
	}
	for d := range cc.deployments {
		work <- func() error {
			replicas := int32(cc.replicas) //nolint:gosec // a small count from a flag
			// Deployment d uses TLS Secret d, which is in namespace d % namespaces too.
			dep := testgen.Deployment(ns(d), fmt.Sprintf("app-%04d", d), replicas, []testgen.PodOption{testgen.WithSecretVolume(fmt.Sprintf("tls-%05d", d))})
			_, err := c.AppsV1().Deployments(dep.Namespace).Create(ctx, dep, metav1.CreateOptions{})
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
