package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Showing a followed ControlPlaneRollout: timestamped lines (logs, CI, pipes) or a block redrawn in
// place on a terminal, as rollouts_progress.go shows CertRollouts.

// newControlPlanePrinter picks the redrawn block for a terminal and timestamped lines otherwise.
func newControlPlanePrinter(w io.Writer, now func() time.Time) controlPlanePrinter {
	if isTerminalWriter(w) {
		return &controlPlaneBlockPrinter{blockPrinter: blockPrinter{w: w, now: now}}
	}
	return &controlPlaneLinePrinter{w: w, now: now, start: now(), conditions: map[string]metav1.Condition{},
		quiesced: map[string]api.QuiescedWorkload{}, nodes: map[string]api.ControlPlaneNodeStatus{}}
}

// controlPlaneLinePrinter prints one timestamped line per change, in the order things happened:
//
//	2026-11-28T10:00:05Z  control-plane-x7k2p  Restarting        cp-1 kube-apiserver stopping (ServesOld)
type controlPlaneLinePrinter struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	// What was shown last.
	phase      api.RolloutPhase
	message    string
	warned     bool
	emergency  bool
	snapshot   string
	conditions map[string]metav1.Condition
	quiesced   map[string]api.QuiescedWorkload
	nodes      map[string]api.ControlPlaneNodeStatus
}

func (p *controlPlaneLinePrinter) tick(ro *api.ControlPlaneRollout) {
	if waited := p.now().Sub(p.start); ro.Status.Phase == "" && !p.warned && waited >= unclaimedAfter {
		p.warned = true
		progressLine(p.w, timestamp(p.now()), 0, ro.Name, "Pending", controlPlaneUnclaimed(waited))
	}
}

// controlPlaneUnclaimed says that no controller picked the rollout up: only the cluster-wide controller
// runs ControlPlaneRollouts.
func controlPlaneUnclaimed(d time.Duration) string {
	return fmt.Sprintf("no controller has picked the rollout up in %s: is `certrollout controller` running cluster-wide (not limited to namespaces)?", spanString(d))
}

func (p *controlPlaneLinePrinter) observe(ro *api.ControlPlaneRollout) {
	st := ro.Status
	if st.Phase == "" {
		return // not picked up yet
	}
	ts, phase := timestamp(p.now()), string(st.Phase)
	line := func(text string) { progressLine(p.w, ts, 0, ro.Name, phase, text) }
	if c := apimeta.FindStatusCondition(st.Conditions, api.ConditionEmergency); c != nil && ro.Spec.Emergency != nil && !p.emergency {
		p.emergency = true
		line(c.Message)
	}
	changes := p.changes(ro)
	// Entering Restoring or the verdict, what ended (a node failing) reads first; entering any other
	// phase, what begins in it reads after it.
	ending := st.Phase == api.PhaseRestoring || st.Phase.Finished()
	if ending {
		for _, text := range changes {
			line(text)
		}
	}
	switch {
	case st.Phase != p.phase && !st.Phase.Finished():
		line(controlPlanePhaseMessage(ro))
	case st.Message != p.message && (st.Phase == api.PhasePending || st.Phase == api.PhaseWaitingForWindow):
		line(controlPlanePhaseMessage(ro))
	}
	if !ending {
		for _, text := range changes {
			line(text)
		}
	}
	if st.Phase != p.phase && st.Phase.Finished() {
		line(controlPlaneFinishedMessage(ro))
	}
	p.phase, p.message = st.Phase, st.Message
}

