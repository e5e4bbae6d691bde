// Package clustertest gives a test package one real local cluster (package localcluster), started in
// TestMain and always torn down: by Main on a normal exit, and by the kernel (parent-death signal) when the
// test binary panics, times out or is killed.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/localcluster"
)

// EnvCluster names a folder holding a cluster started by `make cluster-up`; when set, tests reuse it
// instead of starting their own (quick iteration while developing).
const EnvCluster = "CERTROLLOUT_TEST_CLUSTER"

const tempPrefix = "certrollout-test-"

var shared *localcluster.Cluster

// Option adjusts the cluster a package starts.
type Option func(*localcluster.Options)

// WithoutCertManager starts no cert-manager, for packages that do not need it (faster start).
func WithoutCertManager() Option {
	return func(o *localcluster.Options) { o.WithoutCertManager = true }
}

// WithFastPods uses kwok's fast pod stages (pods Ready at once), for large-scale tests.
func WithFastPods() Option { return func(o *localcluster.Options) { o.PodStages = "fast" } }

// Main runs a package's tests against a cluster of its own. With -short it runs them without one, and
// tests that call Cluster are skipped.
func Main(m *testing.M, opts ...Option) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts []Option) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx := context.Background()
	if dir := os.Getenv(EnvCluster); dir != "" {
		c, err := localcluster.Attach(ctx, dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "clustertest: %s=%s: %v\n", EnvCluster, dir, err)
			return 1
		}
		shared = c
		return m.Run()
	}
	sweepStale()
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		fmt.Fprintf(os.Stderr, "clustertest: %v\n", err)
		return 1
	}
	o := localcluster.Options{Dir: dir, Log: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	start := time.Now()
	c, err := localcluster.Start(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "clustertest: starting the local cluster: %v\n", err)
		_ = os.RemoveAll(dir)
		return 1
	}
	fmt.Fprintf(os.Stderr, "clustertest: cluster ready in %s (%s)\n", time.Since(start).Round(time.Second), dir)
	shared = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "clustertest: stopping the local cluster: %v\n", err)
		code = 1
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "clustertest: logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

// sweepStale removes cluster folders left by test runs that were killed: no process uses them any more
// and they are old enough that no parallel test package can be starting in them.
func sweepStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, dir := range matches {
		fi, err := os.Stat(dir)
		if err != nil || time.Since(fi.ModTime()) < 30*time.Minute {
			continue
		}
		if len(localcluster.ProcessesUsing(dir)) == 0 {
			_ = os.RemoveAll(dir)
		}
	}
}

// Cluster returns the package's cluster, or skips the test when there is none (-short).
func Cluster(t testing.TB) *localcluster.Cluster {
	t.Helper()
	if shared == nil {
		t.Skip("needs the local cluster: run without -short, from a package whose TestMain calls clustertest.Main")
	}
	return shared
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for one test, named after it, ready for pods (its default ServiceAccount
// exists), and deletes it when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := base + "-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := c.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	Eventually(t, time.Minute, "the default ServiceAccount of "+name, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	return name
}

// Eventually polls cond until it holds, failing the test after timeout with what it waited for and the
// last error cond returned.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
