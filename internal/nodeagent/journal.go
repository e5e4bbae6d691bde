package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/certrollout/certrollout/internal/durable"
)

// A component's place in its restart, as the journal records it before each move. The journal is
// written to the host before the move it announces, so after a crash at any instant it says enough to
// put every manifest back and to restart nothing twice.
const (
	// JournalMovingOut: the manifest is being moved out; it may still be in the manifests folder.
	JournalMovingOut = "MovingOut"
	// JournalOut: the manifest is out (in the staging folder only).
	JournalOut = "Out"
	// JournalBack: the manifest is back; the component is starting and not yet verified.
	JournalBack = "Back"
	// JournalVerified: restarted, ready and serving the certificates on disk.
	JournalVerified = "Verified"
)

// Journal is the node agent's record, on the host, of the rollout it works on for its node.
type Journal struct {
	// Rollout and RolloutUID name the ControlPlaneRollout.
	Rollout    string `json:"rollout"`
	RolloutUID string `json:"rolloutUID"`
	// Components: component name → its restart.
	Components map[string]JournalEntry `json:"components,omitempty"`
	// Renewed is set once renewal finished for this rollout (it is not repeated).
	Renewed bool `json:"renewed,omitempty"`
}

// JournalEntry is one component's restart.
type JournalEntry struct {
	State string `json:"state"`
	// Manifest is the manifest's path (under the agent's host root), Staged its copy while it is out.
	Manifest string    `json:"manifest"`
	Staged   string    `json:"staged,omitempty"`
	At       time.Time `json:"at"`
	// StoppedAt is when the component was seen down.
	StoppedAt *time.Time `json:"stoppedAt,omitempty"`
}

// LoadJournal reads the journal at path; a missing file is an empty journal.
func LoadJournal(path string) (Journal, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Journal{}, nil
	}
	if err != nil {
		return Journal{}, err
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return Journal{}, fmt.Errorf("the journal %s is not valid JSON (%w): move it away only after checking the manifests folder", path, err)
	}
	return j, nil
}

// Save writes the journal durably: a temporary file beside it, synced, renamed over it, the folder synced.
func (j Journal) Save(path string) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return durable.WritePath(path, data, 0o600)
}
