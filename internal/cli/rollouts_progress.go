package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// progressPrinter shows followed rollouts as they change. observe gets every followed rollout, in the
// order they were created, after each change; tick gets them once a second, so a printer can advance
// elapsed times or notice that nothing happens.
type progressPrinter interface {
	observe(ros []api.CertRollout)
	tick(ros []api.CertRollout)
}

// newProgressPrinter picks the redrawn block for a terminal and timestamped lines otherwise (logs, CI,
// pipes), where cursor movement would be garbage.
func newProgressPrinter(w io.Writer, now func() time.Time) progressPrinter {
	if isTerminalWriter(w) {
		return &blockPrinter{w: w, now: now}
	}
	return newLinePrinter(w, now)
}

// unclaimedAfter is how long a rollout may stay without a phase before the printers say that no
// controller seems to run: a CertRollout is only a request, and nothing happens without one.
const unclaimedAfter = 30 * time.Second

// linePrinter prints one timestamped line per change:
//
//	2026-11-24T01:02:03Z  build-x7k2p  Quiescing         Deployment/workers scaled from 3 to 0 replicas, draining
//
// Lines are only printed when something changed, so a log of a long wait stays short.
type linePrinter struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	seen  map[types.NamespacedName]*seenRollout
	width int // of the widest rollout name, to align the phase column
}

// seenRollout is what a printer last showed of one rollout.
type seenRollout struct {
	phase    api.RolloutPhase
	message  string
	quiesced map[string]api.QuiescedWorkload
	targets  map[string]api.TargetStatus
	trusted  map[string]api.TrustingWorkload
	leaves   map[string]api.LeafStatus
	warned   bool
	// emergency: the line saying the rollout started as an emergency was printed.
	emergency bool
}

func newLinePrinter(w io.Writer, now func() time.Time) *linePrinter {
	return &linePrinter{w: w, now: now, start: now(), seen: map[types.NamespacedName]*seenRollout{}}
}

func (p *linePrinter) tick(ros []api.CertRollout) {
	for i := range ros {
		ro := &ros[i]
		s := p.state(ro)
		if ro.Status.Phase == "" && !s.warned && p.now().Sub(p.start) >= unclaimedAfter {
			s.warned = true
			p.line(ro, "Pending", unclaimedMessage(p.now().Sub(p.start)))
		}
	}
}

func unclaimedMessage(d time.Duration) string {
	return fmt.Sprintf("no controller has picked the rollout up in %s: is `certrollout controller` running and watching this namespace?", duration.HumanDuration(d))
}

func (p *linePrinter) state(ro *api.CertRollout) *seenRollout {
	k := rolloutKey(ro)
	s, ok := p.seen[k]
	if !ok {
		s = &seenRollout{quiesced: map[string]api.QuiescedWorkload{}, targets: map[string]api.TargetStatus{},
			trusted: map[string]api.TrustingWorkload{}, leaves: map[string]api.LeafStatus{}}
		p.seen[k] = s
	}
	if len(ro.Name) > p.width {
		p.width = len(ro.Name)
	}
	return s
}

func (p *linePrinter) line(ro *api.CertRollout, phase, text string) {
	p.lineAt(timestamp(p.now()), ro, phase, text)
}

func (p *linePrinter) lineAt(ts string, ro *api.CertRollout, phase, text string) {
	progressLine(p.w, ts, p.width, ro.Name, phase, text)
}

// progressLine is one line of a line printer: the time, the rollout's name padded to width, its phase
// and the text.
func progressLine(w io.Writer, ts string, width int, name, phase, text string) {
	fmt.Fprintf(w, "%s  %-*s  %-16s  %s\n", ts, width, name, phase, text)
}

