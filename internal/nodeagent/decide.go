package nodeagent

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Input is everything Decide needs: what was read on the node and seen on its endpoints, and the time.
type Input struct {
	Now          time.Time
	AgentVersion string
	KubeadmDir   string
	KubeadmFound bool
	// Files have since settled (Since).
	Files    []api.NodeCertificateFile
	Problems []api.NodeProblem
	// Components with what was observed of them.
	Components []Observed
	// PrevConditions are the previous status's, so a condition that did not change keeps its transition
	// time.
	PrevConditions []metav1.Condition
}

// Observed is a component and what the agent saw of it.
type Observed struct {
	Component
	// Running: a container of it runs. The kubelet runs by definition (it is not a pod).
	Running bool
	// NotRunning says why it is not running ("no mirror pod ..."), for the message.
	NotRunning string
	// StartedAt is when its running container started; nil when unknown.
	StartedAt *time.Time
	// Probes are, for each of Uses (same index), what its endpoint served; ignored for Client uses.
	Probes []ProbeResult
}

// ProbeResult is what one endpoint presented.
type ProbeResult struct {
	// Served is the fingerprint of the leaf presented.
	Served string
	// Err is why nothing was seen ("" when Served is set).
	Err string
}

// Bounds of NodeCertificatesStatus' lists (the API's MaxItems).
const (
	maxFiles    = 128
	maxProblems = 64
	// maxComponents is the API's bound on components.
	maxComponents = 16
)

// Decide computes the node's status. It is pure: the time is Input.Now.
func Decide(in Input) api.NodeCertificatesStatus {
	now := metav1.NewTime(in.Now.UTC().Truncate(time.Second))
	// The API bounds the lists (files 128, problems 64): a status over them would be refused whole.
	if len(in.Files) > maxFiles {
		in.Problems = append(in.Problems, api.NodeProblem{Path: in.Files[maxFiles].Path,
			Message: fmt.Sprintf("%d more certificate files were found than the %d a NodeCertificates holds; they are left out", len(in.Files)-maxFiles, maxFiles)})
		in.Files = in.Files[:maxFiles]
	}
	if len(in.Problems) > maxProblems {
		more := len(in.Problems) - maxProblems + 1
		in.Problems = append(in.Problems[:maxProblems-1:maxProblems-1], api.NodeProblem{Path: in.Problems[maxProblems-1].Path,
			Message: fmt.Sprintf("and %d more problems, left out", more)})
	}
	st := api.NodeCertificatesStatus{
		ObservedAt:   &now,
		AgentVersion: in.AgentVersion,
		KubeadmDir:   in.KubeadmDir,
		Files:        in.Files,
		FileCount:    int32(len(in.Files)), //nolint:gosec // at most 128 by the API's schema
		Problems:     in.Problems,
	}
	for i := range in.Files {
		na := in.Files[i].NotAfter
		if st.SoonestExpiry == nil || na.Before(st.SoonestExpiry) {
			st.SoonestExpiry = &metav1.Time{Time: na.UTC()}
		}
	}
	for _, c := range in.Components {
		if len(c.Uses) == 0 {
			// A static pod that serves and uses no certificate the agent knows (kube-vip, haproxy): nothing
			// to say about it, and "Current" would claim something.
			continue
		}
		if len(st.Components) == maxComponents {
			st.Problems = append(st.Problems, api.NodeProblem{Path: c.Manifest,
				Message: fmt.Sprintf("more components than the %d a NodeCertificates holds; %s and those after it are left out", maxComponents, c.Name)})
			if len(st.Problems) > maxProblems {
				st.Problems = st.Problems[:maxProblems]
			}
			break
		}
		cc := DecideComponent(c, in.Files)
		if cc.State == api.ComponentServesOld {
			st.ComponentsServingOld++
		}
		st.Components = append(st.Components, cc)
	}
	st.Conditions = append([]metav1.Condition(nil), in.PrevConditions...)
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: api.ReasonScanned, LastTransitionTime: now,
		Message: fmt.Sprintf("Read %d certificate files; %d components serve or use old certificates.", len(in.Files), st.ComponentsServingOld)}
	switch {
	case !in.KubeadmFound:
		ready.Status, ready.Reason = metav1.ConditionFalse, api.ReasonNoKubeadmFolder
		ready.Message = fmt.Sprintf("No kubeadm certificates or kubeconfigs in %s.", in.KubeadmDir)
	case len(in.Problems) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, api.ReasonScanIncomplete
		ready.Message = fmt.Sprintf("%d files could not be read; the first: %s: %s", len(in.Problems), in.Problems[0].Path, in.Problems[0].Message)
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}

