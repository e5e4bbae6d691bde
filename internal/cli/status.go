package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// StatusOptions holds the flags of `certrollout status`.
type StatusOptions struct {
	KubeFlags
	OutputFlag

	Names    []string
	Selector string
	Watch    bool
	Timeout  time.Duration

	// Now is the clock ages and durations are computed against (tests fix it).
	Now func() time.Time
	// Tick paces the redraws of --watch; nil: every second.
	Tick <-chan time.Time

	IOStreams
}

// RolloutStatusList is what `status -o json|yaml` prints without a name (kind RolloutStatusList), and
// RolloutStatus what it prints for one name. They are documented in docs/status.md; fields are only
// added within a version.
type RolloutStatusList struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      []RolloutStatus `json:"items"`
}

// RolloutStatus is one CertRollout: what it restarts, why, and each step with its times.
type RolloutStatus struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Policy is the RolloutPolicy it follows; empty for none.
	Policy  string         `json:"policy,omitempty"`
	Trigger RolloutTrigger `json:"trigger"`
	// Phase is Pending, WaitingForWindow, RefreshingTrust, Reissuing, Quiescing, Restarting, Restoring, Succeeded or Failed; empty
	// until a controller picks the rollout up.
	Phase    string `json:"phase"`
	Progress string `json:"progress,omitempty"`
	Message  string `json:"message,omitempty"`
	// Created, Started (left Pending and WaitingForWindow) and Completed, RFC 3339.
	Created    *time.Time `json:"created,omitempty"`
	Started    *time.Time `json:"started,omitempty"`
	Completed  *time.Time `json:"completed,omitempty"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// DurationSeconds is Completed-Started, or now-Started while it runs.
	DurationSeconds *int64 `json:"durationSeconds,omitempty"`
	// RequestedTargets are spec.targets; empty when the rollout takes all its policy governs.
	RequestedTargets []string `json:"requestedTargets,omitempty"`
	// Cascade is spec.cascade: the CA issuer whose leaves a CA cascade re-issues.
	Cascade *CascadeInfo `json:"cascade,omitempty"`
	// TrustedBy are the workloads a cascade waits for; Certificates the leaves it re-issues.
	TrustedBy    []TrustStep        `json:"trustedBy,omitempty"`
	Certificates []LeafStep         `json:"certificates,omitempty"`
	Quiesced     []QuiescedStep     `json:"quiesced,omitempty"`
	Targets      []TargetStep       `json:"targets,omitempty"`
	Conditions   []RolloutCondition `json:"conditions,omitempty"`
}

// CascadeInfo is a cascade's issuer and CA certificate.
type CascadeInfo struct {
	IssuerKind    string `json:"issuerKind"`
	IssuerName    string `json:"issuerName"`
	CAFingerprint string `json:"caFingerprint"`
	MaxConcurrent int32  `json:"maxConcurrent,omitempty"`
}

// TrustStep is a workload that trusts the rotated CA: Pending, Current or NotWaitedFor.
type TrustStep struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Message   string `json:"message,omitempty"`
}

// LeafStep is a leaf Certificate a cascade re-issues: Pending, Issuing, Issued or Failed.
type LeafStep struct {
	Namespace        string     `json:"namespace"`
	Name             string     `json:"name"`
	State            string     `json:"state"`
	PreviousRevision *int32     `json:"previousRevision,omitempty"`
	Revision         *int32     `json:"revision,omitempty"`
	StartedAt        *time.Time `json:"startedAt,omitempty"`
	FinishedAt       *time.Time `json:"finishedAt,omitempty"`
	DurationSeconds  *int64     `json:"durationSeconds,omitempty"`
	Message          string     `json:"message,omitempty"`
}

// RolloutTrigger is why a rollout exists.
type RolloutTrigger struct {
	// Type is CertificateRenewed, Deadline, Manual or CARotated.
	Type    string `json:"type"`
	Message string `json:"message,omitempty"`
}

// QuiescedStep is a workload scaled to zero for the rollout.
type QuiescedStep struct {
	Kind             string     `json:"kind"`
	Name             string     `json:"name"`
	OriginalReplicas *int32     `json:"originalReplicas,omitempty"`
	State            string     `json:"state"`
	ScaledDownAt     *time.Time `json:"scaledDownAt,omitempty"`
	DrainedAt        *time.Time `json:"drainedAt,omitempty"`
	RestoredAt       *time.Time `json:"restoredAt,omitempty"`
	Message          string     `json:"message,omitempty"`
}

// TargetStep is a restarted workload.
type TargetStep struct {
	Kind            string     `json:"kind"`
	Name            string     `json:"name"`
	State           string     `json:"state"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	DurationSeconds *int64     `json:"durationSeconds,omitempty"`
	Message         string     `json:"message,omitempty"`
}