func (p *linePrinter) observe(ros []api.CertRollout) {
	for i := range ros {
		p.state(&ros[i]) // widths first, so every line of this round aligns
	}
	ts := timestamp(p.now())
	for i := range ros {
		ro := &ros[i]
		s := p.state(ro)
		st := ro.Status
		if st.Phase == "" {
			continue // not picked up yet
		}
		phase := string(st.Phase)
		// Steps that ended come before the phase line and steps that began after it, so the lines read
		// in the order things happened: "workers drained", "Restarting", "build restarting".
		ended, began := s.stepChanges(ro)
		for _, text := range ended {
			p.lineAt(ts, ro, phase, text)
		}
		if c := emergencyStart(ro); c != nil && !s.emergency {
			// Before the phase line: the emergency is why the rollout starts now.
			s.emergency = true
			p.lineAt(ts, ro, phase, c.Message)
		}
		switch {
		case st.Phase != s.phase && !st.Phase.Finished():
			p.lineAt(ts, ro, phase, phaseMessage(ro))
		case st.Message != s.message && (st.Phase == api.PhasePending || st.Phase == api.PhaseWaitingForWindow):
			// While it waits the message is the reason; later phases are told through their steps.
			p.lineAt(ts, ro, phase, phaseMessage(ro))
		}
		for _, text := range began {
			p.lineAt(ts, ro, phase, text)
		}
		if st.Phase != s.phase && st.Phase.Finished() {
			p.lineAt(ts, ro, phase, finishedMessage(ro))
		}
		s.phase, s.message = st.Phase, st.Message
	}
}

// stepChanges compares ro's steps (quiesced and trusting workloads, leaves, targets) with what s last
// showed, records them, and returns the lines for the steps that ended and those that began. One status
// can carry several steps at once.
func (s *seenRollout) stepChanges(ro *api.CertRollout) (ended, began []string) {
	st := ro.Status
	for _, q := range st.Quiesced {
		key := workloadKey(q.Kind, q.Name)
		if old, ok := s.quiesced[key]; !ok || old.State != q.State || old.Message != q.Message {
			text := quiesceLine(q, old, ok)
			switch {
			case text == "":
			case q.State == api.QuiesceDrained || q.State == api.QuiesceDrainTimedOut:
				ended = append(ended, text)
			default:
				began = append(began, text)
			}
		}
		s.quiesced[key] = q
	}
	for _, tw := range st.TrustedBy {
		key := tw.Namespace + "/" + workloadKey(tw.Kind, tw.Name)
		if old, ok := s.trusted[key]; (!ok || old.State != tw.State) && tw.State != api.TrustPending {
			ended = append(ended, trustLine(tw, ro.Namespace))
		}
		s.trusted[key] = tw
	}
	for _, c := range st.Certificates {
		key := c.Namespace + "/" + c.Name
		if old, ok := s.leaves[key]; !ok || old.State != c.State {
			text := leafLine(c, ro.Namespace)
			switch c.State {
			case api.LeafPending:
			case api.LeafIssuing:
				began = append(began, text)
			case api.LeafIssued, api.LeafFailed:
				ended = append(ended, text)
			}
		}
		s.leaves[key] = c
	}
	for _, t := range st.Targets {
		key := workloadKey(t.Kind, t.Name)
		if old, ok := s.targets[key]; !ok || old.State != t.State || old.Message != t.Message {
			text := targetLine(t, old, ok)
			switch {
			case text == "":
			case t.State == api.TargetRestarting:
				began = append(began, text)
			default:
				ended = append(ended, text)
			}
		}
		s.targets[key] = t
	}
	return ended, began
}

// emergencyStart is the condition the controller sets when an emergency rollout starts (who asked, why,
// what it overrode); nil before then and for an ordinary rollout.
func emergencyStart(ro *api.CertRollout) *metav1.Condition {
	if ro.Spec.Emergency == nil {
		return nil
	}
	return apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionEmergency)
}