// DecideComponent sums up one component: NotRunning when no container of it runs, else ServesOld if any
// check is, else Unreachable if any check is, else Current.
func DecideComponent(c Observed, files []api.NodeCertificateFile) api.ControlPlaneComponent {
	out := api.ControlPlaneComponent{Name: c.Name, Manifest: c.Manifest}
	if c.StartedAt != nil {
		t := metav1.NewTime(c.StartedAt.UTC().Truncate(time.Second))
		out.StartedAt = &t
	}
	var old, unreachable []api.ComponentCheck
	for i, u := range c.Uses {
		var p ProbeResult
		if i < len(c.Probes) {
			p = c.Probes[i]
		}
		chk, since := decideCheck(c, u, p, files)
		switch chk.State {
		case api.ComponentServesOld:
			old = append(old, chk)
			if since != nil && (out.OldSince == nil || since.Before(out.OldSince)) {
				out.OldSince = since
			}
		case api.ComponentUnreachable:
			unreachable = append(unreachable, chk)
		}
		out.Checks = append(out.Checks, chk)
	}
	switch {
	case !c.Running:
		out.State = api.ComponentNotRunning
		out.Message = "Not running: " + c.NotRunning + "."
	case len(old) > 0:
		out.State = api.ComponentServesOld
		out.Message = sentence(old[0].Message, len(old)-1, "more old")
	case len(unreachable) > 0:
		out.State = api.ComponentUnreachable
		out.Message = sentence(unreachable[0].Message, len(unreachable)-1, "more unreachable")
	default:
		out.State = api.ComponentCurrent
		out.Message = "Serves and uses the certificates on disk."
	}
	return out
}

func sentence(first string, more int, what string) string {
	if more > 0 {
		return fmt.Sprintf("%s (and %d %s).", strings.TrimSuffix(first, "."), more, what)
	}
	return first
}

// decideCheck is one file a component serves or uses; since is the file's since when it is old.
func decideCheck(c Observed, u Use, p ProbeResult, files []api.NodeCertificateFile) (api.ComponentCheck, *metav1.Time) {
	chk := api.ComponentCheck{Use: u.Use, Endpoint: u.Endpoint, Reloads: u.Reloads}
	var f *api.NodeCertificateFile
	for i := range files {
		if u.Path != "" && files[i].Path == u.Path {
			f = &files[i]
			break
		}
	}
	if f != nil {
		chk.File, chk.Expected = f.Name, f.Fingerprint
	} else if u.Path != "" {
		chk.File = u.Path
	}
	if !c.Running {
		chk.State, chk.Message = api.ComponentNotRunning, "Not running."
		return chk, nil
	}
	if u.Use == api.UseServing {
		chk.Served = p.Served
		switch {
		case p.Served == "":
			chk.State = api.ComponentUnreachable
			chk.Message = fmt.Sprintf("Did not answer with TLS on %s: %s.", orDefault(u.Endpoint, "(no endpoint in the manifest)"), orDefault(p.Err, "no certificate"))
		case u.LivenessOnly:
			chk.State = api.ComponentCurrent
			chk.Message = fmt.Sprintf("Answers on %s with a certificate it generated in memory; only liveness is checked.", u.Endpoint)
		case f == nil:
			chk.State = api.ComponentCurrent
			chk.Message = fmt.Sprintf("Serves %s on %s; %s, which its manifest names, was not read.", short(p.Served), u.Endpoint, u.Path)
		case p.Served != f.Fingerprint:
			chk.State = api.ComponentServesOld
			chk.Message = fmt.Sprintf("Serves %s on %s but %s on disk is %s.", short(p.Served), u.Endpoint, f.Name, short(f.Fingerprint))
			return chk, &f.Since
		default:
			chk.State = api.ComponentCurrent
			chk.Message = fmt.Sprintf("Serves %s on %s, as on disk.", f.Name, u.Endpoint)
		}
		return chk, nil
	}
	// Client: not visible from outside; compare the start time with when the file appeared.
	switch {
	case f == nil:
		chk.State = api.ComponentCurrent
		chk.Message = fmt.Sprintf("Uses %s, which was not read.", u.Path)
	case u.Reloads:
		chk.State = api.ComponentCurrent
		chk.Message = fmt.Sprintf("Uses %s and reloads it itself.", f.Name)
		if why := ReloadReason(c.Name, u.Flag); why != "" {
			chk.Message = fmt.Sprintf("Uses %s; %s.", f.Name, why)
		}
	case c.StartedAt == nil:
		chk.State = api.ComponentCurrent
		chk.Message = fmt.Sprintf("Uses %s; its start time is unknown.", f.Name)
	case Stale(*c.StartedAt, f.Since.Time):
		chk.State = api.ComponentServesOld
		chk.Message = fmt.Sprintf("Started %s, before %s was renewed at %s; it does not reload it.", stamp(*c.StartedAt), f.Name, stamp(f.Since.Time))
		return chk, &f.Since
	default:
		chk.State = api.ComponentCurrent
		chk.Message = fmt.Sprintf("Started %s, after %s was written at %s.", stamp(*c.StartedAt), f.Name, stamp(f.Since.Time))
	}
	return chk, nil
}

// Stale reports whether a process started at startedAt predates a file that appeared at since. Both are
// compared in whole seconds (the API's precision, and the kubelet's startedAt): a file written in the
// second the process started counts as loaded.
func Stale(startedAt, since time.Time) bool {
	return startedAt.Truncate(time.Second).Before(since.Truncate(time.Second))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// short is a fingerprint's first 8 hex digits and an ellipsis, for messages.
func short(fp string) string {
	if len(fp) > 8 {
		return fp[:8] + "…"
	}
	return fp
}
