// Package decide decides, for one workload, whether a certificate change calls for a restart. It is
// pure: the controller gathers an Input (what the workload runs on, its pods, its ledger, the time) and
// Decide returns a Decision through a chain of small named checks. `certrollout plan` calls the same code,
// so what it prints is what the controller does.
package decide

import (
	"fmt"
	"slices"
	"strings"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/probe"
)

// RestartBudgetWindow is the horizon of the per-workload restart budget (Input.RestartBudget).
const RestartBudgetWindow = 24 * time.Hour

// maxHistory bounds the restart history kept on a workload whatever the budget.
const maxHistory = 64

// RestartHistory is the value of api.AnnotationRestartHistory after a restart at now: the restarts of the
// last RestartBudgetWindow, this one included, at most maxHistory of them.
func RestartHistory(annotations map[string]string, now time.Time) string {
	times := append(recentRestarts(annotations, now), now.UTC())
	if len(times) > maxHistory {
		times = times[len(times)-maxHistory:]
	}
	parts := make([]string, len(times))
	for i, t := range times {
		parts[i] = t.UTC().Format(time.RFC3339)
	}
	return strings.Join(parts, ",")
}

// recentRestarts reads the restart history, keeping the times within RestartBudgetWindow before now;
// malformed entries are skipped.
func recentRestarts(annotations map[string]string, now time.Time) []time.Time {
	var out []time.Time
	for _, v := range strings.Split(annotations[api.AnnotationRestartHistory], ",") {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		if err == nil && now.Sub(t) < RestartBudgetWindow && !t.After(now) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// Action is what the controller should do.
type Action string

// Actions.
const (
	ActionNone    Action = "None"    // nothing to write
	ActionRecord  Action = "Record"  // write the ledger only: the pods already run on these certificates
	ActionRestart Action = "Restart" // roll the pods and write the ledger
	ActionBlock   Action = "Block"   // the pods are stale but a restart cannot help or is not allowed
	ActionWait    Action = "Wait"    // restart later, after RequeueAfter
	// ActionDelegate: the restart is due, but a RolloutPolicy governs the workload, so it happens through
	// the policy's CertRollout.
	ActionDelegate Action = "Delegate"
	// ActionReload: call the workload's reload hook on its pods instead of restarting them, and record
	// the attempt (ReloadAttempt).
	ActionReload Action = "Reload"
)

// Workload is what the decision needs to know about the object that owns the pods.
type Workload struct {
	Kind, Namespace, Name string
	Annotations           map[string]string
	// Paused Deployments, OnDelete update strategies and StatefulSet partitions keep a template change from
	// reaching (some of) the pods.
	Paused    bool
	OnDelete  bool
	Partition int32
}

// Pod is one pod of the workload. Started is when its containers last started; zero if not yet.
type Pod struct {
	Name    string
	Started time.Time
	// Job names the Job a CronJob's pod belongs to.
	Job string
	// IP is the pod's address, where a probe dials it; empty before it has one.
	IP string
	// Serves is what a TLS probe found the pod serving (package probe): Current or Old are facts that
	// override the start-time rule; empty when the pod was not probed.
	Serves probe.Verdict
}

// stale is the rule for one pod: what it serves, where a probe saw it, else when it started. A workload
// that reloads its certificates by itself has no pod stale by start time.
func (in Input) stale(p Pod) bool {
	switch p.Serves {
	case probe.Old:
		return true
	case probe.Current:
		return false
	case probe.NotProbed:
	}
	return !in.Reloads() && Stale(p.Started, in.Set.IssuedAt)
}

// reloaded reports whether the pod started before its certificates were issued and yet serves them: its
// process picked them up without a restart.
func (in Input) reloaded(p Pod) bool {
	return p.Serves == probe.Current && Stale(p.Started, in.Set.IssuedAt)
}

// Input is everything Decide looks at.
type Input struct {
	Now      time.Time
	Workload Workload
	// Set is the certificates the workload uses now.
	Set  inventory.Set
	Pods []Pod
	// Auto makes every workload eligible unless it opts out.
	Auto               bool
	MinRestartInterval time.Duration
	// SettlePeriod lets changes to several sources of one workload arrive before it restarts once.
	SettlePeriod time.Duration
	// Policy names the RolloutPolicy that governs the workload, if any: selecting a workload opts it in,
	// and its restarts are delegated to the policy's CertRollouts.
	Policy string
	// PolicySuspended is the governing policy's spec.suspend: a change freeze, during which certrollout
	// calls no reload hook of the workloads it governs either.
	PolicySuspended bool
	// RestartBudget is the most restarts certrollout makes of one workload within RestartBudgetWindow;
	// past it the workload's restarts stop (a circuit breaker for a Secret that keeps changing). 0: no
	// budget.
	RestartBudget int
	// NeverRefreshed is set when the workload reads a certificate through an environment variable or a
	// subPath mount, which the kubelet never updates: such a workload cannot reload it, whatever it says.
	NeverRefreshed bool
	// Probed is set when the workload's pods were probed for what they serve (it declares TLS ports and
	// probes are on): a reload can then be verified.
	Probed bool
	// ProbeGrace is how long after the certificates changed (Set.ChangedAt) a pod probed serving an old
	// one may still pick the new one up: the kubelet refreshes mounted files on its next sync.
	ProbeGrace time.Duration
	// Reload is the workload's reload hook (api.AnnotationReload), nil when it has none or it is invalid.
	Reload *ReloadHook
	// Hold, when set, holds a due restart: the workload uses a leaf certificate that a CA cascade is about
	// to re-issue, and restarting now would roll it twice (once for the CA, once for its leaf).
	Hold *Hold
}

// Hold says why a due restart waits for something else to finish first, and when to look again.
type Hold struct {
	Message      string
	RequeueAfter time.Duration
}

// Decision is the outcome for one workload.
type Decision struct {
	Action  Action
	Reason  string
	Message string
	// Set is what the ledger should record on Record and Restart.
	Set inventory.Set
	// StalePods are the pods that run on old certificates: they serve one (probed), or started before the
	// certificates they use were issued.
	StalePods []string
	// ReloadedPods started before the certificates were issued but serve them (probed): not stale.
	ReloadedPods []string
	// RequeueAfter is set with ActionWait.
	RequeueAfter time.Duration
	// Verify asks that the restart be verified by probes once the new pods run (the controller sets it
	// for workloads with TLS ports); the restart then writes a pending Verification.
	Verify bool
}

// Ledger is what a workload's annotations say about the certificates its pods run on.
type Ledger struct {
	Hash        string
	NotAfter    time.Time
	RestartedAt time.Time
}

// ReadLedger reads the ledger annotations; malformed times read as zero.
func ReadLedger(annotations map[string]string) Ledger {
	l := Ledger{Hash: annotations[api.AnnotationCertificateHash]}
	l.NotAfter, _ = time.Parse(time.RFC3339, annotations[api.AnnotationCertificateNotAfter])
	l.RestartedAt, _ = time.Parse(time.RFC3339, annotations[api.AnnotationRestartedAt])
	return l
}

// Enabled reports whether certrollout may write to the workload.
func Enabled(annotations map[string]string, auto bool) bool {
	switch strings.ToLower(strings.TrimSpace(annotations[api.AnnotationEnabled])) {
	case "true":
		return true
	case "false":
		return false
	default:
		return auto
	}
}

// OptedOut reports whether the workload refuses certrollout outright (certrollout.io/enabled: "false"):
// no restart, no quiesce, whoever asks, a policy's selector or a CertRollout naming it.
func OptedOut(annotations map[string]string) bool {
	return strings.EqualFold(strings.TrimSpace(annotations[api.AnnotationEnabled]), "false")
}

// ReloadsItself reports whether the workload says its processes reload their certificate files when they
// change (api.AnnotationReloadsItself). Environment variables and subPath mounts are never refreshed, so
// the annotation is only taken at its word with Input.Reloads.
func ReloadsItself(annotations map[string]string) bool {
	return strings.EqualFold(strings.TrimSpace(annotations[api.AnnotationReloadsItself]), "true")
}

// Reloads reports whether the workload's pods pick changed certificates up by themselves: it says so, and
// it reads none through an environment variable or a subPath mount.
func (in Input) Reloads() bool { return ReloadsItself(in.Workload.Annotations) && !in.NeverRefreshed }

// Stale is the one staleness rule: a pod that started at started runs on certificates older than ones
// issued at issuedAt. Start and issuance times have one-second resolution, so a pod that started in the
// same second as the issuance counts as stale: it may have loaded the old certificate, and a spare
// restart beats a missed one. A pod that has not started yet is not stale.
func Stale(started, issuedAt time.Time) bool {
	return !started.IsZero() && !started.After(issuedAt)
}

// facts are derived once from the Input and shared by the checks.
type facts struct {
	ledger  Ledger
	enabled bool
	stale   []string
	// servingOld counts the stale pods a probe saw serving an old certificate.
	servingOld int
	// reloaded are the pods a probe saw serving the current certificates although they started before
	// they were issued.
	reloaded []string
	// staleJobs are the Jobs of the stale pods (CronJobs only), sorted and unique.
	staleJobs []string
}

// check returns a decision to stop the chain, or nil to go on.
type check struct {
	name string
	fn   func(Input, facts) *Decision
}

// chain is evaluated in order; the first check that decides wins, and a workload that passes them all is
// restarted.
var chain = []check{
	{"usesCertificates", usesCertificates},
	{"ledgerCurrent", ledgerCurrent},
	{"propagating", propagating},
	{"reloadsItself", reloadsItself},
	{"reloadedByItself", reloadedByItself},
	{"podsCurrent", podsCurrent},
	{"enabled", enabled},
	{"restartReachesPods", restartReachesPods},
	{"notHeld", notHeld},
	{"settled", settled},
	{"cooldown", cooldown},
	{"budget", budget},
	{"reloadFirst", reloadFirst},
	{"governed", governed},
}

// Restart decides whether the workload restarts: it runs the chain.
func Restart(in Input) Decision {
	f := facts{ledger: ReadLedger(in.Workload.Annotations), enabled: Enabled(in.Workload.Annotations, in.Auto || in.Policy != "")}
	for _, p := range in.Pods {
		switch {
		case in.stale(p):
			f.stale = append(f.stale, p.Name)
			if p.Serves == probe.Old {
				f.servingOld++
			}
			if p.Job != "" {
				f.staleJobs = append(f.staleJobs, p.Job)
			}
		case in.reloaded(p):
			f.reloaded = append(f.reloaded, p.Name)
		}
	}
	slices.Sort(f.staleJobs)
	f.staleJobs = slices.Compact(f.staleJobs)
	for _, c := range chain {
		if d := c.fn(in, f); d != nil {
			d.Set, d.StalePods, d.ReloadedPods = in.Set, f.stale, f.reloaded
			return *d
		}
	}
	reason, msg := api.ReasonCertificateRenewed, fmt.Sprintf("certificates changed (%s → %s)", short(f.ledger.Hash), in.Set.Hash)
	if f.ledger.Hash == "" {
		reason, msg = api.ReasonStalePods, fmt.Sprintf("%d pod(s) started before the certificates they use were issued at %s", len(f.stale), in.Set.IssuedAt.Format(time.RFC3339))
	}
	msg += probedNote(f) + reloadNote(in)
	return Decision{Action: ActionRestart, Reason: reason, Message: msg, Set: in.Set, StalePods: f.stale, ReloadedPods: f.reloaded}
}

func usesCertificates(in Input, _ facts) *Decision {
	if in.Set.Empty() {
		return &Decision{Action: ActionNone, Reason: api.ReasonNoCertificates, Message: "uses no certificates"}
	}
	return nil
}

func ledgerCurrent(in Input, f facts) *Decision {
	if f.ledger.Hash == in.Set.Hash {
		return &Decision{Action: ActionNone, Reason: api.ReasonUpToDate, Message: "pods run on the current certificates " + in.Set.Hash}
	}
	return nil
}

// reloadsItself: a workload whose processes pick changed certificate files up by themselves runs on the
// current certificates as soon as they change; the ledger records them and nothing restarts. (Probing what
// the pods serve, rather than trusting the annotation, is issue 18's.)
func reloadsItself(in Input, f facts) *Decision {
	if !in.Reloads() || len(f.stale) > 0 { // a pod probed serving an old certificate did not reload
		return nil
	}
	d := &Decision{Action: ActionRecord, Reason: api.ReasonReloadsItself,
		Message: fmt.Sprintf("reloads its certificates by itself (%s); its pods run on %s without a restart", api.AnnotationReloadsItself, in.Set.Hash)}
	if !f.enabled {
		d.Action = ActionNone
	}
	return d
}

// propagating waits, after a change of certificates, while a pod probed serving an old one may still be
// about to serve the new one: the kubelet writes renewed files into running pods on its next sync, and a
// process that reloads them (or a reload hook, called once they are there) needs that long. Workloads
// that read a certificate where the kubelet never refreshes it do not wait.
func propagating(in Input, f facts) *Decision {
	if f.servingOld == 0 || in.ProbeGrace <= 0 || in.NeverRefreshed || in.Set.ChangedAt.IsZero() {
		return nil
	}
	until := in.Set.ChangedAt.Add(in.ProbeGrace)
	if !in.Now.Before(until) {
		return nil
	}
	return &Decision{Action: ActionWait, Reason: api.ReasonPropagating, RequeueAfter: min(until.Sub(in.Now), propagationPoll),
		Message: fmt.Sprintf("%d pod(s) still serve an old certificate; the kubelet refreshes mounted certificates on its next sync: looking again until %s",
			f.servingOld, until.UTC().Format(time.RFC3339))}
}

// propagationPoll is how often pods are probed again while they may still pick renewed certificates up.
const propagationPoll = 10 * time.Second

// reloadedByItself: every pod that started before the certificates were issued already serves them, as
// probes showed; the processes reloaded them by themselves. The ledger records it and nothing restarts.
func reloadedByItself(in Input, f facts) *Decision {
	if len(f.stale) > 0 || len(f.reloaded) == 0 || in.Workload.Kind == api.KindCronJob {
		return nil // a CronJob has no ledger: podsCurrent says so
	}
	d := &Decision{Action: ActionRecord, Reason: api.ReasonReloadedByItself,
		Message: fmt.Sprintf("reloaded by itself: %d pod(s) started before the certificates were issued at %s but already serve %s (probed); not restarted",
			len(f.reloaded), in.Set.IssuedAt.Format(time.RFC3339), in.Set.Hash)}
	if a, ok := ReadReloadAttempt(in.Workload.Annotations); ok && a.Hash == in.Set.Hash && in.Reload != nil {
		d.Reason = api.ReasonReloaded
		d.Message = fmt.Sprintf("reloaded through its hook %s: %d pod(s) serve %s (probed); not restarted", in.Reload, len(f.reloaded), in.Set.Hash)
	}
	if !f.enabled {
		d.Action = ActionNone
	}
	return d
}

// probedNote says how many of the stale pods a probe saw serving an old certificate, and how many pods
// reloaded by themselves; "" when no probe said anything.
func probedNote(f facts) string {
	var parts []string
	if f.servingOld > 0 {
		parts = append(parts, fmt.Sprintf("%d probed serving an old certificate", f.servingOld))
	}
	if len(f.reloaded) > 0 {
		parts = append(parts, fmt.Sprintf("%d already serve the new one (reloaded by itself)", len(f.reloaded)))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// podsCurrent: pods that all started after the certificates were issued already run on them (first sight
// of a workload, or someone restarted it); only the ledger needs writing. A CronJob has no ledger: each
// Job mounts the certificates of its day.
func podsCurrent(in Input, f facts) *Decision {
	if len(f.stale) > 0 {
		return nil
	}
	if in.Workload.Kind == api.KindCronJob {
		return &Decision{Action: ActionNone, Reason: api.ReasonCronJob, Message: "no running Job uses old certificates; the next Job mounts the current ones"}
	}
	d := &Decision{Action: ActionRecord, Reason: api.ReasonPodsCurrent, Message: "pods started after the certificates " + in.Set.Hash + " were issued"}
	if !f.enabled {
		d.Action = ActionNone
	}
	return d
}

func enabled(_ Input, f facts) *Decision {
	if f.enabled {
		return nil
	}
	return &Decision{Action: ActionNone, Reason: api.ReasonNotEnabled,
		Message: fmt.Sprintf("%d pod(s) run on old certificates; not restarted: set %s=true to let certrollout restart it", len(f.stale), api.AnnotationEnabled)}
}

func restartReachesPods(in Input, f facts) *Decision {
	w := in.Workload
	block := func(reason, msg string) *Decision {
		return &Decision{Action: ActionBlock, Reason: reason, Message: fmt.Sprintf("%d pod(s) run on old certificates, but %s", len(f.stale), msg)}
	}
	switch {
	case w.Kind == api.KindPod:
		if strings.EqualFold(w.Annotations[api.AnnotationDeleteStalePods], "true") {
			return nil
		}
		return block(api.ReasonBarePod, "a bare pod cannot be rolled; set "+api.AnnotationDeleteStalePods+"=true to let certrollout delete it")
	case w.Kind == api.KindCronJob:
		return &Decision{Action: ActionBlock, Reason: api.ReasonStaleRunningJobs, Message: fmt.Sprintf(
			"%d pod(s) of running Job(s) %s started before the certificates were issued and keep the old ones until they finish; CronJobs are not restarted, the next Job mounts the current certificates",
			len(f.stale), strings.Join(f.staleJobs, ", "))}
	case w.Paused:
		return block(api.ReasonDeploymentPaused, "the Deployment is paused")
	case w.OnDelete:
		return block(api.ReasonOnDeleteStrategy, "its update strategy is OnDelete: pods change only when deleted")
	case w.Partition > 0:
		return block(api.ReasonPartitioned, fmt.Sprintf("its rolling update partition %d keeps lower ordinals on the old revision", w.Partition))
	}
	return nil
}

// notHeld waits while a CA cascade re-issues a leaf the workload uses: it rolls once, onto its new leaf,
// instead of once for the CA and again for the leaf.
func notHeld(in Input, _ facts) *Decision {
	if in.Hold == nil {
		return nil
	}
	return &Decision{Action: ActionWait, Reason: api.ReasonCascadeInProgress, Message: in.Hold.Message, RequeueAfter: in.Hold.RequeueAfter}
}

// settled waits until the sources have been quiet for the settle period, so that a Secret and a ConfigMap
// (or a CA bundle and its leaf) renewed together cause one rollout, not two.
func settled(in Input, _ facts) *Decision {
	if in.SettlePeriod <= 0 || in.Set.ChangedAt.IsZero() {
		return nil
	}
	quiet := in.Set.ChangedAt.Add(in.SettlePeriod)
	if !in.Now.Before(quiet) {
		return nil
	}
	return &Decision{Action: ActionWait, Reason: api.ReasonSettling, RequeueAfter: quiet.Sub(in.Now),
		Message: fmt.Sprintf("certificates changed at %s; waiting %s for related changes", in.Set.ChangedAt.Format(time.RFC3339), in.SettlePeriod)}
}

func cooldown(in Input, f facts) *Decision {
	if f.ledger.RestartedAt.IsZero() || in.MinRestartInterval <= 0 {
		return nil
	}
	next := f.ledger.RestartedAt.Add(in.MinRestartInterval)
	if !in.Now.Before(next) {
		return nil
	}
	return &Decision{Action: ActionWait, Reason: api.ReasonCooldown, RequeueAfter: next.Sub(in.Now),
		Message: fmt.Sprintf("restarted at %s; the next restart may start at %s", f.ledger.RestartedAt.Format(time.RFC3339), next.Format(time.RFC3339))}
}

// budget stops the restarts of a workload that certrollout already restarted RestartBudget times within
// RestartBudgetWindow: something keeps changing its certificates, and restarting it again and again
// would be an outage of its own. It blocks (an Event, a metric to alert on) until the oldest of those
// restarts leaves the window.
func budget(in Input, f facts) *Decision {
	if in.RestartBudget <= 0 {
		return nil
	}
	recent := recentRestarts(in.Workload.Annotations, in.Now)
	if len(recent) < in.RestartBudget {
		return nil
	}
	next := recent[len(recent)-in.RestartBudget].Add(RestartBudgetWindow)
	return &Decision{Action: ActionBlock, Reason: api.ReasonRestartBudget, RequeueAfter: next.Sub(in.Now),
		Message: fmt.Sprintf("%d pod(s) run on old certificates, but the workload was restarted %d times in the last %s, its budget (--max-restarts-per-day); the next restart may start at %s",
			len(f.stale), len(recent), RestartBudgetWindow, next.UTC().Format(time.RFC3339))}
}

// governed hands a due restart to the workload's RolloutPolicy.
func governed(in Input, f facts) *Decision {
	if in.Policy == "" {
		return nil
	}
	return &Decision{Action: ActionDelegate, Reason: api.ReasonGovernedByPolicy,
		Message: fmt.Sprintf("%d pod(s) run on old certificates; RolloutPolicy %s restarts them through a CertRollout", len(f.stale), in.Policy) + reloadNote(in)}
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	return h
}