// phaseMessage is the line for a rollout entering a phase (or changing why it waits).
func phaseMessage(ro *api.CertRollout) string {
	st := ro.Status
	switch st.Phase {
	case api.PhaseWaitingForWindow:
		if st.NextWindow != nil {
			return "waiting for the maintenance window at " + timestamp(st.NextWindow.Time)
		}
	case api.PhaseQuiescing:
		return fmt.Sprintf("scaling %d workload(s) to zero: %s", len(st.Quiesced), quiescedNames(st.Quiesced))
	case api.PhaseRestarting:
		return fmt.Sprintf("restarting %d target(s) in order: %s", len(st.Targets), targetNames(st.Targets))
	case api.PhaseRestoring:
		return fmt.Sprintf("restoring %d quiesced workload(s)", len(st.Quiesced))
	case api.PhaseRefreshingTrust:
		return fmt.Sprintf("waiting for %d workload(s) that trust the CA to roll onto it", len(st.TrustedBy))
	case api.PhaseReissuing:
		return fmt.Sprintf("re-issuing %d certificate(s) under the new CA", len(st.Certificates))
	case api.PhasePending, api.PhaseSucceeded, api.PhaseFailed:
	}
	return orElse(st.Message, strings.ToLower(string(st.Phase)))
}

func quiescedNames(qs []api.QuiescedWorkload) string {
	s := make([]string, len(qs))
	for i, q := range qs {
		s[i] = workloadKey(q.Kind, q.Name)
	}
	return strings.Join(s, ", ")
}

func targetNames(ts []api.TargetStatus) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = workloadKey(t.Kind, t.Name)
	}
	return strings.Join(s, ", ")
}

// finishedMessage is the last line of a rollout: the result, the controller's summary and how long it
// took.
func finishedMessage(ro *api.CertRollout) string {
	st := ro.Status
	msg := st.Message
	if st.Progress != "" {
		msg = st.Progress + ": " + msg
	}
	if st.StartTime != nil && st.CompletionTime != nil {
		msg += " (took " + spanString(st.CompletionTime.Sub(st.StartTime.Time)) + ")"
	}
	return msg
}

func replicaCount(p *int32) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprint(*p)
}

// quiesceLine describes a quiesced workload's new state; "" when there is nothing worth a line.
func quiesceLine(q, old api.QuiescedWorkload, seen bool) string {
	name := workloadKey(q.Kind, q.Name)
	switch q.State {
	case api.QuiesceDraining:
		if seen && old.State == api.QuiesceDraining {
			if q.Message == "" {
				return ""
			}
			return name + " draining: " + q.Message
		}
		s := fmt.Sprintf("%s scaled from %s to 0 replicas, draining", name, replicaCount(q.OriginalReplicas))
		if q.Message != "" {
			s += ": " + q.Message
		}
		return s
	case api.QuiesceDrained:
		if q.Message != "" {
			return name + " drained: " + q.Message
		}
		if q.ScaledDownAt != nil && q.DrainedAt != nil {
			return fmt.Sprintf("%s drained in %s", name, spanString(q.DrainedAt.Sub(q.ScaledDownAt.Time)))
		}
		return name + " drained"
	case api.QuiesceDrainTimedOut:
		return name + " did not drain in time: " + q.Message
	case api.QuiesceRestored:
		return fmt.Sprintf("%s restored to %s replicas", name, replicaCount(q.OriginalReplicas))
	case api.QuiescePending:
		return ""
	}
	return name + " " + string(q.State)
}

// trustLine tells that a workload trusting a rotated CA rolled onto it, or is not waited for.
func trustLine(tw api.TrustingWorkload, own string) string {
	name := workloadKey(tw.Kind, tw.Name) + namespaceSuffix(tw.Namespace, own)
	if tw.State == api.TrustCurrent {
		return name + " trusts the new CA certificate"
	}
	return name + " not waited for: " + tw.Message
}

// leafLine tells where a cascade's leaf Certificate is.
func leafLine(c api.LeafStatus, own string) string {
	name := "certificate/" + c.Name + namespaceSuffix(c.Namespace, own)
	switch c.State {
	case api.LeafIssuing:
		if c.PreviousRevision == nil {
			return name + " re-issuing"
		}
		return fmt.Sprintf("%s re-issuing from revision %d", name, *c.PreviousRevision)
	case api.LeafIssued:
		msg := name + " re-issued"
		if r := revisionChange(c.PreviousRevision, c.Revision); r != "" {
			msg += " (revision " + r + ")"
		}
		if c.StartedAt != nil && c.FinishedAt != nil {
			msg += " in " + spanString(c.FinishedAt.Sub(c.StartedAt.Time))
		}
		return msg
	case api.LeafFailed:
		return name + " failed: " + c.Message
	case api.LeafPending:
	}
	return ""
}

