// Package chaos runs certrollout's controller as real processes on a local cluster and hurts it the way
// production does: SIGKILL at random moments, the leader killed so its lease expires, kube-apiserver
// killed and restarted, a Secret that never stops changing. Each scenario counts what must stay zero
// (replica counts lost, double restarts, stuck rollouts) and measures what it can (failover takeover
// time). `make chaos` runs them at full size (hack/chaos); test/chaos runs a small version of each.
package chaos

import (
	"context"
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
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// Result is what one scenario did and what it found. The counters in the second group are promised to
// be zero.
type Result struct {
	Scenario string `json:"scenario"`
	// Orchestrations are the OpsChain-style rollouts (quiesce, restart, restore) that ran.
	Orchestrations int `json:"orchestrations"`
	// Kills, Failovers, APIServerRestarts and Flaps are the faults injected.
	Kills             int `json:"kills"`
	Failovers         int `json:"failovers"`
	APIServerRestarts int `json:"apiServerRestarts"`
	Flaps             int `json:"flaps"`

	LostCounts     int `json:"lostCounts"`
	DoubleRestarts int `json:"doubleRestarts"`
	Stuck          int `json:"stuck"`

	// TakeoverMillis are the failover times: from the leader's SIGKILL until the other replica holds
	// the lease.
	TakeoverMillis []int64 `json:"takeoverMillis,omitempty"`
	// Restarts is how many times the flapping Secret's consumer restarted, Bound the most the cooldown
	// and the budget allow, BreakerTripped whether the breaker said so.
	Restarts       int  `json:"restarts,omitempty"`
	Bound          int  `json:"bound,omitempty"`
	BreakerTripped bool `json:"breakerTripped,omitempty"`
	// Problems describe every non-zero counter.
	Problems []string `json:"problems,omitempty"`
	Seconds  float64  `json:"seconds"`
}

func (r *Result) problem(counter *int, format string, args ...any) {
	*counter++
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Env is the cluster and the controller binary the scenarios run.
type Env struct {
	Cluster *localcluster.Cluster
	// Binary is a built certrollout.
	Binary string
	// LogDir receives each controller process's log.
	LogDir string
	// Log, when set, gets a line per step.
	Log io.Writer

	client client.Client
	seq    int
	mu     sync.Mutex
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", args...)
	}
}

func (e *Env) cl() (client.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := api.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(e.Cluster.Config, client.Options{Scheme: s})
	e.client = c
	return c, err
}

// controller is one running controller process.
type controller struct {
	cmd     *exec.Cmd
	metrics string
	done    chan struct{}
}

// start runs the controller binary with args (after the kubeconfig and a metrics address of its own).
func (e *Env) start(args ...string) (*controller, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	logf, err := os.Create(filepath.Join(e.LogDir, fmt.Sprintf("controller-%03d.log", n)))
	if err != nil {
		return nil, err
	}
	full := append([]string{"controller", "--kubeconfig", e.Cluster.Kubeconfig, "--metrics-bind-address", addr, "--health-probe-bind-address", "0"}, args...)
	cmd := exec.Command(e.Binary, full...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", e.Binary, err)
	}
	c := &controller{cmd: cmd, metrics: "http://" + addr + "/metrics", done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(c.done) }()
	return c, nil
}

// kill sends SIGKILL and waits for the process to be gone: no shutdown, no lease release.
func (c *controller) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// leading reports whether the process says it holds the leader lease.
func (c *controller) leading() bool {
	resp, err := http.Get(c.metrics) //nolint:gosec,noctx // a loopback address this package chose
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "leader_election_master_status") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// quick are the controller flags every scenario shares: no settle wait beyond a second, no cooldown or
// budget unless a scenario sets one, no rate or concurrency limit in the way of the faults.
var quick = []string{"--settle-period=1s", "--min-restart-interval=0", "--max-restarts-per-day=0",
	"--restart-rate=100", "--restart-burst=100", "--max-concurrent-rollouts=0", "--max-concurrent-rollouts-per-namespace=0"}

// opsChain is one namespace of the OpsChain procedure: build (restarted when build-tls is renewed, under
// policy build) and workers (3 replicas, quiesced while build restarts).
type opsChain struct {
	ns     string
	ca     *testgen.Cert
	rounds int // renewals made
	// baseRollouts and baseBuilds are the CertRollouts and build's ReplicaSets before the first renewal.
	baseRollouts, baseBuilds int
}

const workers = int32(3)

func (e *Env) newOpsChain(ctx context.Context, name string) (*opsChain, error) {
	c, err := e.cl()
	if err != nil {
		return nil, err
	}
	o := &opsChain{ns: name, ca: testgen.CA(fatal{}, "chaos-"+name)}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	build := testgen.Deployment(name, "build", 1, []testgen.PodOption{testgen.WithSecretVolume("build-tls")})
	build.Labels = map[string]string{"role": "build"}
	w := testgen.Deployment(name, "workers", workers, nil, testgen.SlowToTerminate(500*time.Millisecond))
	p := &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "build"}, Spec: api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "build"}},
		Quiesce:       []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: metav1.Duration{Duration: 2 * time.Minute}}},
		HealthTimeout: metav1.Duration{Duration: 2 * time.Minute},
		// Every rollout is kept, so each renewal's rollout can be checked.
		RolloutHistoryLimit: 1000,
	}}
	// The policy first: build is governed from its first sight, so the controller records its ledger then.
	for _, obj := range []client.Object{p, o.secret()} {
		if err := c.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %s/%s: %w", name, obj.GetName(), err)
		}
	}
	// Pods that start in the second the certificate was written count as stale (a spare restart beats a
	// missed one): start them a second later, so the first renewal is the first rollout.
	time.Sleep(1100 * time.Millisecond)
	for _, obj := range []client.Object{build, w} {
		if err := c.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %s/%s: %w", name, obj.GetName(), err)
		}
	}
	return o, nil
}

