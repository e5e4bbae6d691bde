// Package chaos runs a small version of each `make chaos` scenario (internal/chaos) on the package's
// local cluster with the real controller binary: the counters promised to be zero must be zero.
package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/certrollout/certrollout/internal/chaos"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard()) // the scenarios' own client would otherwise warn that no logger is set
	clustertest.Main(m)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// env builds the controller once (as `make build` does) and returns the scenarios' environment.
func env(t *testing.T) *chaos.Env {
	t.Helper()
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	binOnce.Do(func() {
		root, err := localcluster.FindRepoRoot(".")
		if err != nil {
			binErr = err
			return
		}
		dir, err := os.MkdirTemp("", "certrollout-chaos-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "certrollout")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/certrollout")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			binErr = err
			t.Logf("%s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("building certrollout: %v", binErr)
	}
	return &chaos.Env{Cluster: c, Binary: binPath, LogDir: t.TempDir(), Log: testLog{t}}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func zeros(t *testing.T, r chaos.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", r.Scenario, err)
	}
	t.Logf("%s: %+v", r.Scenario, r)
	if r.LostCounts+r.DoubleRestarts+r.Stuck > 0 {
		t.Fatalf("%s: %d replica counts lost, %d double restarts, %d stuck:\n%s", r.Scenario, r.LostCounts, r.DoubleRestarts, r.Stuck, strings.Join(r.Problems, "\n"))
	}
}

func TestSIGKILLedControllerLosesNothing(t *testing.T) {
	e := env(t)
	r, err := e.Kill(context.Background(), 2, 2, time.Second, 4*time.Second)
	zeros(t, r, err)
	if r.Kills == 0 || r.Orchestrations != 4 {
		t.Fatalf("%d kills over %d orchestrations: the scenario did not run as meant", r.Kills, r.Orchestrations)
	}
}

func TestKilledLeaderFailsOverWithoutSpuriousRestarts(t *testing.T) {
	e := env(t)
	r, err := e.Failover(context.Background(), 1, 2, 3, 3*time.Second)
	zeros(t, r, err)
	if r.Failovers != 3 || len(r.TakeoverMillis) != 3 {
		t.Fatalf("%d failovers, takeovers %v: want 3", r.Failovers, r.TakeoverMillis)
	}
}

func TestARolloutResumesAfterTheAPIServerRestarts(t *testing.T) {
	e := env(t)
	r, err := e.APIServer(context.Background(), 1, 2*time.Second)
	zeros(t, r, err)
	if r.APIServerRestarts != 1 || r.Orchestrations != 1 {
		t.Fatalf("%d API server restarts over %d orchestrations", r.APIServerRestarts, r.Orchestrations)
	}
}

func TestAFlappingSecretIsBoundedAndTripsTheBreaker(t *testing.T) {
	e := env(t)
	r, err := e.Flap(context.Background(), 20*time.Second, 4*time.Second, 3)
	zeros(t, r, err)
	if !r.BreakerTripped || r.Restarts != 3 {
		t.Fatalf("%d restarts (bound %d), breaker tripped %v: want the budget of 3 spent and the breaker tripped", r.Restarts, r.Bound, r.BreakerTripped)
	}
}