// targetLine describes a target's new state; "" when there is nothing worth a line.
func targetLine(t, old api.TargetStatus, seen bool) string {
	name := workloadKey(t.Kind, t.Name)
	switch t.State {
	case api.TargetRestarting:
		if seen && old.State == api.TargetRestarting {
			if t.Message == "" {
				return ""
			}
			return name + ": " + t.Message
		}
		if t.Message != "" {
			return name + " restarting: " + t.Message
		}
		return name + " restarting"
	case api.TargetSucceeded:
		if t.StartedAt != nil && t.FinishedAt != nil {
			return fmt.Sprintf("%s restarted and healthy in %s", name, spanString(t.FinishedAt.Sub(t.StartedAt.Time)))
		}
		return name + " restarted and healthy"
	case api.TargetFailed:
		return name + " failed: " + t.Message
	case api.TargetSkipped:
		return name + " skipped: " + t.Message
	case api.TargetUpToDate:
		return name + " up to date: " + t.Message
	case api.TargetPending:
		return ""
	}
	return name + " " + string(t.State)
}

// spanString is kubectl's age format ("12s", "3m4s", "2d"), "0s" for none.
func spanString(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

// blockPrinter redraws a compact block in place on a terminal:
//
//	build-x7k2p  Restarting  1/2 restarted  policy build  1m5s
//	  quiesce  Deployment/workers  3→0  Drained     12s
//	  target   Deployment/build         Succeeded   15s
//	  target   Deployment/api           Restarting  5s   Waiting for deployment "api" rollout to finish...
//
// Long lines are clipped by the terminal rather than wrapped (autowrap is off while drawing), so moving
// the cursor up by the lines drawn always lands on the block's first line.
type blockPrinter struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	lines int
}

const (
	ansiAutowrapOff = "\x1b[?7l"
	ansiAutowrapOn  = "\x1b[?7h"
	ansiClearDown   = "\x1b[J"
)

func (p *blockPrinter) observe(ros []api.CertRollout) { p.draw(ros) }

func (p *blockPrinter) tick(ros []api.CertRollout) { p.draw(ros) }

func (p *blockPrinter) draw(ros []api.CertRollout) {
	p.drawBlocks(func(now time.Time, waited time.Duration) []blockRollout {
		blocks := make([]blockRollout, len(ros))
		for i := range ros {
			blocks[i] = newBlockRollout(&ros[i], now, waited)
		}
		return blocks
	})
}

// drawBlocks redraws the blocks build maps at now (waited: how long the block has been shown), aligned.
func (p *blockPrinter) drawBlocks(build func(now time.Time, waited time.Duration) []blockRollout) {
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	for _, b := range build(now, now.Sub(p.start)) {
		b.render(tw)
	}
	_ = tw.Flush()
	p.redraw(trimLines(buf.String()))
}

// redraw replaces the block drawn last with block.
func (p *blockPrinter) redraw(block string) {
	var out strings.Builder
	out.WriteString(ansiAutowrapOff)
	if p.lines > 0 {
		fmt.Fprintf(&out, "\x1b[%dA\r", p.lines)
	}
	out.WriteString(ansiClearDown)
	out.WriteString(block)
	out.WriteString(ansiAutowrapOn)
	p.lines = strings.Count(block, "\n")
	_, _ = io.WriteString(p.w, out.String())
}

// blockRollout is one rollout of the redrawn block: a header line and a row per step (quiesced and
// trusting workloads, leaves, targets), whose cells the block's tabwriter aligns.
type blockRollout struct {
	header string
	steps  [][]string
}