func (o *opsChain) secret() *corev1.Secret {
	leaf := testgen.Leaf(fatal{}, o.ca, "build")
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "build-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(fatal{}), "ca.crt": o.ca.PEM()}}
}

// fatal is a testgen.TB outside tests: generating a certificate cannot fail short of a broken machine.
type fatal struct{}

func (fatal) Helper()           {}
func (fatal) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// settled waits until build and workers are available with their template, the ledger of build records
// the current certificates, and (from the second round on) the round's rollout has finished.
func (e *Env) settled(ctx context.Context, o *opsChain, timeout time.Duration) (string, error) {
	c, _ := e.cl()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why, err := o.check(ctx, c)
		if err != nil {
			return "", err
		}
		if ok {
			return "", nil
		}
		last = why
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return last, nil
}

// settle waits for a new namespace to be ready for its first renewal.
func (e *Env) settle(ctx context.Context, o *opsChain) error {
	why, err := e.settled(ctx, o, 3*time.Minute)
	switch {
	case err != nil:
		return fmt.Errorf("%s never settled before its first renewal: %w", o.ns, err)
	case why != "":
		return fmt.Errorf("%s never settled before its first renewal: %s", o.ns, why)
	}
	// What is there now predates the faults: the counts are checked against it.
	c, _ := e.cl()
	var ros api.CertRolloutList
	if err := c.List(ctx, &ros, client.InNamespace(o.ns)); err != nil {
		return err
	}
	o.baseRollouts = len(ros.Items)
	o.baseBuilds, err = e.replicaSets(ctx, o.ns, "build")
	return err
}

func (o *opsChain) check(ctx context.Context, c client.Client) (bool, string, error) {
	var ros api.CertRolloutList
	if err := c.List(ctx, &ros, client.InNamespace(o.ns)); err != nil {
		return false, "", err
	}
	finished := 0
	for _, ro := range ros.Items {
		if !ro.Status.Phase.Finished() {
			return false, "CertRollout " + ro.Name + " is " + string(ro.Status.Phase), nil
		}
		finished++
	}
	if finished < o.baseRollouts+o.rounds {
		return false, fmt.Sprintf("%d of %d rollouts created", finished-o.baseRollouts, o.rounds), nil
	}
	for _, name := range []string{"build", "workers"} {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: name}, &d); err != nil {
			return false, "", err
		}
		want := *d.Spec.Replicas
		if name == "workers" && (want != workers || d.Annotations[api.AnnotationQuiescedBy] != "") {
			return false, fmt.Sprintf("workers at %d replicas, quiesced by %q", want, d.Annotations[api.AnnotationQuiescedBy]), nil
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want || d.Status.Replicas != want {
			return false, name + " is rolling out", nil
		}
		if name == "build" && d.Annotations[api.AnnotationCertificateHash] == "" {
			return false, "build has no ledger yet", nil
		}
	}
	return true, "", nil
}

