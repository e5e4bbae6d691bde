package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// check --control-plane reads the NodeCertificates the node agent writes, one per control-plane node
// (design/2026-11-28-control-planes-read-side.md, "The check").

// checkKindControlPlane is CheckSource.Kind for a file on a control-plane node, as its agent reported it.
const checkKindControlPlane = "ControlPlane"

// controlPlaneLabel marks control-plane Nodes (kubeadm sets it).
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// nodeAgentHeartbeat is how often the node agent writes its NodeCertificates even when nothing changed
// ("at least every few minutes", api/v1alpha1). A report older than nodeAgentStaleAfter means the agent is
// gone or stuck. Keep in step with the agent's resync period.
const (
	nodeAgentHeartbeat  = 5 * time.Minute
	nodeAgentStaleAfter = 3 * nodeAgentHeartbeat
)

// Values of CheckNode.Report.
const (
	NodeReportCurrent = "Current"
	NodeReportStale   = "Stale"
	NodeReportMissing = "Missing"
)

// controlPlaneItems reads the NodeCertificates (all, or those --node names) and the control-plane Nodes,
// to name those without a report.
func (o *CheckOptions) controlPlaneItems(ctx context.Context, now time.Time) (*checkSection, error) {
	if err := o.Reachable(ctx); err != nil {
		return nil, err
	}
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	var found []api.NodeCertificates
	if len(o.Nodes) > 0 {
		for _, name := range o.Nodes {
			var nc api.NodeCertificates
			err := c.Get(ctx, client.ObjectKey{Name: name}, &nc)
			switch {
			case err == nil:
				found = append(found, nc)
			case apierrors.IsNotFound(err) && !isNotServed(err, api.GroupVersion.Group):
				// Named in the section as a node without a report.
			default:
				return nil, o.explainNodeCertificates(err)
			}
		}
	} else {
		var list api.NodeCertificatesList
		if err := c.List(ctx, &list); err != nil {
			return nil, o.explainNodeCertificates(err)
		}
		found = list.Items
	}
	var cpNodes []string
	nodesNote := ""
	if len(o.Nodes) == 0 {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes, client.HasLabels{controlPlaneLabel}); err != nil {
			if !apierrors.IsForbidden(err) {
				return nil, explain(err, o.Config())
			}
			// Reading NodeCertificates is enough for the check; only the missing-agent warning needs Nodes.
			nodesNote = "Nodes could not be listed (forbidden): control-plane nodes without an agent report are not named"
		}
		for _, n := range nodes.Items {
			cpNodes = append(cpNodes, n.Name)
		}
	}
	s := buildControlPlaneSection(found, cpNodes, o.Nodes, now)
	s.caIncomplete = nodesNote
	return s, nil
}

// explainNodeCertificates says what to install when NodeCertificates are not served.
func (o *CheckOptions) explainNodeCertificates(err error) error {
	if apimeta.IsNoMatchError(err) || isNotServed(err, api.GroupVersion.Group) {
		server := "the API server"
		if cfg := o.Config(); cfg != nil && cfg.Host != "" {
			server = cfg.Host
		}
		return &hint{err: err, kind: ErrCRDsMissing, msg: fmt.Sprintf(
			"%s does not serve NodeCertificates (certrollout.io/v1alpha1): certrollout's CRDs are not installed, or are older than this certrollout. "+
				"Install them with `kubectl apply -k config/crd` (or upgrade the chart), then the node agent (chart nodeAgent.enabled=true)", server)}
	}
	return explain(err, o.Config())
}

// buildControlPlaneSection is the pure part of controlPlaneItems: one item per node and file, the nodes'
// components, and a warning for each node whose report is stale or missing. cpNodes are the Nodes labelled
// control-plane; requested are the --node names.
func buildControlPlaneSection(found []api.NodeCertificates, cpNodes, requested []string, now time.Time) *checkSection {
	s := &checkSection{}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	seen := map[string]bool{}
	for i := range found {
		nc := &found[i]
		seen[nc.Name] = true
		s.nodeObjects = append(s.nodeObjects, nc)
		s.nodes = append(s.nodes, checkNode(nc, now))
		s.items = append(s.items, controlPlaneFileItems(nc)...)
		for _, p := range nc.Status.Problems {
			s.problems = append(s.problems, CheckProblem{
				Source:  CheckSource{Kind: checkKindControlPlane, Node: nc.Name, Name: filepath.Base(p.Path), Path: p.Path},
				Message: p.Message,
			})
		}
	}
	missing := map[string]bool{}
	for _, n := range append(append([]string{}, cpNodes...), requested...) {
		if !seen[n] {
			missing[n] = true
		}
	}
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s.nodes = append(s.nodes, CheckNode{Name: n, Report: NodeReportMissing,
			Warning: fmt.Sprintf("no agent report from %s: is the node agent installed (chart nodeAgent.enabled) and running on it?", n)})
	}
	return s
}

