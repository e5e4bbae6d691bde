// Command chaos runs the chaos scenarios (internal/chaos) at full size on a local cluster of its own, with
// the controller binary of `make build`, prints the table the README shows and writes
// bench/results/chaos.json. `make chaos` runs it; `go run ./hack/chaos -h` lists the sizes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/config/crd"
	"github.com/certrollout/certrollout/internal/chaos"
	"github.com/certrollout/certrollout/internal/localcluster"
)

func main() {
	var (
		bin          = flag.String("controller", "bin/certrollout", "the certrollout binary to run (make build)")
		out          = flag.String("out", "bench/results/chaos.json", "where to write the results")
		only         = flag.String("only", "", "run only these scenarios (comma-separated: kill,failover,apiserver,flap)")
		killNS       = flag.Int("kill-namespaces", 20, "kill: namespaces running orchestrations at once")
		killRounds   = flag.Int("kill-rounds", 5, "kill: orchestrations per namespace")
		failovers    = flag.Int("failovers", 50, "failover: leader kills")
		foRounds     = flag.Int("failover-rounds", 6, "failover: orchestrations per namespace (5 namespaces) meanwhile")
		apiRounds    = flag.Int("apiserver-rounds", 3, "apiserver: orchestrations, each with an API server restart")
		flapDuration = flag.Duration("flap", 10*time.Minute, "flap: how long the Secret changes every second")
	)
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, *bin, *out, *only, func(e *chaos.Env, name string) (chaos.Result, error) {
		switch name {
		case "kill":
			return e.Kill(ctx, *killNS, *killRounds, time.Second, 5*time.Second)
		case "failover":
			return e.Failover(ctx, 5, *foRounds, *failovers, 5*time.Second)
		case "apiserver":
			return e.APIServer(ctx, *apiRounds, 5*time.Second)
		default:
			return e.Flap(ctx, *flapDuration, time.Minute, 6)
		}
	}); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, out, only string, scenario func(*chaos.Env, string) (chaos.Result, error)) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("%s: run `make build` first", bin)
	}
	dir, err := os.MkdirTemp("", "certrollout-chaos-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Starting a cluster in %s; controller logs in %s/controllers.\n", dir, dir)
	c, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), PodStages: "fast", WithoutCertManager: true, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop() }()
	crds, err := crd.All()
	if err != nil {
		return err
	}
	if err := c.InstallCRDs(ctx, api.GroupVersion.Group, crds...); err != nil {
		return err
	}
	logs := filepath.Join(dir, "controllers")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	e := &chaos.Env{Cluster: c, Binary: abs, LogDir: logs, Log: os.Stderr}
	names := []string{"kill", "failover", "apiserver", "flap"}
	if only != "" {
		names = strings.Split(only, ",")
	}
	var results []chaos.Result
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "Scenario %s.\n", name)
		r, err := scenario(e, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	print(results)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "results": results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil { //nolint:gosec // results, meant to be read
		return err
	}
	for _, r := range results {
		if r.LostCounts+r.DoubleRestarts+r.Stuck > 0 {
			return fmt.Errorf("%s: %s", r.Scenario, strings.Join(r.Problems, "; "))
		}
	}
	return nil
}

func print(results []chaos.Result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tfaults\torchestrations\tlost counts\tdouble restarts\tstuck\ttakeover p50 / max\trestarts (bound)\tbreaker\tseconds")
	for _, r := range results {
		faults := fmt.Sprintf("%d kills", r.Kills)
		switch {
		case r.Failovers > 0:
			faults = fmt.Sprintf("%d failovers", r.Failovers)
		case r.APIServerRestarts > 0:
			faults = fmt.Sprintf("%d API server restarts", r.APIServerRestarts)
		case r.Flaps > 0:
			faults = fmt.Sprintf("%d flaps", r.Flaps)
		}
		takeover, restarts, breaker := "-", "-", "-"
		if n := len(r.TakeoverMillis); n > 0 {
			s := slices.Sorted(slices.Values(r.TakeoverMillis))
			takeover = fmt.Sprintf("%.1f s / %.1f s", float64(s[n/2])/1000, float64(s[n-1])/1000)
		}
		if r.Flaps > 0 {
			restarts, breaker = fmt.Sprintf("%d (%d)", r.Restarts, r.Bound), fmt.Sprint(r.BreakerTripped)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%.0f\n", r.Scenario, faults, r.Orchestrations, r.LostCounts, r.DoubleRestarts, r.Stuck, takeover, restarts, breaker, r.Seconds)
	}
	_ = w.Flush()
}