// renew writes a new leaf into build-tls: one more orchestration is due.
func (e *Env) renew(ctx context.Context, o *opsChain) error {
	c, _ := e.cl()
	if err := c.Update(ctx, o.secret()); err != nil {
		return err
	}
	o.rounds++
	return nil
}

// verify counts what the rounds left wrong: every rollout must have succeeded, the workers must be back at
// their 3 replicas without marks, and build must have rolled exactly once per renewal.
func (e *Env) verify(ctx context.Context, o *opsChain, r *Result) error {
	c, _ := e.cl()
	var ros api.CertRolloutList
	if err := c.List(ctx, &ros, client.InNamespace(o.ns)); err != nil {
		return err
	}
	for _, ro := range ros.Items {
		if ro.Status.Phase != api.PhaseSucceeded {
			r.problem(&r.Stuck, "%s: CertRollout %s ended %s: %s", o.ns, ro.Name, ro.Status.Phase, ro.Status.Message)
		}
	}
	if n := len(ros.Items) - o.baseRollouts; n != o.rounds {
		r.problem(&r.DoubleRestarts, "%s: %d CertRollouts for %d renewals", o.ns, n, o.rounds)
	}
	var w appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: "workers"}, &w); err != nil {
		return err
	}
	if *w.Spec.Replicas != workers || w.Annotations[api.AnnotationQuiescedBy] != "" || w.Annotations[api.AnnotationQuiescedReplicas] != "" {
		r.problem(&r.LostCounts, "%s: workers end at %d replicas (quiesced by %q, recorded %q), want %d", o.ns, *w.Spec.Replicas,
			w.Annotations[api.AnnotationQuiescedBy], w.Annotations[api.AnnotationQuiescedReplicas], workers)
	}
	// The workers' template never changes: each scale-down and restore keeps one ReplicaSet.
	if n, err := e.replicaSets(ctx, o.ns, "workers"); err != nil {
		return err
	} else if n != 1 {
		r.problem(&r.DoubleRestarts, "%s: workers has %d ReplicaSets: its template was changed", o.ns, n)
	}
	n, err := e.replicaSets(ctx, o.ns, "build")
	if err != nil {
		return err
	}
	if rolled := n - o.baseBuilds; rolled > o.rounds {
		r.problem(&r.DoubleRestarts, "%s: build rolled %d times for %d renewals", o.ns, rolled, o.rounds)
	} else if rolled < o.rounds {
		r.problem(&r.Stuck, "%s: build rolled %d times for %d renewals", o.ns, rolled, o.rounds)
	}
	r.Orchestrations += o.rounds
	return nil
}

func (e *Env) replicaSets(ctx context.Context, ns, app string) (int, error) {
	c, _ := e.cl()
	var rs appsv1.ReplicaSetList
	if err := c.List(ctx, &rs, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		return 0, err
	}
	return len(rs.Items), nil
}