// checkNode sums up one NodeCertificates: its components and whether its report is recent.
func checkNode(nc *api.NodeCertificates, now time.Time) CheckNode {
	st := nc.Status
	n := CheckNode{Name: nc.Name, AgentVersion: st.AgentVersion, KubeadmDir: st.KubeadmDir, Report: NodeReportCurrent}
	if st.ObservedAt != nil {
		t := st.ObservedAt.UTC()
		n.ObservedAt = &t
	}
	switch {
	case n.ObservedAt == nil:
		n.Report = NodeReportStale
		n.Warning = fmt.Sprintf("agent on %s has not reported a scan yet", nc.Name)
	case now.Sub(*n.ObservedAt) > nodeAgentStaleAfter:
		n.Report = NodeReportStale
		n.Warning = fmt.Sprintf("agent on %s last reported %s ago (it reports every %s): is it running? What follows is what it saw then",
			nc.Name, duration.ShortHumanDuration(now.Sub(*n.ObservedAt)), duration.ShortHumanDuration(nodeAgentHeartbeat))
	}
	for _, c := range st.Conditions {
		if c.Type == "Ready" && c.Status == metav1.ConditionFalse && n.Warning == "" {
			n.Warning = fmt.Sprintf("agent on %s could not read the node (%s): %s", nc.Name, c.Reason, c.Message)
		}
	}
	for _, c := range st.Components {
		cc := CheckComponent{Name: c.Name, State: c.State, Manifest: c.Manifest, Message: c.Message}
		if c.StartedAt != nil {
			t := c.StartedAt.UTC()
			cc.StartedAt = &t
		}
		if c.OldSince != nil {
			t := c.OldSince.UTC()
			cc.OldSince = &t
		}
		n.Components = append(n.Components, cc)
	}
	return n
}

// controlPlaneFileItems are a node's files: kubeadm's sorted by name as kubeadm lists them, then the
// kubelet's and an external etcd's in the agent's order; each with what uses it.
func controlPlaneFileItems(nc *api.NodeCertificates) []CheckItem {
	files := append([]api.NodeCertificateFile{}, nc.Status.Files...)
	rank := map[string]int{api.FileSetKubeadm: 0, api.FileSetKubelet: 1, api.FileSetEtcd: 2}
	sort.SliceStable(files, func(i, j int) bool {
		a, b := files[i], files[j]
		if rank[a.Set] != rank[b.Set] {
			return rank[a.Set] < rank[b.Set]
		}
		return a.Set == api.FileSetKubeadm && a.Name < b.Name
	})
	out := make([]CheckItem, 0, len(files))
	for _, f := range files {
		c := &CheckCertificate{
			Subject: f.Subject, CommonName: checkCommonName(f.Subject), Issuer: f.Issuer, IssuerCommonName: checkCommonName(f.Issuer),
			Fingerprint: f.Fingerprint, NotBefore: f.NotBefore.UTC(), NotAfter: f.NotAfter.UTC(), IsCA: f.CertificateAuthority,
		}
		since := f.Since.UTC()
		it := CheckItem{
			Source:       CheckSource{Kind: checkKindControlPlane, Node: nc.Name, Name: f.Name, Path: f.Path},
			Certificate:  c,
			Certificates: 1,
			Kubeadm:      &CheckKubeadm{Name: f.Name, CertificateAuthority: f.Authority, ExternallyManaged: f.ExternallyManaged},
			ControlPlane: &CheckNodeFile{Set: f.Set, RenewedBy: f.RenewedBy, CertificateAuthority: f.CertificateAuthority, Since: &since},
		}
		if f.CertificateAuthority {
			it.Kubeadm.CertificateAuthority = ""
		}
		for _, comp := range nc.Status.Components {
			for _, ch := range comp.Checks {
				if ch.File != f.Name {
					continue
				}
				u := CheckServing{Component: comp.Name, Use: ch.Use, State: ch.State, Endpoint: ch.Endpoint, Message: ch.Message}
				if ch.State == api.ComponentServesOld {
					old := since
					if comp.OldSince != nil {
						old = comp.OldSince.UTC()
					}
					u.Since = &old
				}
				it.ControlPlane.Serving = append(it.ControlPlane.Serving, u)
			}
		}
		out = append(out, it)
	}
	return out
}

// servesOld reports whether a component still serves or uses the certificate this file held before.
func servesOld(it CheckItem) *CheckServing {
	if it.ControlPlane == nil {
		return nil
	}
	for i := range it.ControlPlane.Serving {
		if it.ControlPlane.Serving[i].State == api.ComponentServesOld {
			return &it.ControlPlane.Serving[i]
		}
	}
	return nil
}

// servingCell is the SERVING column: "current" when every component that serves or uses the file has
// it, else what each of the others does; "-" when no component uses it.
func servingCell(it CheckItem, now time.Time) string {
	if it.ControlPlane == nil || len(it.ControlPlane.Serving) == 0 {
		return "-"
	}
	var parts []string
	for _, u := range it.ControlPlane.Serving {
		switch u.State {
		case api.ComponentCurrent:
			continue
		case api.ComponentServesOld:
			what := "old certificate"
			if u.Since != nil {
				what += " since " + duration.HumanDuration(now.Sub(*u.Since))
			}
			parts = append(parts, what+" ("+u.Component+")")
		case api.ComponentNotRunning:
			parts = append(parts, "not running ("+u.Component+")")
		case api.ComponentUnreachable:
			parts = append(parts, "unreachable ("+u.Component+")")
		default:
			parts = append(parts, strings.ToLower(u.State)+" ("+u.Component+")")
		}
	}
	if len(parts) == 0 {
		return "current"
	}
	return strings.Join(parts, ", ")
}