// newBlockRollout maps ro to its part of the block at now; waited is how long the block has been shown
// (for the no-controller notice).
func newBlockRollout(ro *api.CertRollout, now time.Time, waited time.Duration) blockRollout {
	st := ro.Status
	header := []string{ro.Name, orElse(string(st.Phase), "Pending"), st.Progress}
	if ro.Spec.Emergency != nil {
		header = append(header, "EMERGENCY")
	}
	if ro.Spec.Policy != "" {
		header = append(header, "policy "+ro.Spec.Policy)
	}
	header = append(header, blockHead{st.Phase, st.StartTime, st.CompletionTime, st.NextWindow, st.Message}.tail(now, waited, unclaimedMessage)...)
	b := blockRollout{header: joinNonEmpty(header, "  ")}
	for _, q := range st.Quiesced {
		b.steps = append(b.steps, []string{"quiesce", workloadKey(q.Kind, q.Name), replicaCount(q.OriginalReplicas) + "→0", string(q.State),
			rolloutElapsed(q.ScaledDownAt, q.DrainedAt, now), q.Message})
	}
	for _, w := range st.TrustedBy {
		b.steps = append(b.steps, []string{"trust", workloadKey(w.Kind, w.Name) + namespaceSuffix(w.Namespace, ro.Namespace), "", string(w.State), "", w.Message})
	}
	for _, c := range st.Certificates {
		b.steps = append(b.steps, []string{"leaf", c.Name + namespaceSuffix(c.Namespace, ro.Namespace), revisionChange(c.PreviousRevision, c.Revision), string(c.State),
			rolloutElapsed(c.StartedAt, c.FinishedAt, now), c.Message})
	}
	for _, t := range st.Targets {
		b.steps = append(b.steps, []string{"target", workloadKey(t.Kind, t.Name), "", string(t.State), rolloutElapsed(t.StartedAt, t.FinishedAt, now), t.Message})
	}
	return b
}

// blockHead is what a block's header says of any rollout's status after its name, phase and labels.
type blockHead struct {
	phase                         api.RolloutPhase
	start, completion, nextWindow *metav1.Time
	message                       string
}

// tail is the header's end: the elapsed time, then what the phase makes worth saying (that no
// controller picked it up, in unclaimed's words; the next window; the message while pending or once
// finished).
func (h blockHead) tail(now time.Time, waited time.Duration, unclaimed func(time.Duration) string) []string {
	out := []string{rolloutElapsed(h.start, h.completion, now)}
	switch {
	case h.phase == "" && waited >= unclaimedAfter:
		out = append(out, unclaimed(waited))
	case h.phase == api.PhaseWaitingForWindow && h.nextWindow != nil:
		out = append(out, "next window "+timestamp(h.nextWindow.Time)+" (in "+residual(h.nextWindow.Time, now)+")")
	case h.phase.Finished() || h.phase == api.PhasePending:
		out = append(out, h.message)
	}
	return out
}

// render writes the header and the steps to tw. The header has no tabs: it ends the tabwriter's column
// block, so each rollout's steps align among themselves.
func (b blockRollout) render(tw io.Writer) {
	fmt.Fprintln(tw, b.header)
	for _, cells := range b.steps {
		fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
	}
}

// elapsed is how long a rollout has run (or ran); "" before it started.
func rolloutElapsed(start, end *metav1.Time, now time.Time) string {
	var since, until *time.Time
	if start != nil {
		since = &start.Time
	}
	if end != nil {
		until = &end.Time
	}
	return elapsedTimes(since, until, now)
}

// elapsedTimes is until-since, or now-since while until is unset; "" without since.
func elapsedTimes(since, until *time.Time, now time.Time) string {
	if since == nil {
		return ""
	}
	if until != nil {
		return spanString(until.Sub(*since))
	}
	return spanString(now.Sub(*since))
}

func joinNonEmpty(parts []string, sep string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// trimLines drops the spaces tabwriter pads empty trailing cells with.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// isTerminalWriter reports whether w is a terminal (a character device), where progress is redrawn in place
// rather than printed as lines. A stat is enough: no dependency for one bit.
func isTerminalWriter(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