// runRounds sets up namespaces prefix-0..n-1 and, in each, renews build-tls rounds times, waiting for
// every rollout to finish between two renewals; then verifies each namespace into r. Faults run meanwhile.
func (e *Env) runRounds(ctx context.Context, prefix string, namespaces, rounds int, r *Result) error {
	chains := make([]*opsChain, namespaces)
	for i := range chains {
		o, err := e.newOpsChain(ctx, fmt.Sprintf("%s-%02d", prefix, i))
		if err != nil {
			return err
		}
		chains[i] = o
	}
	var wg sync.WaitGroup
	errs := make([]error, namespaces)
	for i, o := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.settle(ctx, o); err != nil {
				errs[i] = err
				return
			}
			for round := range rounds {
				if err := e.renew(ctx, o); err != nil {
					errs[i] = err
					return
				}
				why, err := e.settled(ctx, o, 4*time.Minute)
				if err != nil {
					errs[i] = err
					return
				}
				if why != "" {
					e.mu.Lock()
					r.problem(&r.Stuck, "%s: round %d did not finish in 4 minutes: %s", o.ns, round+1, why)
					e.mu.Unlock()
					return
				}
				e.logf("%s: round %d done", o.ns, round+1)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, o := range chains {
		if err := e.verify(ctx, o, r); err != nil {
			return err
		}
	}
	return nil
}

// Kill runs namespaces×rounds orchestrations while one controller process is SIGKILLed every
// minKill..maxKill (uniformly at random) and started again at once.
func (e *Env) Kill(ctx context.Context, namespaces, rounds int, minKill, maxKill time.Duration) (Result, error) {
	r := Result{Scenario: "kill"}
	began := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := e.start(append(slices.Clone(quick), "--leader-elect=false")...)
	if err != nil {
		return r, err
	}
	var mu sync.Mutex
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(minKill + rand.N(maxKill-minKill+1)): //nolint:gosec // timing jitter, not a secret
			}
			mu.Lock()
			c.kill()
			r.Kills++
			next, err := e.start(append(slices.Clone(quick), "--leader-elect=false")...)
			if err != nil {
				e.logf("restarting the controller: %v", err)
				mu.Unlock()
				return
			}
			c = next
			mu.Unlock()
		}
	}()
	err = e.runRounds(ctx, "chaos-kill", namespaces, rounds, &r)
	cancel()
	<-stopped
	mu.Lock()
	c.kill()
	mu.Unlock()
	r.Seconds = time.Since(began).Seconds()
	return r, err
}

