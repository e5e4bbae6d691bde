package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/certrollout/certrollout/internal/durable"
)

// Mover moves static pod manifests out of the kubelet's folder and back, which is how a static pod is
// restarted: deleting its mirror pod restarts nothing. Every move is announced in the journal first, so
// Recover can finish or undo it after a crash at any instant.
type Mover struct {
	// JournalPath is the journal's file, StagingDir where manifests wait while they are out; both in the
	// agent's state folder on the host, on the same machine as the manifests, never in the manifests
	// folder itself.
	JournalPath string
	StagingDir  string
	Journal     Journal
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

func (m *Mover) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

func (m *Mover) set(component string, e JournalEntry) error {
	if m.Journal.Components == nil {
		m.Journal.Components = map[string]JournalEntry{}
	}
	e.At = m.now()
	m.Journal.Components[component] = e
	return m.Journal.Save(m.JournalPath)
}

// MoveOut takes component's manifest out of the manifests folder: a copy is staged (synced) before the
// manifest is removed, so the manifest always exists in one place or both.
func (m *Mover) MoveOut(component, manifest string) error {
	return m.moveOut(component, manifest, false)
}

// MoveOutAgain is MoveOut for the one further restart of a component whose first restart the kubelet
// never saw; the journal says so, so that there is never a third.
func (m *Mover) MoveOutAgain(component, manifest string) error {
	return m.moveOut(component, manifest, true)
}

func (m *Mover) moveOut(component, manifest string, again bool) error {
	fi, err := os.Stat(manifest)
	if err != nil {
		return fmt.Errorf("the manifest of %s: %w", component, err)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("reading the manifest of %s: %w", component, err)
	}
	if err := os.MkdirAll(m.StagingDir, 0o700); err != nil {
		return err
	}
	out := m.now()
	e := JournalEntry{State: JournalMovingOut, Manifest: manifest, Staged: filepath.Join(m.StagingDir, filepath.Base(manifest)), OutAt: &out, Again: again}
	if err := m.set(component, e); err != nil {
		return fmt.Errorf("writing the journal before moving %s out: %w", component, err)
	}
	if err := durable.WritePath(e.Staged, data, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("staging the manifest of %s: %w", component, err)
	}
	if err := os.Remove(manifest); err != nil {
		return fmt.Errorf("moving the manifest of %s out: %w", component, err)
	}
	if err := syncDirOf(manifest); err != nil {
		return err
	}
	e.State = JournalOut
	return m.set(component, e)
}

// MoveBack puts component's staged manifest back (written hidden, then renamed, so the kubelet never
// reads half of it) and removes the staged copy.
func (m *Mover) MoveBack(component string) error {
	e, ok := m.Journal.Components[component]
	if !ok || e.Staged == "" {
		return fmt.Errorf("the journal has no staged manifest of %s", component)
	}
	data, err := os.ReadFile(e.Staged)
	if err != nil {
		return fmt.Errorf("reading the staged manifest of %s: %w", component, err)
	}
	fi, err := os.Stat(e.Staged)
	if err != nil {
		return err
	}
	if err := durable.WritePath(e.Manifest, data, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("putting the manifest of %s back: %w", component, err)
	}
	e.State = JournalBack
	if err := m.set(component, e); err != nil {
		return err
	}
	if err := os.Remove(e.Staged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Verified records that component restarted and serves what is on disk.
func (m *Mover) Verified(component string) error {
	e := m.Journal.Components[component]
	e.State = JournalVerified
	return m.set(component, e)
}

// Stopped records when component was seen down.
func (m *Mover) Stopped(component string, at time.Time) error {
	e := m.Journal.Components[component]
	at = at.UTC()
	e.StoppedAt = &at
	return m.set(component, e)
}

// Recover makes the manifests folder whole after a crash, from the journal: a manifest that is out goes
// back (its restart thereby completes, once); one whose move out never removed it stays, and its entry is
// dropped (its restart never began). It returns what it did, a sentence each. Nothing else in the journal
// changes, so a resumed rollout skips the components already verified.
func (m *Mover) Recover() ([]string, error) {
	var did []string
	names := make([]string, 0, len(m.Journal.Components))
	for c := range m.Journal.Components {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		e := m.Journal.Components[c]
		if e.State != JournalMovingOut && e.State != JournalOut {
			continue
		}
		_, err := os.Stat(e.Manifest)
		switch {
		case err == nil && e.State == JournalMovingOut:
			delete(m.Journal.Components, c)
			if err := m.Journal.Save(m.JournalPath); err != nil {
				return did, err
			}
			_ = os.Remove(e.Staged)
			did = append(did, fmt.Sprintf("%s: its manifest was never moved out; its restart starts over", c))
		case err == nil:
			// Someone put it back already: the restart happened.
			e.State = JournalBack
			if err := m.set(c, e); err != nil {
				return did, err
			}
			_ = os.Remove(e.Staged)
			did = append(did, fmt.Sprintf("%s: its manifest is back in place; verifying it", c))
		case errors.Is(err, fs.ErrNotExist):
			if _, serr := os.Stat(e.Staged); serr != nil {
				return did, fmt.Errorf("%s: its manifest %s is missing and no copy is staged at %s: restore it from the backup of /etc/kubernetes", c, e.Manifest, e.Staged)
			}
			if err := m.MoveBack(c); err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("%s: put its manifest back after an interruption; verifying it", c))
		default:
			return did, err
		}
	}
	return did, nil
}

// Out lists the components whose manifest is out of the manifests folder, per the journal.
func (m *Mover) Out() []string {
	var out []string
	for c, e := range m.Journal.Components {
		if e.State == JournalMovingOut || e.State == JournalOut {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// syncDirOf fsyncs the folder holding p, so that its removal survives a crash.
func syncDirOf(p string) error {
	root, err := os.OpenRoot(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer root.Close()
	return durable.SyncDir(root, ".")
}
