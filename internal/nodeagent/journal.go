package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
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

// Journal is the node agent's record, on the host, of the rollout it works on for its node. It is the
// agent's own memory: a restarted agent resumes from it even when it cannot read the NodeCertificates it
// reported in, so the journal is written before the report says the same.
type Journal struct {
	// Rollout and RolloutUID name the ControlPlaneRollout.
	Rollout    string `json:"rollout"`
	RolloutUID string `json:"rolloutUID"`
	// Phase and Step are where this node is in the rollout; Message is the last sentence reported with
	// a final phase.
	Phase       api.NodeRolloutPhase `json:"phase,omitempty"`
	Step        api.NodeRolloutStep  `json:"step,omitempty"`
	StartedAt   *time.Time           `json:"startedAt,omitempty"`
	CompletedAt *time.Time           `json:"completedAt,omitempty"`
	Message     string               `json:"message,omitempty"`
	// Components: component name → its restart.
	Components map[string]JournalEntry `json:"components,omitempty"`
	// Renewed is set once renewal finished for this rollout (it is not repeated); RenewedFiles are what
	// it renewed.
	Renewed      bool              `json:"renewed,omitempty"`
	RenewedFiles []api.RenewedFile `json:"renewedFiles,omitempty"`
	// Snapshot is the etcd snapshot taken for this rollout (path and SHA-256 included): not taken again.
	Snapshot *api.EtcdSnapshotStatus `json:"snapshot,omitempty"`
	// Finished are earlier rollouts this node finished, UID → Succeeded or Failed: a node is never redone
	// for a rollout it finished, whatever the rollout's status says later.
	Finished map[string]api.NodeRolloutPhase `json:"finished,omitempty"`
}

// maxFinished bounds Journal.Finished; the oldest rollouts matter least (the controller has long read
// their reports).
const maxFinished = 32

// FinishedPhase is how this node finished rollout uid (Succeeded or Failed), or "" when it did not.
func (j *Journal) FinishedPhase(uid string) api.NodeRolloutPhase {
	if j.RolloutUID == uid && (j.Phase == api.NodeSucceeded || j.Phase == api.NodeFailed) {
		return j.Phase
	}
	return j.Finished[uid]
}

// Start makes the journal rollout r's, at its beginning, unless it is r's already. The previous
// rollout's outcome moves to Finished.
func (j *Journal) Start(r *api.ControlPlaneRollout, now time.Time) {
	if j.RolloutUID == string(r.UID) {
		return
	}
	finished := j.Finished
	if fin := j.FinishedPhase(j.RolloutUID); fin != "" && j.RolloutUID != "" {
		if finished == nil {
			finished = map[string]api.NodeRolloutPhase{}
		}
		if len(finished) >= maxFinished {
			for uid := range finished { // any one: UIDs are not ordered, and 32 is far more than needed
				delete(finished, uid)
				break
			}
		}
		finished[j.RolloutUID] = fin
	}
	now = now.UTC().Truncate(time.Second)
	*j = Journal{Rollout: r.Name, RolloutUID: string(r.UID), Phase: api.NodeInProgress, StartedAt: &now, Finished: finished}
}

// Operation is the report the journal allows for its rollout: what a restarted agent publishes when its
// NodeCertificates cannot tell it more.
func (j *Journal) Operation() *api.NodeOperation {
	op := &api.NodeOperation{Rollout: j.Rollout, RolloutUID: j.RolloutUID, Snapshot: j.Snapshot.DeepCopy(),
		NodeRolloutReport: api.NodeRolloutReport{Phase: j.Phase, Step: j.Step, Message: j.Message, Renewed: j.RenewedFiles}}
	if op.Phase == "" {
		op.Phase = api.NodeInProgress
	}
	if j.StartedAt != nil {
		t := metav1.NewTime(*j.StartedAt)
		op.StartedAt = &t
	}
	if j.CompletedAt != nil {
		t := metav1.NewTime(*j.CompletedAt)
		op.CompletedAt = &t
	}
	for _, name := range componentOrder(nil) {
		e, ok := j.Components[name]
		if !ok {
			continue
		}
		cr := api.ComponentRestart{Name: name, State: api.RestartStopping}
		switch e.State {
		case JournalVerified:
			cr.State = api.RestartVerified
		case JournalBack:
			cr.State = api.RestartStarting
		}
		op.Components = append(op.Components, cr)
	}
	return op
}

// JournalEntry is one component's restart.
type JournalEntry struct {
	State string `json:"state"`
	// Manifest is the manifest's path (under the agent's host root), Staged its copy while it is out.
	Manifest string    `json:"manifest"`
	Staged   string    `json:"staged,omitempty"`
	At       time.Time `json:"at"`
	// OutAt is when its manifest was moved out: a container started before it is the old one.
	OutAt *time.Time `json:"outAt,omitempty"`
	// StoppedAt is when the component was seen down.
	StoppedAt *time.Time `json:"stoppedAt,omitempty"`
	// Again is set on the one further restart of a component whose first never reached the kubelet.
	Again bool `json:"again,omitempty"`
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