// Failover runs two controller replicas with leader election and kills the leader with SIGKILL (its lease
// expires; nothing releases it) failovers times, every interval, while namespaces×rounds orchestrations run.
// Each takeover is timed from the kill until the other replica leads.
func (e *Env) Failover(ctx context.Context, namespaces, rounds, failovers int, interval time.Duration) (Result, error) {
	r := Result{Scenario: "failover"}
	began := time.Now()
	args := append(slices.Clone(quick), "--leader-elect=true", "--leader-election-namespace=default",
		"--leader-election-lease-duration=4s", "--leader-election-renew-deadline=3s", "--leader-election-retry-period=500ms")
	replicas := make([]*controller, 2)
	for i := range replicas {
		c, err := e.start(args...)
		if err != nil {
			return r, err
		}
		replicas[i] = c
	}
	defer func() {
		for _, c := range replicas {
			c.kill()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	faults := make(chan error, 1)
	go func() {
		for range failovers {
			select {
			case <-ctx.Done():
				faults <- nil
				return
			case <-time.After(interval):
			}
			leader := -1
			for try := 0; leader < 0 && try < 200; try++ {
				for i, c := range replicas {
					if c.leading() {
						leader = i
					}
				}
				if leader < 0 {
					time.Sleep(100 * time.Millisecond)
				}
			}
			if leader < 0 {
				faults <- fmt.Errorf("no replica leads after 20 s")
				return
			}
			killed := time.Now()
			replicas[leader].kill()
			other := replicas[1-leader]
			for !other.leading() {
				if time.Since(killed) > time.Minute {
					faults <- fmt.Errorf("the standby did not take over within a minute")
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			r.TakeoverMillis = append(r.TakeoverMillis, time.Since(killed).Milliseconds())
			r.Failovers++
			c, err := e.start(args...)
			if err != nil {
				faults <- err
				return
			}
			replicas[leader] = c
		}
		faults <- nil
	}()
	err := e.runRounds(ctx, "chaos-failover", namespaces, rounds, &r)
	if err == nil {
		// The rounds may end before the last failovers: keep the cluster busy until they are done.
		err = <-faults
	} else {
		cancel()
	}
	r.Seconds = time.Since(began).Seconds()
	return r, err
}

// APIServer runs rounds orchestrations in one namespace and, in each, kills kube-apiserver (SIGKILL) once
// the rollout is under way, keeps it down for down, and starts it again: every rollout must resume and
// finish.
func (e *Env) APIServer(ctx context.Context, rounds int, down time.Duration) (Result, error) {
	r := Result{Scenario: "apiserver"}
	began := time.Now()
	c, err := e.start(append(slices.Clone(quick), "--leader-elect=false")...)
	if err != nil {
		return r, err
	}
	defer func() { c.kill() }()
	o, err := e.newOpsChain(ctx, "chaos-apiserver")
	if err != nil {
		return r, err
	}
	if err := e.settle(ctx, o); err != nil {
		return r, err
	}
	cl, _ := e.cl()
	for round := range rounds {
		if err := e.renew(ctx, o); err != nil {
			return r, err
		}
		// Wait for the rollout to be mid-way (quiescing or restarting), then take the API away.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			var ros api.CertRolloutList
			if err := cl.List(ctx, &ros, client.InNamespace(o.ns)); err != nil {
				return r, err
			}
			midway := slices.ContainsFunc(ros.Items, func(ro api.CertRollout) bool {
				return ro.Status.Phase == api.PhaseQuiescing || ro.Status.Phase == api.PhaseRestarting
			})
			if midway {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := e.Cluster.RestartAPIServer(ctx, down); err != nil {
			return r, err
		}
		r.APIServerRestarts++
		why, err := e.settled(ctx, o, 4*time.Minute)
		if err != nil {
			return r, err
		}
		if why != "" {
			r.problem(&r.Stuck, "round %d did not finish after the API server came back: %s", round+1, why)
			break
		}
		e.logf("apiserver: round %d done", round+1)
	}
	err = e.verify(ctx, o, &r)
	r.Seconds = time.Since(began).Seconds()
	return r, err
}

// Flap rewrites one opted-in workload's Secret with a new certificate every second for duration, under a
// cooldown and a daily restart budget: the workload restarts no more than both allow, and the breaker
// trips once the budget is spent.
func (e *Env) Flap(ctx context.Context, duration, cooldown time.Duration, budget int) (Result, error) {
	r := Result{Scenario: "flap"}
	began := time.Now()
	// No settle period: each change is due at once, and only the cooldown and the budget hold it.
	args := []string{"--leader-elect=false", "--settle-period=0s", "--restart-rate=100", "--restart-burst=100",
		"--min-restart-interval=" + cooldown.String(), "--max-restarts-per-day=" + strconv.Itoa(budget)}
	c, err := e.start(args...)
	if err != nil {
		return r, err
	}
	defer func() { c.kill() }()
	cl, err := e.cl()
	if err != nil {
		return r, err
	}
	o := &opsChain{ns: "chaos-flap", ca: testgen.CA(fatal{}, "chaos-flap")}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return r, err
	}
	d := testgen.Deployment(o.ns, "api", 1, []testgen.PodOption{testgen.WithSecretVolume("build-tls")}, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	for _, obj := range []client.Object{o.secret(), d} {
		if err := cl.Create(ctx, obj); err != nil {
			return r, err
		}
	}
	// Let the controller record the ledger first: the flapping starts from a workload on its certificates.
	for start := time.Now(); ; {
		var got appsv1.Deployment
		if err := cl.Get(ctx, client.ObjectKeyFromObject(d), &got); err != nil {
			return r, err
		}
		if got.Annotations[api.AnnotationCertificateHash] != "" {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return r, fmt.Errorf("the flapping workload's ledger was never recorded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	flapStart := time.Now()
	for time.Since(flapStart) < duration {
		if err := cl.Update(ctx, o.secret()); err != nil {
			return r, err
		}
		r.Flaps++
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second) // a restart decided at the last flap lands
	n, err := e.replicaSets(ctx, o.ns, "api")
	if err != nil {
		return r, err
	}
	r.Restarts = n - 1
	r.Bound = 1 + int(duration/max(cooldown, time.Second))
	if budget > 0 && budget < r.Bound {
		r.Bound = budget
	}
	if r.Restarts > r.Bound {
		r.problem(&r.DoubleRestarts, "the flapping workload restarted %d times; cooldown %s and budget %d allow %d", r.Restarts, cooldown, budget, r.Bound)
	}
	var evs corev1.EventList
	if err := cl.List(ctx, &evs, client.InNamespace(o.ns)); err != nil {
		return r, err
	}
	r.BreakerTripped = slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool { return ev.Reason == api.ReasonRestartBudget })
	if budget > 0 && r.Restarts >= budget && !r.BreakerTripped {
		r.problem(&r.Stuck, "the budget of %d was spent but no %s Event says so", budget, api.ReasonRestartBudget)
	}
	r.Seconds = time.Since(began).Seconds()
	return r, nil
}