// RolloutCondition is one status condition (Complete, Failed).
type RolloutCondition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

func newStatusCommand(streams IOStreams) *cobra.Command {
	o := &StatusOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status [NAME...]",
		Short: "Show CertRollouts: phase, steps and timings",
		Long: `Show CertRollouts, the records of orchestrated restarts.

Without a name, a table of the rollouts in the namespace (-A: all namespaces; -l: by label, for example
certrollout.io/policy=build), oldest first. With names, each rollout's steps: the workloads it quiesced
(original replicas, when scaled down, drained and restored), its targets (state, start, finish, duration,
message), its conditions and trigger. --watch follows named rollouts until they finish, like
restart --wait.`,
		Example: `  # The rollouts of the current namespace
  certrollout status

  # One rollout, step by step
  certrollout status build-x7k2p

  # The rollouts of policy build everywhere, as JSON
  certrollout status -A -l certrollout.io/policy=build -o json`,
		ValidArgsFunction: completeRollouts(&o.KubeFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addKubeFlags(cmd, true)
	o.addOutputFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Only rollouts with these labels (for example certrollout.io/policy=build).")
	f.BoolVarP(&o.Watch, "watch", "w", false, "Follow the named rollouts until they finish; exit 1 if one fails.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --watch, stop after this long and exit 2 (0: no limit).")
	return cmd
}

// completeRollouts completes CertRollout names of the namespace.
func completeRollouts(k *KubeFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(k, func() client.ObjectList { return &api.CertRolloutList{} })
}

// Complete loads the kubeconfig.
func (o *StatusOptions) Complete() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o.KubeFlags.Complete()
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if err := o.validateOutput(); err != nil {
		return err
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
		if len(o.Names) > 0 {
			return errors.New("name rollouts or select them with --selector, not both")
		}
	}
	if len(o.Names) > 0 && o.AllNamespaces {
		return errors.New("a rollout name needs its namespace: use -n NAMESPACE instead of -A")
	}
	if o.Watch && len(o.Names) == 0 {
		return errors.New("--watch follows named rollouts: certrollout status NAME --watch")
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Timeout > 0 && !o.Watch {
		return errors.New("--timeout only applies with --watch")
	}
	return nil
}

// Run prints the rollouts.
func (o *StatusOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	if len(o.Names) == 0 {
		return o.list(ctx, c)
	}
	ros := make([]api.CertRollout, 0, len(o.Names))
	for _, name := range o.Names {
		var ro api.CertRollout
		if err := c.Get(ctx, client.ObjectKey{Namespace: o.ResolvedNamespace(), Name: name}, &ro); err != nil {
			if apierrors.IsNotFound(err) && !isNotServed(err, api.GroupVersion.Group) {
				return fmt.Errorf("CertRollout %q not found in namespace %q (list them with `certrollout status -n %s`)", name, o.ResolvedNamespace(), o.ResolvedNamespace())
			}
			return explain(err, o.Config())
		}
		ros = append(ros, ro)
	}
	var waitErr error
	if o.Watch {
		ros, waitErr = o.follow(ctx, c, ros)
		if waitErr != nil && len(ros) == 0 {
			return waitErr
		}
	}
	if err := o.printDetails(o.Out, ros); err != nil {
		return err
	}
	return waitErr
}

func (o *StatusOptions) follow(ctx context.Context, c client.WithWatch, ros []api.CertRollout) ([]api.CertRollout, error) {
	keys := make([]types.NamespacedName, len(ros))
	for i := range ros {
		keys[i] = rolloutKey(&ros[i])
	}
	info := o.Out
	if o.structured() {
		info = o.ErrOut
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	tick := o.Tick
	if tick == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	p := newProgressPrinter(info, o.Now)
	p.observe(ros)
	final, err := followRollouts(wctx, c, keys, p, tick)
	for i := range final {
		if final[i].Status.Phase == "" && ros[i].Status.Phase != "" {
			final[i] = ros[i]
		}
	}
	if !o.structured() {
		fmt.Fprintln(info)
	}
	return final, waitResult(final, err, o.Timeout, func(err error) error { return explain(err, o.Config()) })
}

func (o *StatusOptions) list(ctx context.Context, c client.Client) error {
	opts := []client.ListOption{client.InNamespace(o.ListNamespace())}
	if o.Selector != "" {
		sel, _ := labels.Parse(o.Selector) // checked by Validate
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var list api.CertRolloutList
	if err := c.List(ctx, &list, opts...); err != nil {
		return explain(err, o.Config())
	}
	sortRollouts(list.Items)
	if o.structured() {
		doc := RolloutStatusList{APIVersion: ReportAPIVersion, Kind: "RolloutStatusList", Items: []RolloutStatus{}}
		for i := range list.Items {
			doc.Items = append(doc.Items, rolloutStatus(&list.Items[i], o.Now(), false))
		}
		return o.printDocument(o.Out, doc)
	}
	if len(list.Items) == 0 {
		if o.AllNamespaces {
			fmt.Fprintln(o.ErrOut, "No CertRollouts found.")
		} else {
			fmt.Fprintf(o.ErrOut, "No CertRollouts found in namespace %s.\n", o.ListNamespace())
		}
		return nil
	}
	return printRolloutTable(o.Out, list.Items, o.Now(), o.AllNamespaces, o.wide())
}

// sortRollouts orders rollouts as history reads: by namespace, then oldest first, then by name.
func sortRollouts(ros []api.CertRollout) {
	sort.SliceStable(ros, func(i, j int) bool {
		a, b := ros[i], ros[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// printRolloutTable prints NAME POLICY TRIGGER PHASE PROGRESS STARTED DURATION AGE (NAMESPACE first
// under -A; wide adds TARGETS and MESSAGE).
func printRolloutTable(w io.Writer, ros []api.CertRollout, now time.Time, allNamespaces, wide bool) error {
	headers := []string{"NAME", "POLICY", "TRIGGER", "PHASE", "PROGRESS", "STARTED", "DURATION", "AGE"}
	if allNamespaces {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	if wide {
		headers = append(headers, "TARGETS", "MESSAGE")
	}
	t := newTable(w, headers...)
	for i := range ros {
		ro := &ros[i]
		st := ro.Status
		var started time.Time
		if st.StartTime != nil {
			started = st.StartTime.Time
		}
		row := []string{ro.Name, ro.Spec.Policy, string(ro.Spec.Trigger.Type), string(st.Phase), st.Progress,
			age(started, now), rolloutElapsed(st.StartTime, st.CompletionTime, now), age(ro.CreationTimestamp.Time, now)}
		if allNamespaces {
			row = append([]string{ro.Namespace}, row...)
		}
		if wide {
			row = append(row, targetsColumn(ro), st.Message)
		}
		t.row(row...)
	}
	return t.flush()
}

// targetsColumn lists the targets: those in the status once it started, else those requested, else
// "all of <policy>".
func targetsColumn(ro *api.CertRollout) string {
	if len(ro.Status.Targets) > 0 {
		return targetNames(ro.Status.Targets)
	}
	if len(ro.Spec.Targets) > 0 {
		return refsString(ro.Spec.Targets)
	}
	if ro.Spec.Policy != "" {
		return "all of " + ro.Spec.Policy
	}
	return ""
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func seconds(since, until *metav1.Time, now time.Time) *int64 {
	if since == nil {
		return nil
	}
	end := now
	if until != nil {
		end = until.Time
	}
	s := int64(end.Sub(since.Time).Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	return &s
}

// rolloutStatus is the documented view of a CertRollout. typed sets apiVersion and kind, for a
// document of its own.
func rolloutStatus(ro *api.CertRollout, now time.Time, typed bool) RolloutStatus {
	st := ro.Status
	out := RolloutStatus{
		Namespace: ro.Namespace, Name: ro.Name, Policy: ro.Spec.Policy,
		Trigger: RolloutTrigger{Type: string(ro.Spec.Trigger.Type), Message: ro.Spec.Trigger.Message},
		Phase:   string(st.Phase), Progress: st.Progress, Message: st.Message,
		Started: timePtr(st.StartTime), Completed: timePtr(st.CompletionTime), NextWindow: timePtr(st.NextWindow),
		DurationSeconds: seconds(st.StartTime, st.CompletionTime, now),
	}
	if typed {
		out.APIVersion, out.Kind = ReportAPIVersion, "RolloutStatus"
	}
	if !ro.CreationTimestamp.IsZero() {
		out.Created = timePtr(&ro.CreationTimestamp)
	}
	for _, t := range ro.Spec.Targets {
		out.RequestedTargets = append(out.RequestedTargets, refString(t))
	}
	if c := ro.Spec.Cascade; c != nil {
		out.Cascade = &CascadeInfo{IssuerKind: c.IssuerRef.Kind, IssuerName: c.IssuerRef.Name, CAFingerprint: c.CAFingerprint, MaxConcurrent: c.MaxConcurrent}
	}
	for _, t := range st.TrustedBy {
		out.TrustedBy = append(out.TrustedBy, TrustStep{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name, State: string(t.State), Message: t.Message})
	}
	for _, c := range st.Certificates {
		step := LeafStep{Namespace: c.Namespace, Name: c.Name, State: string(c.State), PreviousRevision: c.PreviousRevision, Revision: c.Revision,
			StartedAt: timePtr(c.StartedAt), FinishedAt: timePtr(c.FinishedAt), Message: c.Message}
		if c.State != api.LeafPending {
			step.DurationSeconds = seconds(c.StartedAt, c.FinishedAt, now)
		}
		out.Certificates = append(out.Certificates, step)
	}
	for _, q := range st.Quiesced {
		out.Quiesced = append(out.Quiesced, QuiescedStep{
			Kind: q.Kind, Name: q.Name, OriginalReplicas: q.OriginalReplicas, State: string(q.State),
			ScaledDownAt: timePtr(q.ScaledDownAt), DrainedAt: timePtr(q.DrainedAt), RestoredAt: timePtr(q.RestoredAt), Message: q.Message,
		})
	}
	for _, t := range st.Targets {
		step := TargetStep{Kind: t.Kind, Name: t.Name, State: string(t.State), StartedAt: timePtr(t.StartedAt), FinishedAt: timePtr(t.FinishedAt), Message: t.Message}
		if t.State != api.TargetPending && t.State != api.TargetSkipped && t.State != api.TargetUpToDate {
			step.DurationSeconds = seconds(t.StartedAt, t.FinishedAt, now)
		}
		out.Targets = append(out.Targets, step)
	}
	for _, c := range st.Conditions {
		out.Conditions = append(out.Conditions, RolloutCondition{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime.UTC(),
		})
	}
	return out
}

// printDetails prints named rollouts: as documents, or step by step.
func (o *StatusOptions) printDetails(w io.Writer, ros []api.CertRollout) error {
	now := o.Now()
	if o.structured() {
		if len(ros) == 1 {
			return o.printDocument(w, rolloutStatus(&ros[0], now, true))
		}
		doc := RolloutStatusList{APIVersion: ReportAPIVersion, Kind: "RolloutStatusList", Items: []RolloutStatus{}}
		for i := range ros {
			doc.Items = append(doc.Items, rolloutStatus(&ros[i], now, false))
		}
		return o.printDocument(w, doc)
	}
	for i := range ros {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := describeRollout(w, &ros[i], now); err != nil {
			return err
		}
	}
	return nil
}

// describeRollout prints one rollout the way kubectl describe reads: fields, then the steps as tables.
func describeRollout(w io.Writer, ro *api.CertRollout, now time.Time) error {
	st := ro.Status
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(w, "%-12s %s\n", name+":", value)
		}
	}
	at := func(t *metav1.Time) string {
		if t == nil {
			return ""
		}
		return timestamp(t.Time) + " (" + age(t.Time, now) + " ago)"
	}
	field("Name", ro.Name)
	field("Namespace", ro.Namespace)
	field("Policy", orElse(ro.Spec.Policy, "<none>"))
	trigger := string(ro.Spec.Trigger.Type)
	if ro.Spec.Trigger.Message != "" {
		trigger += ": " + ro.Spec.Trigger.Message
	}
	field("Trigger", trigger)
	if c := ro.Spec.Cascade; c != nil {
		field("Cascade", fmt.Sprintf("%s %s, CA certificate %s, at most %d leaf Certificate(s) re-issued at once", c.IssuerRef.Kind, c.IssuerRef.Name, c.CAFingerprint, maxConcurrentOf(c)))
	} else {
		field("Targets", orElse(refsString(ro.Spec.Targets), "all the policy governs"))
	}
	field("Phase", orElse(string(st.Phase), "<none> (no controller has picked it up)"))
	field("Progress", st.Progress)
	field("Message", st.Message)
	field("Created", at(&ro.CreationTimestamp))
	if st.NextWindow != nil {
		field("Next window", timestamp(st.NextWindow.Time)+" (in "+residual(st.NextWindow.Time, now)+")")
	}
	field("Started", at(st.StartTime))
	field("Completed", at(st.CompletionTime))
	if st.StartTime != nil {
		d := rolloutElapsed(st.StartTime, st.CompletionTime, now)
		if st.CompletionTime == nil {
			d += " so far"
		}
		field("Duration", d)
	}
	if len(st.TrustedBy) > 0 {
		fmt.Fprintln(w, "Trusted by:")
		t := newTable(indent(w), "WORKLOAD", "STATE", "MESSAGE")
		for _, tw := range st.TrustedBy {
			t.row(tw.Kind+"/"+tw.Name+namespaceSuffix(tw.Namespace, ro.Namespace), string(tw.State), tw.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Certificates) > 0 {
		fmt.Fprintln(w, "Certificates:")
		t := newTable(indent(w), "CERTIFICATE", "STATE", "REVISION", "STARTED", "FINISHED", "DURATION", "MESSAGE")
		for _, c := range st.Certificates {
			d := ""
			if c.State != api.LeafPending {
				d = rolloutElapsed(c.StartedAt, c.FinishedAt, now)
			}
			t.row(c.Name+namespaceSuffix(c.Namespace, ro.Namespace), string(c.State), revisionChange(c.PreviousRevision, c.Revision),
				metaTimestamp(c.StartedAt), metaTimestamp(c.FinishedAt), d, c.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Quiesced) > 0 {
		fmt.Fprintln(w, "Quiesced:")
		t := newTable(indent(w), "WORKLOAD", "REPLICAS", "STATE", "SCALED DOWN", "DRAINED", "RESTORED", "MESSAGE")
		for _, q := range st.Quiesced {
			t.row(q.Kind+"/"+q.Name, replicaCount(q.OriginalReplicas), string(q.State),
				metaTimestamp(q.ScaledDownAt), metaTimestamp(q.DrainedAt), metaTimestamp(q.RestoredAt), q.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Targets) > 0 {
		fmt.Fprintln(w, "Targets:")
		t := newTable(indent(w), "WORKLOAD", "STATE", "STARTED", "FINISHED", "DURATION", "MESSAGE")
		for _, tg := range st.Targets {
			d := ""
			if tg.State != api.TargetPending && tg.State != api.TargetSkipped && tg.State != api.TargetUpToDate {
				d = rolloutElapsed(tg.StartedAt, tg.FinishedAt, now)
			}
			t.row(tg.Kind+"/"+tg.Name, string(tg.State), metaTimestamp(tg.StartedAt), metaTimestamp(tg.FinishedAt), d, tg.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		t := newTable(indent(w), "TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE")
		for _, c := range st.Conditions {
			t.row(c.Type, string(c.Status), c.Reason, timestamp(c.LastTransitionTime.Time), c.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

// maxConcurrentOf is spec.cascade.maxConcurrent as the controller applies it (the CRD defaults it to 5).
func maxConcurrentOf(c *api.CascadeSpec) int32 {
	if c.MaxConcurrent > 0 {
		return c.MaxConcurrent
	}
	return 5
}

// namespaceSuffix names the namespace of an object outside the rollout's own (a ClusterIssuer's leaves and
// trusting workloads are anywhere): " -n ns".
func namespaceSuffix(ns, own string) string {
	if ns == "" || ns == own {
		return ""
	}
	return " -n " + ns
}

// revisionChange reads "2 → 3", "2 →" while issuing, or "" before the trigger.
func revisionChange(prev, cur *int32) string {
	switch {
	case prev == nil && cur == nil:
		return ""
	case prev == nil:
		return fmt.Sprintf("→ %d", *cur)
	case cur == nil:
		return fmt.Sprintf("%d →", *prev)
	}
	return fmt.Sprintf("%d → %d", *prev, *cur)
}

func metaTimestamp(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return timestamp(t.Time)
}

// indentWriter prefixes each line with two spaces (tables under a heading).
type indentWriter struct {
	w   io.Writer
	bol bool
}

func indent(w io.Writer) io.Writer { return &indentWriter{w: w, bol: true} }

func (i *indentWriter) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, c := range string(p) {
		if i.bol {
			b.WriteString("  ")
		}
		b.WriteRune(c)
		i.bol = c == '\n'
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
