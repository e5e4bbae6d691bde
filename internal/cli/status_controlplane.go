package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// `status` for ControlPlaneRollouts: a table of them under the CertRollouts of `status`, and
// `status --control-plane [NAME]` describing one node by node and component by component.

// validateControlPlane checks the flags of `status --control-plane`.
func (o *StatusOptions) validateControlPlane() error {
	if !o.ControlPlane {
		return nil
	}
	switch {
	case len(o.Names) > 1:
		return errors.New("status --control-plane describes one ControlPlaneRollout: name one, or none for the newest")
	case o.Selector != "":
		return errors.New("--selector selects CertRollouts: status --control-plane takes a ControlPlaneRollout name, or none for the newest")
	}
	return nil
}

// sortControlPlaneRollouts orders rollouts as history reads: oldest first, then by name.
func sortControlPlaneRollouts(ros []api.ControlPlaneRollout) {
	sort.SliceStable(ros, func(i, j int) bool {
		a, b := ros[i], ros[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// listControlPlaneRollouts lists every ControlPlaneRollout, oldest first; none when the cluster does not
// serve them (CRDs older than control-plane rollouts) or you may not list them (they are cluster-scoped:
// a namespace's users seldom may). opts select by label; a namespace would select nothing.
func listControlPlaneRollouts(ctx context.Context, c client.Client, opts ...client.ListOption) ([]api.ControlPlaneRollout, error) {
	var list api.ControlPlaneRolloutList
	if err := c.List(ctx, &list, opts...); err != nil {
		if isNotServed(err, api.GroupVersion.Group) || apimeta.IsNoMatchError(err) || apierrors.IsForbidden(err) {
			return nil, nil
		}
		return nil, err
	}
	sortControlPlaneRollouts(list.Items)
	return list.Items, nil
}

// runControlPlane is Run for --control-plane: the named ControlPlaneRollout, or the newest, described or
// followed.
func (o *StatusOptions) runControlPlane(ctx context.Context, c client.WithWatch) error {
	var ro api.ControlPlaneRollout
	if len(o.Names) == 1 {
		if err := c.Get(ctx, client.ObjectKey{Name: o.Names[0]}, &ro); err != nil {
			if isMissingObject(err, api.GroupVersion.Group) {
				return fmt.Errorf("ControlPlaneRollout %q not found (list them with `certrollout status`)", o.Names[0])
			}
			return explainControlPlane(err, o.Config())
		}
	} else {
		var list api.ControlPlaneRolloutList
		if err := c.List(ctx, &list); err != nil {
			return explainControlPlane(err, o.Config())
		}
		if len(list.Items) == 0 {
			if o.Watch {
				return errors.New("no ControlPlaneRollout to watch: create one with `certrollout restart --control-plane`")
			}
			fmt.Fprintln(o.ErrOut, "No ControlPlaneRollouts found.")
			return nil
		}
		sortControlPlaneRollouts(list.Items)
		ro = list.Items[len(list.Items)-1]
	}
	var waitErr error
	if o.Watch {
		info := o.progressWriter(o.IOStreams)
		p := newControlPlanePrinter(info, o.Now)
		p.observe(&ro)
		final, err := followControlPlaneFor(ctx, c, ro.Name, p, o.Timeout, o.Tick)
		if final != nil {
			ro = *final
		}
		if !o.structured() {
			fmt.Fprintln(info)
		}
		waitErr = controlPlaneWaitResult(&ro, err, o.Timeout, func(err error) error { return explainControlPlane(err, o.Config()) })
	}
	if o.structured() {
		if err := o.printDocument(o.Out, controlPlaneRolloutStatus(&ro, o.Now(), true)); err != nil {
			return err
		}
	} else if err := newControlPlaneDescription(&ro, o.Now()).render(o.Out); err != nil {
		return err
	}
	return waitErr
}

// newControlPlaneTableView is the table of ControlPlaneRollouts under `status`.
func newControlPlaneTableView(ros []api.ControlPlaneRollout, now time.Time, wide bool) rolloutTableView {
	v := rolloutTableView{headers: []string{"CONTROL-PLANE ROLLOUT", "PHASE", "TRIGGER", "NODES", "PROGRESS", "AGE"}}
	if wide {
		v.headers = append(v.headers, "CURRENT", "MESSAGE")
	}
	for i := range ros {
		ro := &ros[i]
		row := []string{ro.Name, string(ro.Status.Phase), string(ro.Spec.Trigger), controlPlaneNodesColumn(ro), ro.Status.Progress, age(ro.CreationTimestamp.Time, now)}
		if ro.Spec.Emergency != nil {
			row[2] += " (emergency)"
		}
		if wide {
			row = append(row, ro.Status.CurrentNode, ro.Status.Message)
		}
		v.rows = append(v.rows, row)
	}
	return v
}

// controlPlaneNodesColumn lists the nodes: those in the status once it started, else those requested,
// else "all".
func controlPlaneNodesColumn(ro *api.ControlPlaneRollout) string {
	if len(ro.Status.Nodes) > 0 {
		names := make([]string, len(ro.Status.Nodes))
		for i, n := range ro.Status.Nodes {
			names[i] = n.Name
		}
		return strings.Join(names, ",")
	}
	if len(ro.Spec.Nodes) > 0 {
		return strings.Join(ro.Spec.Nodes, ",")
	}
	return "all"
}

// controlPlaneRolloutStatus is the documented view of a ControlPlaneRollout. typed sets apiVersion and
// kind, for a document of its own.
func controlPlaneRolloutStatus(ro *api.ControlPlaneRollout, now time.Time, typed bool) ControlPlaneRolloutStatus {
	st := ro.Status
	out := ControlPlaneRolloutStatus{
		Name: ro.Name, Trigger: string(ro.Spec.Trigger), RequestedNodes: ro.Spec.Nodes, Emergency: ro.Spec.Emergency,
		Phase: string(st.Phase), Progress: st.Progress, Message: st.Message, CurrentNode: st.CurrentNode,
		Started: timePtr(st.StartTime), Completed: timePtr(st.CompletionTime), NextWindow: timePtr(st.NextWindow),
		DurationSeconds: seconds(st.StartTime, st.CompletionTime, now), Snapshot: st.Snapshot,
	}
	if typed {
		out.APIVersion, out.Kind = ReportAPIVersion, "ControlPlaneRolloutStatus"
	}
	if !ro.CreationTimestamp.IsZero() {
		out.Created = timePtr(&ro.CreationTimestamp)
	}
	for _, q := range st.Quiesced {
		out.Quiesced = append(out.Quiesced, QuiescedStep{
			Namespace: q.Namespace, Kind: q.Kind, Name: q.Name, OriginalReplicas: q.OriginalReplicas, State: string(q.State),
			ScaledDownAt: timePtr(q.ScaledDownAt), DrainedAt: timePtr(q.DrainedAt), RestoredAt: timePtr(q.RestoredAt), Message: q.Message,
		})
	}
	for _, n := range st.Nodes {
		step := ControlPlaneNodeStep{Name: n.Name, Phase: string(n.Phase), Step: string(n.Step), StartedAt: timePtr(n.StartedAt), CompletedAt: timePtr(n.CompletedAt),
			Message: n.Message, Health: n.Health, Renewed: n.Renewed, Components: n.Components, KubeconfigCopies: n.KubeconfigCopies}
		if n.Phase != api.NodePending {
			step.DurationSeconds = seconds(n.StartedAt, n.CompletedAt, now)
		}
		out.Nodes = append(out.Nodes, step)
	}
	out.Conditions = rolloutConditions(st.Conditions)
	return out
}

// newControlPlaneDescription maps a ControlPlaneRollout to its description at now: its fields, then
// tables of quiesced workloads, nodes, components, renewed files, kubeconfig copies, health checks and
// conditions.
func newControlPlaneDescription(ro *api.ControlPlaneRollout, now time.Time) rolloutDescription {
	st := ro.Status
	trigger := string(ro.Spec.Trigger)
	nodes := "every control-plane node"
	if len(ro.Spec.Nodes) > 0 {
		nodes = strings.Join(ro.Spec.Nodes, ", ")
	}
	f := describeFields{{"Name", ro.Name}, {"Trigger", trigger}, {"Nodes", nodes}}
	if e := ro.Spec.Emergency; e != nil {
		emergency := "requested by " + orElse(e.RequestedBy, "an unnamed user") + ": " + e.Reason
		if c := apimeta.FindStatusCondition(st.Conditions, api.ConditionEmergency); c != nil {
			emergency = c.Message
		}
		f = append(f, describeField{"Emergency", emergency})
	}
	f = append(f,
		describeField{"Phase", orElse(string(st.Phase), "<none> (no controller has picked it up)")},
		describeField{"Progress", st.Progress}, describeField{"Message", st.Message}, describeField{"Current", st.CurrentNode},
		describeField{"Created", timeAgo(&ro.CreationTimestamp, now)})
	if st.NextWindow != nil {
		f = append(f, describeField{"Next window", timestamp(st.NextWindow.Time) + " (in " + residual(st.NextWindow.Time, now) + ")"})
	}
	f = append(f, describeField{"Started", timeAgo(st.StartTime, now)}, describeField{"Completed", timeAgo(st.CompletionTime, now)})
	if st.StartTime != nil {
		d := rolloutElapsed(st.StartTime, st.CompletionTime, now)
		if st.CompletionTime == nil {
			d += " so far"
		}
		f = append(f, describeField{"Duration", d})
	}
	if s := st.Snapshot; s != nil {
		f = append(f, describeField{"Snapshot", strings.TrimPrefix(snapshotLine(s), "etcd snapshot ") + ", taken " + timestamp(s.TakenAt.Time)})
	}
	return rolloutDescription{fields: f, sections: controlPlaneRolloutSections(ro, now)}
}

// controlPlaneRolloutSections are the tables of a ControlPlaneRollout's description.
func controlPlaneRolloutSections(ro *api.ControlPlaneRollout, now time.Time) []stepSection {
	st := ro.Status
	quiesced := stepSection{title: "Quiesced", headers: []string{"WORKLOAD", "REPLICAS", "STATE", "SCALED DOWN", "DRAINED", "RESTORED", "MESSAGE"}}
	for _, q := range st.Quiesced {
		quiesced.rows = append(quiesced.rows, []string{workloadKey(q.Kind, q.Name) + " -n " + q.Namespace, replicaCount(q.OriginalReplicas), string(q.State),
			metaTimestamp(q.ScaledDownAt), metaTimestamp(q.DrainedAt), metaTimestamp(q.RestoredAt), q.Message})
	}
	nodes := stepSection{title: "Nodes", headers: []string{"NODE", "PHASE", "STEP", "STARTED", "COMPLETED", "DURATION", "MESSAGE"}}
	components := stepSection{title: "Components", headers: []string{"NODE", "COMPONENT", "STATE", "REASON", "STOPPED", "VERIFIED", "MESSAGE"}}
	renewed := stepSection{title: "Renewed", headers: []string{"NODE", "FILE", "OLD NOT AFTER", "NEW NOT AFTER", "BACKUP"}}
	copies := stepSection{title: "Kubeconfig copies", headers: []string{"NODE", "PATH", "PREVIOUS KEPT AS"}}
	health := stepSection{title: "Health", headers: []string{"NODE", "CHECKED", "RESULT"}}
	for _, n := range st.Nodes {
		d := ""
		if n.Phase != api.NodePending {
			d = rolloutElapsed(n.StartedAt, n.CompletedAt, now)
		}
		nodes.rows = append(nodes.rows, []string{n.Name, string(n.Phase), string(n.Step), metaTimestamp(n.StartedAt), metaTimestamp(n.CompletedAt), d, n.Message})
		for _, c := range n.Components {
			components.rows = append(components.rows, []string{n.Name, c.Name, string(c.State), c.Reason, metaTimestamp(c.StoppedAt), metaTimestamp(c.VerifiedAt), c.Message})
		}
		for _, r := range n.Renewed {
			renewed.rows = append(renewed.rows, []string{n.Name, r.Name, metaTimestamp(r.OldNotAfter), timestamp(r.NewNotAfter.Time), r.Backup})
		}
		for _, k := range n.KubeconfigCopies {
			copies.rows = append(copies.rows, []string{n.Name, k.Path, k.Backup})
		}
		if h := n.Health; h != nil {
			health.rows = append(health.rows, []string{n.Name, timestamp(h.CheckedAt.Time), healthSummary(h)})
		}
	}
	return []stepSection{quiesced, nodes, components, renewed, copies, health, conditionsSection(st.Conditions)}
}

// printControlPlaneTable prints the table of ControlPlaneRollouts.
func printControlPlaneTable(w io.Writer, ros []api.ControlPlaneRollout, now time.Time, wide bool) error {
	return newControlPlaneTableView(ros, now, wide).render(w)
}
