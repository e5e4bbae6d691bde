package nodeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moverFixture is a manifests folder with one manifest, and a state folder.
func moverFixture(t *testing.T) (*Mover, string) {
	t.Helper()
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(manifests, "kube-apiserver.yaml")
	if err := os.WriteFile(manifest, []byte("kind: Pod\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Mover{JournalPath: filepath.Join(dir, "state", "journal.json"), StagingDir: filepath.Join(dir, "state", "staged")}, manifest
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestAManifestMovedOutAndBackKeepsItsContentAndModeAndLeavesNothingBehind(t *testing.T) {
	m, manifest := moverFixture(t)
	mustMkdir(t, filepath.Dir(m.JournalPath))
	if err := m.MoveOut("kube-apiserver", manifest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(manifest); !os.IsNotExist(err) {
		t.Fatalf("the manifest is still in the manifests folder: %v", err)
	}
	if got := m.Out(); len(got) != 1 || got[0] != "kube-apiserver" {
		t.Fatalf("Out() = %v", got)
	}
	if err := m.MoveBack("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(manifest)
	if err != nil || string(data) != "kind: Pod\n" {
		t.Fatalf("the manifest came back as %q (%v)", data, err)
	}
	if fi, _ := os.Stat(manifest); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(manifest))
	if len(entries) != 1 {
		t.Errorf("the manifests folder holds %d files, want only the manifest", len(entries))
	}
	if staged, _ := os.ReadDir(m.StagingDir); len(staged) != 0 {
		t.Errorf("the staging folder still holds %d files", len(staged))
	}
	j, err := LoadJournal(m.JournalPath)
	if err != nil || j.Components["kube-apiserver"].State != JournalBack {
		t.Fatalf("journal %+v (%v), want the component Back", j, err)
	}
}

// A crash can stop the agent between any two of its writes. Whatever the instant, Recover leaves the
// manifest in the manifests folder, once, and says whether the restart happened.
func TestRecoverPutsEveryManifestBackWhereverTheAgentStopped(t *testing.T) {
	for name, tc := range map[string]struct {
		crash     func(t *testing.T, m *Mover, manifest string)
		wantState string // "" when the entry is dropped: the restart never began
	}{
		"journal says moving out, manifest still there": {func(t *testing.T, m *Mover, manifest string) {
			if err := m.set("kube-apiserver", JournalEntry{State: JournalMovingOut, Manifest: manifest, Staged: filepath.Join(m.StagingDir, "kube-apiserver.yaml")}); err != nil {
				t.Fatal(err)
			}
		}, ""},
		"staged but not yet removed": {func(t *testing.T, m *Mover, manifest string) {
			staged := filepath.Join(m.StagingDir, "kube-apiserver.yaml")
			mustMkdir(t, m.StagingDir)
			if err := m.set("kube-apiserver", JournalEntry{State: JournalMovingOut, Manifest: manifest, Staged: staged}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(staged, []byte("kind: Pod\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ""},
		"removed, journal not yet updated": {func(t *testing.T, m *Mover, manifest string) {
			if err := m.MoveOut("kube-apiserver", manifest); err != nil {
				t.Fatal(err)
			}
			e := m.Journal.Components["kube-apiserver"]
			e.State = JournalMovingOut
			if err := m.set("kube-apiserver", e); err != nil {
				t.Fatal(err)
			}
		}, JournalBack},
		"out": {func(t *testing.T, m *Mover, manifest string) {
			if err := m.MoveOut("kube-apiserver", manifest); err != nil {
				t.Fatal(err)
			}
		}, JournalBack},
		"out, and an operator put it back by hand": {func(t *testing.T, m *Mover, manifest string) {
			if err := m.MoveOut("kube-apiserver", manifest); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(manifest, []byte("kind: Pod\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, JournalBack},
		"back, not yet verified": {func(t *testing.T, m *Mover, manifest string) {
			if err := m.MoveOut("kube-apiserver", manifest); err != nil {
				t.Fatal(err)
			}
			if err := m.MoveBack("kube-apiserver"); err != nil {
				t.Fatal(err)
			}
		}, JournalBack},
	} {
		t.Run(name, func(t *testing.T) {
			m, manifest := moverFixture(t)
			mustMkdir(t, filepath.Dir(m.JournalPath))
			tc.crash(t, m, manifest)

			// A new process: only the journal on disk.
			j, err := LoadJournal(m.JournalPath)
			if err != nil {
				t.Fatal(err)
			}
			again := &Mover{JournalPath: m.JournalPath, StagingDir: m.StagingDir, Journal: j}
			did, err := again.Recover()
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(manifest)
			if err != nil || string(data) != "kind: Pod\n" {
				t.Fatalf("after recovery the manifest is %q (%v)", data, err)
			}
			if out := again.Out(); len(out) != 0 {
				t.Fatalf("after recovery %v are still out", out)
			}
			e, ok := again.Journal.Components["kube-apiserver"]
			switch {
			case tc.wantState == "" && ok:
				t.Errorf("the entry is %+v; want it dropped (the restart never began)", e)
			case tc.wantState != "" && e.State != tc.wantState:
				t.Errorf("state %q, want %q", e.State, tc.wantState)
			}
			if tc.wantState != "" && tc.wantState != JournalBack && len(did) == 0 {
				t.Error("Recover said nothing")
			}
			if again2, _ := LoadJournal(m.JournalPath); len(again2.Components) != len(again.Journal.Components) {
				t.Errorf("the journal on disk differs from memory: %+v vs %+v", again2, again.Journal)
			}
		})
	}
}

func TestRecoverRefusesToGuessWhenAManifestAndItsCopyAreBothGone(t *testing.T) {
	m, manifest := moverFixture(t)
	mustMkdir(t, filepath.Dir(m.JournalPath))
	if err := m.MoveOut("etcd", manifest); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.Journal.Components["etcd"].Staged); err != nil {
		t.Fatal(err)
	}
	_, err := m.Recover()
	if err == nil {
		t.Fatal("Recover succeeded with the manifest and its copy gone")
	}
	if want := "no copy is staged"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q; want it to say %q", err, want)
	}
}
