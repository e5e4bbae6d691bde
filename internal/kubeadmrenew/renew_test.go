package kubeadmrenew

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/kubeadmtest"
)

func names(rs []Renewed) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func reasons(items []Item) map[string]Reason {
	out := map[string]Reason{}
	for _, it := range items {
		out[it.Name] = it.Reason
	}
	return out
}

func TestRenewRenewsOnlyWhatIsDueAndBacksUpWhatItReplaces(t *testing.T) {
	n := kubeadmtest.NewNode(t, kubeadmtest.Binary(t), "cp-1", validityLines(shortValidity)).Copy(t)
	// apiserver and admin.conf renewed with a longer validity: not due when the others are.
	if _, err := Renew(Options{Dir: n.Dir, Names: []string{"apiserver", "admin.conf"}, Validity: renewedValidity, BackupDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pki/front-proxy-ca.key", "super-admin.conf"} {
		if err := os.Remove(filepath.Join(n.Dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Dir: n.Dir, RenewBefore: 72 * time.Hour, Validity: renewedValidity, BackupDir: t.TempDir()}
	want := map[string]Reason{
		"apiserver": ReasonNotDue, "admin.conf": ReasonNotDue,
		"front-proxy-client": ReasonExternallyManaged, "super-admin.conf": ReasonMissing,
		"apiserver-etcd-client": ReasonDue, "apiserver-kubelet-client": ReasonDue, "controller-manager.conf": ReasonDue,
		"etcd-healthcheck-client": ReasonDue, "etcd-peer": ReasonDue, "etcd-server": ReasonDue, "scheduler.conf": ReasonDue,
	}
	items, err := Due(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := reasons(items); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Due says %v, want %v", got, want)
	}
	before := map[string]*onDisk{}
	for _, name := range Names() {
		before[name] = readOnDisk(t, n.Dir, name)
	}
	res, err := Renew(opts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("renews the due files and skips the others with the reason Due gave", func(t *testing.T) {
		var due []string
		for name, r := range want {
			if r == ReasonDue {
				due = append(due, name)
			}
		}
		slices.Sort(due)
		if got := names(res.Renewed); !slices.Equal(got, due) {
			t.Errorf("renewed %v, want %v", got, due)
		}
		for _, it := range res.Skipped {
			if want[it.Name] != it.Reason {
				t.Errorf("%s skipped as %s, want %s", it.Name, it.Reason, want[it.Name])
			}
		}
		if !strings.Contains(reasonMessage(res.Skipped, "front-proxy-client"), "front-proxy-ca.key") {
			t.Errorf("the externally managed file's message should name the absent CA key: %+v", res.Skipped)
		}
	})

	t.Run("backs up the old files with their modes and keeps the modes of the new ones", func(t *testing.T) {
		for _, r := range res.Renewed {
			old := before[r.Name]
			now := readOnDisk(t, n.Dir, r.Name)
			if r.OldFingerprint == r.NewFingerprint || !now.matches() || now.mode != old.mode || now.keyMode != old.keyMode {
				t.Errorf("%s: renewed %v, matches %v, modes %v/%v were %v/%v", r.Name, r.OldFingerprint != r.NewFingerprint, now.matches(), now.mode, now.keyMode, old.mode, old.keyMode)
			}
			for path, orig := range map[string]string{r.Backup: r.Path, r.KeyBackup: r.KeyPath} {
				if path == "" && orig == "" {
					continue
				}
				if !strings.HasPrefix(path, res.BackupDir+string(filepath.Separator)) {
					t.Errorf("%s: backup %s is not in the run's folder %s", r.Name, path, res.BackupDir)
				}
				got, gotMode, err := readMode(path)
				if err != nil {
					t.Fatal(err)
				}
				_, wantMode, _ := readMode(orig)
				if wantMode != gotMode || len(got) == 0 {
					t.Errorf("%s: backup mode %v, want %v", path, gotMode, wantMode)
				}
			}
			backed := readOnDisk(t, res.BackupDir, r.Name)
			if !bytes.Equal(backed.data, old.data) || !bytes.Equal(backed.keyData, old.keyData) {
				t.Errorf("%s: the backup is not the old file", r.Name)
			}
		}
		if strings.Count(res.BackupDir, "/") < 1 || filepath.Base(res.BackupDir) == "" {
			t.Errorf("backup folder %q", res.BackupDir)
		}
	})

	t.Run("nothing is due right after", func(t *testing.T) {
		again, err := Renew(opts)
		if err != nil || len(again.Renewed) != 0 || again.BackupDir != "" {
			t.Errorf("a second run renewed %v (err %v, backup %q)", names(again.Renewed), err, again.BackupDir)
		}
	})

	t.Run("a file that links out of the folder is not followed", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "apiserver.crt")
		if err := os.WriteFile(outside, before["apiserver"].data, 0o644); err != nil { //nolint:gosec // a certificate
			t.Fatal(err)
		}
		link := filepath.Join(n.Dir, "pki", "apiserver.crt")
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
		res, err := Renew(Options{Dir: n.Dir, Names: []string{"apiserver"}, BackupDir: t.TempDir()})
		if err != nil || len(res.Renewed) != 0 || len(res.Skipped) != 1 || res.Skipped[0].Reason != ReasonInvalid {
			t.Errorf("renewed %v, skipped %+v, err %v", names(res.Renewed), res.Skipped, err)
		}
		if got, _ := os.ReadFile(outside); !bytes.Equal(got, before["apiserver"].data) { //nolint:gosec // the test's file
			t.Error("the file outside the folder changed")
		}
	})
}

func reasonMessage(items []Item, name string) string {
	for _, it := range items {
		if it.Name == name {
			return it.Message
		}
	}
	return ""
}

func TestOptionsThatWouldRenewOnEveryRunOrLoseTheOldFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"no backup folder":                       {Options{Dir: dir}, "backup folder not set"},
		"renewBefore as long as the validity":    {Options{Dir: dir, BackupDir: dir, RenewBefore: 48 * time.Hour, Validity: 48 * time.Hour}, "not shorter than the validity"},
		"renewBefore longer than a default year": {Options{Dir: dir, BackupDir: dir, RenewBefore: DefaultValidity}, "not shorter than the validity"},
		"a name kubeadm does not renew":          {Options{Dir: dir, BackupDir: dir, Names: []string{"ca"}}, "not a file kubeadm renews"},
		"an unknown key algorithm":               {Options{Dir: dir, BackupDir: dir, KeyAlgorithm: "RSA-1024"}, "unknown key algorithm"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Due(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

var errCrash = errors.New("crashed here")

// TestRenewInterruptedAtAnyStepEndsConsistentOnTheNextRunAndRenewsEachFileOnce stops Renew after each
// of its steps in turn (as a SIGKILL would: nothing cleaned up), runs it again, and checks that every
// certificate matches its key and every file was renewed from its original exactly once.
func TestRenewInterruptedAtAnyStepEndsConsistentOnTheNextRunAndRenewsEachFileOnce(t *testing.T) {
	n := kubeadmtest.NewNode(t, kubeadmtest.Binary(t), "cp-1", validityLines(shortValidity))
	original := fingerprints(t, n.Dir)
	// 30 hours on, every file has 18h left: due within 24h; a renewed one has 48h.
	later := time.Now().Add(30 * time.Hour)
	opts := Options{RenewBefore: 24 * time.Hour, Validity: shortValidity, KeyAlgorithm: "ECDSA-P256", Now: func() time.Time { return later }}
	for crashAt := 1; ; crashAt++ {
		c := n.Copy(t)
		opts.Dir, opts.BackupDir = c.Dir, t.TempDir()
		var steps []string
		first := opts
		first.step = func(step, name string) error {
			steps = append(steps, step+" "+name)
			if len(steps) == crashAt {
				return errCrash
			}
			return nil
		}
		res1, err := Renew(first)
		if err == nil {
			if crashAt == 1 {
				t.Fatal("Renew took no steps")
			}
			break
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("crash after %v: %v", steps, err)
		}
		last := steps[len(steps)-1]
		if strings.HasPrefix(last, stepKeyReplaced+" ") {
			items, err := Due(opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := reasons(items)[strings.TrimPrefix(last, stepKeyReplaced+" ")]; got != ReasonInterrupted {
				t.Errorf("after %s Due says %s, want %s", last, got, ReasonInterrupted)
			}
			// Killed again right after completing the pair: the next run starts from a consistent pair.
			again := opts
			again.step = func(step, _ string) error {
				if step == stepCompleted {
					return errCrash
				}
				return nil
			}
			if res, err := Renew(again); !errors.Is(err, errCrash) || len(res.Completed) != 1 {
				t.Fatalf("after %s: completed %v, err %v", last, res.Completed, err)
			}
		}
		res2, err := Renew(opts)
		if err != nil {
			t.Fatalf("the run after a crash after %q: %v", steps[len(steps)-1], err)
		}
		t.Run("after "+steps[len(steps)-1], func(t *testing.T) {
			consistentAndRenewedOnce(t, c.Dir, opts.BackupDir, original)
			for _, name := range names(res1.Renewed) {
				if slices.Contains(names(res2.Renewed), name) || slices.Contains(res2.Completed, name) {
					t.Errorf("%s renewed by the first run and again by the second", name)
				}
			}
		})
	}
}

// consistentAndRenewedOnce checks that every file in dir matches its key and is renewed, and that
// every backup of it holds its original certificate (a file backed up again after a crash is backed up
// with the same content: it was not replaced in between).
func consistentAndRenewedOnce(t *testing.T, dir, backups string, original map[string]string) {
	t.Helper()
	runs, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		d := readOnDisk(t, dir, name)
		if !d.matches() {
			t.Errorf("%s: certificate and key do not match", name)
		}
		if fingerprints(t, dir)[name] == original[name] {
			t.Errorf("%s: not renewed", name)
		}
		backedUp := 0
		for _, run := range runs {
			b := filepath.Join(backups, run.Name())
			if _, err := os.Stat(filepath.Join(b, filepath.FromSlash(pathOf(name)))); err != nil {
				continue
			}
			backedUp++
			if got := fingerprints(t, b)[name]; got != original[name] {
				t.Errorf("%s: backup in %s holds a renewed certificate: renewed twice", name, run.Name())
			}
		}
		if backedUp == 0 {
			t.Errorf("%s: renewed without a backup", name)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*"+stagedSuffix))
	more, _ := filepath.Glob(filepath.Join(dir, "*"+stagedSuffix))
	etcd, _ := filepath.Glob(filepath.Join(dir, "pki", "etcd", "*"+stagedSuffix))
	if all := append(append(leftovers, more...), etcd...); len(all) > 0 {
		t.Errorf("staged files left: %v", all)
	}
}

func pathOf(name string) string {
	for _, r := range renewable {
		if r.name == name {
			p, _ := paths(name, r.kubeconfig)
			return p
		}
	}
	return ""
}

func TestASecondRenewWhileOneRunsIsRefused(t *testing.T) {
	backups := t.TempDir()
	release, err := lock(backups)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Renew(Options{Dir: t.TempDir(), BackupDir: backups})
	if !errors.Is(err, errLocked) {
		t.Errorf("Renew while the lock is held: %v, want %v", err, errLocked)
	}
	release()
	if _, err := Renew(Options{Dir: t.TempDir(), BackupDir: backups}); err != nil {
		t.Errorf("Renew after the lock is released: %v", err)
	}
}

// renewChildEnv makes the test binary a Renew process (see TestRenewKilledAtRandomInstants).
const renewChildEnv = "KUBEADMRENEW_CHILD"

// TestRenewKilledAtRandomInstants runs Renew in a child process, SIGKILLs it after a random delay within
// the length of a run, and checks that the next run ends consistent with every file renewed once: what
// the step hook checks at the step boundaries, here at instants inside them (mid-write, mid-fsync).
func TestRenewKilledAtRandomInstants(t *testing.T) {
	if dir := os.Getenv(renewChildEnv); dir != "" {
		renewChild(t, dir)
		return
	}
	n := kubeadmtest.NewNode(t, kubeadmtest.Binary(t), "cp-1", validityLines(shortValidity))
	original := fingerprints(t, n.Dir)
	later := time.Now().Add(30 * time.Hour)
	opts := Options{RenewBefore: 24 * time.Hour, Validity: shortValidity, KeyAlgorithm: "ECDSA-P256", Now: func() time.Time { return later }}
	// How long a whole run takes, child process included.
	c := n.Copy(t)
	began := time.Now()
	if out, err := childRenew(c.Dir, t.TempDir(), later).CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	run := time.Since(began)
	for i := range 12 {
		c := n.Copy(t)
		opts.Dir, opts.BackupDir = c.Dir, t.TempDir()
		cmd := childRenew(c.Dir, opts.BackupDir, later)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := run * time.Duration(i) / 12
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if _, err := Renew(opts); err != nil {
			t.Fatalf("the run after a kill at %s: %v", delay, err)
		}
		t.Run(fmt.Sprintf("killed after %s", delay.Round(time.Millisecond)), func(t *testing.T) {
			consistentAndRenewedOnce(t, c.Dir, opts.BackupDir, original)
		})
	}
}

// childRenew is the test binary run as a Renew process on dir.
func childRenew(dir, backups string, now time.Time) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRenewKilledAtRandomInstants$", "-test.count=1") //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), renewChildEnv+"="+dir, renewChildEnv+"_BACKUPS="+backups, renewChildEnv+"_NOW="+now.Format(time.RFC3339Nano))
	return cmd
}

func renewChild(t *testing.T, dir string) {
	now, err := time.Parse(time.RFC3339Nano, os.Getenv(renewChildEnv+"_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: dir, BackupDir: os.Getenv(renewChildEnv + "_BACKUPS"), RenewBefore: 24 * time.Hour, Validity: shortValidity, KeyAlgorithm: "ECDSA-P256", Now: func() time.Time { return now }}
	if _, err := Renew(opts); err != nil {
		t.Fatal(err)
	}
}