// changes compares ro's steps with what was shown, records them, and returns a line per change:
// refusals and stalls (their conditions), quiesced workloads, the snapshot, then each node.
func (p *controlPlaneLinePrinter) changes(ro *api.ControlPlaneRollout) []string {
	st := ro.Status
	var out []string
	for _, t := range []string{api.ConditionFailed, api.ConditionStalled} {
		c := apimeta.FindStatusCondition(st.Conditions, t)
		if c == nil {
			continue
		}
		if old, ok := p.conditions[t]; c.Status == metav1.ConditionTrue && (!ok || old.Message != c.Message || old.Status != c.Status) && c.Message != st.Message {
			out = append(out, fmt.Sprintf("%s (%s): %s", c.Type, c.Reason, c.Message))
		}
		p.conditions[t] = *c
	}
	for _, q := range st.Quiesced {
		key := q.Namespace + "/" + workloadKey(q.Kind, q.Name)
		if old, ok := p.quiesced[key]; !ok || old.State != q.State || old.Message != q.Message {
			w := q.QuiescedWorkload
			w.Name += " -n " + q.Namespace
			if text := quiesceLine(w, old, ok); text != "" {
				out = append(out, text)
			}
		}
		p.quiesced[key] = q.QuiescedWorkload
	}
	if s := st.Snapshot; s != nil && s.Path+s.SHA256 != p.snapshot {
		p.snapshot = s.Path + s.SHA256
		out = append(out, snapshotLine(s))
	}
	for _, n := range st.Nodes {
		old, seen := p.nodes[n.Name]
		out = append(out, nodeChanges(n, old, seen)...)
		p.nodes[n.Name] = *n.DeepCopy()
	}
	return out
}

// snapshotLine tells where the etcd snapshot is and how to check it.
func snapshotLine(s *api.EtcdSnapshotStatus) string {
	text := fmt.Sprintf("etcd snapshot on %s: %s (sha256 %s, %d bytes", s.Node, s.Path, s.SHA256, s.Size)
	if s.Revision > 0 {
		text += fmt.Sprintf(", revision %d", s.Revision)
	}
	return text + ")"
}

// nodeChanges are the lines for what changed on node n since old (seen: old was shown).
func nodeChanges(n, old api.ControlPlaneNodeStatus, seen bool) []string {
	var out []string
	if (!seen || old.Phase != n.Phase) && n.Phase != api.NodePending && n.Phase != api.NodeSucceeded && n.Phase != api.NodeFailed {
		out = append(out, n.Name+" "+string(n.Phase)+messageSuffix(n.Message))
	}
	if h := n.Health; h != nil && (old.Health == nil || !old.Health.CheckedAt.Equal(&h.CheckedAt) || old.Health.Healthy != h.Healthy) {
		out = append(out, n.Name+" health: "+healthSummary(h))
	}
	var renewed []api.RenewedFile
	for _, f := range n.Renewed {
		if !containsBy(old.Renewed, func(o api.RenewedFile) bool { return o.Name == f.Name && o.NewNotAfter.Equal(&f.NewNotAfter) }) {
			renewed = append(renewed, f)
		}
	}
	for _, line := range renewedLines(renewed) {
		out = append(out, n.Name+" "+line)
	}
	// A step begun reads after what the steps before it did: the restarts before Kubeconfigs and
	// HealthAfter, the health check and the renewal before the restarts.
	stepBegun := n.Step != "" && n.Step != old.Step && n.Step != api.StepDone
	afterRestarts := n.Step == api.StepKubeconfigs || n.Step == api.StepHealthAfter
	if stepBegun && !afterRestarts {
		out = append(out, n.Name+" step "+string(n.Step))
	}
	for _, c := range n.Components {
		if c.State == api.RestartPending || containsBy(old.Components, func(o api.ComponentRestart) bool {
			return o.Name == c.Name && o.State == c.State && o.Reason == c.Reason && o.Message == c.Message
		}) {
			continue
		}
		out = append(out, n.Name+" "+componentLine(c))
	}
	for _, k := range n.KubeconfigCopies {
		if !containsBy(old.KubeconfigCopies, func(o api.CopiedFile) bool { return o.Path == k.Path && o.Backup == k.Backup }) {
			out = append(out, n.Name+" "+kubeconfigLine(k))
		}
	}
	if stepBegun && afterRestarts {
		out = append(out, n.Name+" step "+string(n.Step))
	}
	if seen && old.Phase == n.Phase {
		return out
	}
	switch n.Phase {
	case api.NodeSucceeded:
		text := n.Name + " done"
		if n.StartedAt != nil && n.CompletedAt != nil {
			text += " in " + spanString(n.CompletedAt.Sub(n.StartedAt.Time))
		}
		out = append(out, text)
	case api.NodeFailed:
		out = append(out, fmt.Sprintf("%s failed at step %s: %s", n.Name, orElse(string(n.Step), "?"), n.Message))
	case api.NodePending, api.NodeInProgress:
	}
	return out
}