// nodeWarnings are the sentences about stale and missing reports, in node order.
func nodeWarnings(nodes []CheckNode) []string {
	var out []string
	for _, n := range nodes {
		if n.Warning != "" {
			out = append(out, n.Warning)
		}
	}
	return out
}

// controlPlaneTables prints kubeadm's two tables with NODE first (SERVING last on the certificates),
// then the components.
//
// Long: three tables whose columns are laid out side by side with kubeadm's; read together.
func (o *CheckOptions) controlPlaneTables(s *checkSection, now time.Time) []func() error {
	var leaves, cas []CheckItem
	for _, it := range s.items {
		if it.ControlPlane.CertificateAuthority {
			cas = append(cas, it)
		} else {
			leaves = append(leaves, it)
		}
	}
	var tables []func() error
	row := func(it CheckItem, ca bool) []string {
		c := it.Certificate
		r := []string{it.Source.Node, it.Source.Name, c.NotAfter.UTC().Format(kubeadmTime), residual(c.NotAfter, now)}
		if !ca {
			r = append(r, orElse(it.Kubeadm.CertificateAuthority, "-"))
		}
		r = append(r, yesNo(it.Kubeadm.ExternallyManaged))
		if !ca {
			r = append(r, servingCell(it, now))
		}
		if o.wide() {
			r = append(r, c.Subject, it.ControlPlane.RenewedBy, shortHash16(c.Fingerprint), timestamp(c.NotBefore), it.Source.Path)
		}
		return r
	}
	wide := []string{"SUBJECT", "RENEWED BY", "FINGERPRINT", "NOT BEFORE", "PATH"}
	if len(leaves) > 0 {
		tables = append(tables, func() error {
			h := []string{"NODE", "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED", "SERVING"}
			if o.wide() {
				h = append(h, wide...)
			}
			t := newTable(o.Out, h...)
			for _, it := range leaves {
				t.row(row(it, false)...)
			}
			return t.flush()
		})
	}
	if len(cas) > 0 {
		tables = append(tables, func() error {
			h := []string{"NODE", "CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"}
			if o.wide() {
				h = append(h, wide...)
			}
			t := newTable(o.Out, h...)
			for _, it := range cas {
				t.row(row(it, true)...)
			}
			return t.flush()
		})
	}
	hasComponents := false
	for _, n := range s.nodes {
		hasComponents = hasComponents || len(n.Components) > 0
	}
	if hasComponents {
		tables = append(tables, func() error {
			t := newTable(o.Out, "NODE", "COMPONENT", "STATE", "SINCE/STARTED", "MESSAGE")
			for _, n := range s.nodes {
				for _, c := range n.Components {
					when := "-"
					switch {
					case c.State == api.ComponentServesOld && c.OldSince != nil:
						when = "old since " + duration.HumanDuration(now.Sub(*c.OldSince))
					case c.StartedAt != nil && c.State != api.ComponentNotRunning:
						when = "started " + duration.HumanDuration(now.Sub(*c.StartedAt)) + " ago"
					}
					t.row(n.Name, c.Name, c.State, when, orElse(c.Message, "-"))
				}
			}
			return t.flush()
		})
	}
	if len(s.problems) > 0 {
		tables = append(tables, func() error {
			t := newTable(o.Out, "NODE", "FILE", "PROBLEM")
			for _, p := range s.problems {
				t.row(p.Source.Node, p.Source.Path, p.Message)
			}
			return t.flush()
		})
	}
	return tables
}

// printControlPlaneKubeadm is -o kubeadm for --control-plane: kubeadm's text for the one node read.
func (o *CheckOptions) printControlPlaneKubeadm(s *checkSection, now time.Time) error {
	switch len(s.nodeObjects) {
	case 1:
		return printKubeadmExpiration(o.Out, kubeadmExpirationFromNode(s.nodeObjects[0]), now)
	case 0:
		if len(o.Nodes) == 1 {
			return fmt.Errorf("-o kubeadm: no agent report from %s: is the node agent installed (chart nodeAgent.enabled) and running on it?", o.Nodes[0])
		}
		return errors.New("-o kubeadm: no NodeCertificates in the cluster: is the node agent installed (chart nodeAgent.enabled)?")
	default:
		names := make([]string, 0, len(s.nodeObjects))
		for _, nc := range s.nodeObjects {
			names = append(names, nc.Name)
		}
		return fmt.Errorf("-o kubeadm prints one node, as kubeadm does, and %d nodes reported (%s): pick one with --node NAME", len(names), strings.Join(names, ", "))
	}
}