func containsBy[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

func messageSuffix(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// healthSummary sums up a health check: healthy with what was checked, or why not.
func healthSummary(h *api.ControlPlaneHealth) string {
	if !h.Healthy {
		reasons := h.Reasons
		if len(reasons) == 0 {
			reasons = []string{"no reason given"}
		}
		return "NOT healthy: " + strings.Join(reasons, "; ")
	}
	s := fmt.Sprintf("healthy (%d API server(s) ready, %d etcd member(s) healthy", len(h.APIServers), len(h.EtcdMembers))
	for _, m := range h.EtcdMembers {
		if m.Leader {
			s += ", leader " + m.Name
		}
	}
	return s + ")"
}

// renewedLines tell which certificate files were renewed, until when, and where the old ones are: one
// line for the files renewed together (the same validity and backup folder), as a renewal renews them.
func renewedLines(files []api.RenewedFile) []string {
	type batch struct {
		names    []string
		notAfter time.Time
		backup   string
	}
	var batches []*batch
	for _, f := range files {
		var b *batch
		for _, have := range batches {
			if have.notAfter.Equal(f.NewNotAfter.Time) && have.backup == f.Backup {
				b = have
			}
		}
		if b == nil {
			b = &batch{notAfter: f.NewNotAfter.Time, backup: f.Backup}
			batches = append(batches, b)
		}
		b.names = append(b.names, f.Name)
	}
	var out []string
	for _, b := range batches {
		s := "renewed " + b.names[0]
		if len(b.names) > 1 {
			s = fmt.Sprintf("renewed %d files (%s)", len(b.names), strings.Join(b.names, ", "))
		}
		s += ", valid until " + timestamp(b.notAfter)
		if b.backup != "" {
			s += ", old files kept in " + b.backup
		}
		out = append(out, s)
	}
	return out
}

// componentLine tells where a component's restart is. A SystemdEtcd skip carries, in its message, the
// command to run by hand.
func componentLine(c api.ComponentRestart) string {
	s := c.Name + " " + strings.ToLower(string(c.State))
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	if c.State == api.RestartVerified && c.StoppedAt != nil && c.VerifiedAt != nil {
		s += " after " + spanString(c.VerifiedAt.Sub(c.StoppedAt.Time))
	}
	return s + messageSuffix(c.Message)
}

// kubeconfigLine tells that a kubeconfig copy was refreshed and where the previous one is.
func kubeconfigLine(k api.CopiedFile) string {
	s := "kubeconfig copy " + k.Path + " refreshed"
	if k.Backup != "" {
		s += " (previous kept as " + k.Backup + ")"
	}
	return s
}

// controlPlanePhaseMessage is the line for a rollout entering a phase (or changing why it waits).
func controlPlanePhaseMessage(ro *api.ControlPlaneRollout) string {
	st := ro.Status
	switch st.Phase {
	case api.PhaseWaitingForWindow:
		if st.NextWindow != nil {
			return "waiting for the maintenance window at " + timestamp(st.NextWindow.Time)
		}
	case api.PhaseQuiescing:
		names := make([]string, len(st.Quiesced))
		for i, q := range st.Quiesced {
			names[i] = workloadKey(q.Kind, q.Name) + " -n " + q.Namespace
		}
		return fmt.Sprintf("scaling %d workload(s) to zero: %s", len(st.Quiesced), strings.Join(names, ", "))
	case api.PhaseRestarting:
		names := make([]string, len(st.Nodes))
		for i, n := range st.Nodes {
			names[i] = n.Name
		}
		return fmt.Sprintf("%d node(s), one at a time: %s", len(st.Nodes), strings.Join(names, ", "))
	case api.PhaseRestoring:
		if len(st.Quiesced) > 0 {
			return fmt.Sprintf("restoring %d quiesced workload(s)", len(st.Quiesced))
		}
	default:
	}
	return orElse(st.Message, strings.ToLower(string(st.Phase)))
}

// controlPlaneFinishedMessage is the last line: the progress, why it failed (the reason of its Failed
// condition), the message and how long it took.
func controlPlaneFinishedMessage(ro *api.ControlPlaneRollout) string {
	st := ro.Status
	msg := st.Message
	if c := apimeta.FindStatusCondition(st.Conditions, api.ConditionFailed); st.Phase == api.PhaseFailed && c != nil && c.Status == metav1.ConditionTrue && c.Reason != "" {
		msg = c.Reason + ": " + msg
	}
	if st.Progress != "" {
		msg = st.Progress + ": " + msg
	}
	if st.StartTime != nil && st.CompletionTime != nil {
		msg += " (took " + spanString(st.CompletionTime.Sub(st.StartTime.Time)) + ")"
	}
	return msg
}

// controlPlaneBlockPrinter redraws the rollout in place on a terminal:
//
//	control-plane-x7k2p  Restarting  1/3 nodes  2m5s
//	  snapshot  cp-1              Taken                          /var/lib/certrollout/etcd-snapshots/x.db sha256 9f2c…
//	  node      cp-1              Succeeded   Done healthy  1m50s
//	  node      cp-2              InProgress  Restart       15s
//	              kube-apiserver  Stopping    ServesOld     3s
type controlPlaneBlockPrinter struct {
	blockPrinter
}

func (p *controlPlaneBlockPrinter) observe(ro *api.ControlPlaneRollout) { p.draw(ro) }

func (p *controlPlaneBlockPrinter) tick(ro *api.ControlPlaneRollout) { p.draw(ro) }

func (p *controlPlaneBlockPrinter) draw(ro *api.ControlPlaneRollout) {
	p.drawBlocks(func(now time.Time, waited time.Duration) []blockRollout {
		return []blockRollout{controlPlaneBlock(ro, now, waited)}
	})
}

// controlPlaneBlock maps ro to the block at now; waited is how long it has been shown.
func controlPlaneBlock(ro *api.ControlPlaneRollout, now time.Time, waited time.Duration) blockRollout {
	st := ro.Status
	header := []string{ro.Name, orElse(string(st.Phase), "Pending"), st.Progress}
	if ro.Spec.Emergency != nil {
		header = append(header, "EMERGENCY")
	}
	header = append(header, blockHead{st.Phase, st.StartTime, st.CompletionTime, st.NextWindow, st.Message}.tail(now, waited, controlPlaneUnclaimed)...)
	b := blockRollout{header: joinNonEmpty(header, "  ")}
	for _, q := range st.Quiesced {
		b.steps = append(b.steps, []string{"quiesce", workloadKey(q.Kind, q.Name) + " -n " + q.Namespace, replicaCount(q.OriginalReplicas) + "→0", string(q.State),
			rolloutElapsed(q.ScaledDownAt, q.DrainedAt, now), q.Message})
	}
	if s := st.Snapshot; s != nil {
		// The path in the last, unaligned, column: it is long and would widen every row's columns.
		b.steps = append(b.steps, []string{"snapshot", s.Node, "Taken", "", "", s.Path + " sha256 " + s.SHA256})
	}
	for _, n := range st.Nodes {
		health := ""
		if n.Health != nil {
			health = "unhealthy"
			if n.Health.Healthy {
				health = "healthy"
			}
		}
		b.steps = append(b.steps, []string{"node", n.Name, string(n.Phase), joinNonEmpty([]string{string(n.Step), health}, " "),
			rolloutElapsed(n.StartedAt, n.CompletedAt, now), n.Message})
		for _, c := range n.Components {
			b.steps = append(b.steps, []string{"", "  " + c.Name, string(c.State), c.Reason, rolloutElapsed(c.StoppedAt, c.VerifiedAt, now), c.Message})
		}
	}
	return b
}
