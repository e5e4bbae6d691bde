package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/durable"
)

// Reasons a component is restarted or skipped (ComponentRestart.Reason).
const (
	ReasonServesOld   = "ServesOld"
	ReasonCurrent     = "Current"
	ReasonNoManifest  = "NoManifest"
	ReasonSystemdEtcd = "SystemdEtcd"
)

func (n *nodeRun) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// healthBefore refuses to touch a node of an unhealthy control plane: it looks for a little while (a
// member may be between two heartbeats), then gives up naming what is wrong.
func (n *nodeRun) healthBefore(ctx context.Context) error {
	// Never longer than the health timeout the rollout allows.
	return n.waitHealthy(ctx, min(healthBeforeRetryFor, n.timeout), "the control plane is not healthy, so nothing was changed on this node")
}

// healthAfter waits, up to the health timeout, for the whole control plane to be healthy again.
func (n *nodeRun) healthAfter(ctx context.Context) error {
	return n.waitHealthy(ctx, n.timeout, fmt.Sprintf("the control plane was not healthy within %s after the restarts", n.timeout))
}

func (n *nodeRun) waitHealthy(ctx context.Context, within time.Duration, failure string) error {
	deadline := n.a.now().Add(within)
	for {
		h := n.a.Rollouts.Ops.Health(ctx)
		n.op.Health = &h
		if h.Healthy {
			n.op.Message = ""
			return nil
		}
		if n.a.now().After(deadline) {
			return fmt.Errorf("%s: %s", failure, strings.Join(h.Reasons, "; "))
		}
		n.op.Message = "Waiting for the control plane to be healthy: " + strings.Join(h.Reasons, "; ")
		n.report(ctx)
		if err := n.sleep(ctx, n.a.rolloutPoll()); err != nil {
			return err
		}
	}
}

// snapshot saves etcd before the first node, once per rollout.
func (n *nodeRun) snapshot(ctx context.Context) error {
	s := n.settings.EtcdSnapshot
	if n.op.Snapshot == nil && n.mover.Journal.Snapshot != nil {
		n.op.Snapshot = n.mover.Journal.Snapshot.DeepCopy()
	}
	if !ptr.Deref(s.Enabled, true) || n.op.Snapshot != nil || len(n.r.Status.Nodes) == 0 || n.r.Status.Nodes[0].Name != n.a.Node {
		return nil
	}
	if n.a.Rollouts.Ops.Snapshot == nil {
		return errors.New("this agent cannot take etcd snapshots")
	}
	stateDir := orDefault(n.a.Rollouts.StateDir, DefaultStateDir)
	clean := filepath.Clean(s.HostPath)
	if !filepath.IsAbs(s.HostPath) || !within(clean, stateDir) {
		return fmt.Errorf("the etcd snapshot folder %s (etcdSnapshot.hostPath) is not inside the agent's state folder %s (--state-dir), the only folder it writes snapshots to", s.HostPath, stateDir)
	}
	rel, err := filepath.Rel(filepath.Clean(stateDir), clean)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(n.a.stateDir())
	if err != nil {
		return fmt.Errorf("opening the agent's state folder: %w", err)
	}
	defer root.Close()
	snap, err := n.a.Rollouts.Ops.Snapshot(ctx, root, filepath.ToSlash(rel), int(s.Keep))
	if err != nil {
		return fmt.Errorf("the etcd snapshot: %w", err)
	}
	snap.Node, snap.Path = n.a.Node, n.a.Scan.hostPath(snap.Path)
	n.mover.Journal.Snapshot = snap.DeepCopy()
	if err := n.mover.Journal.Save(n.mover.JournalPath); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	n.op.Snapshot = &snap
	return nil
}

// renew renews the kubeadm files that are due, once per rollout.
func (n *nodeRun) renew(ctx context.Context) error {
	s := n.settings.Renewal
	if !ptr.Deref(s.Enabled, true) || n.mover.Journal.Renewed {
		return nil
	}
	if n.a.Rollouts.Ops.Renew == nil {
		return errors.New("this agent cannot renew certificates")
	}
	before := s.RenewBefore.Duration
	var validity time.Duration
	if s.Validity != nil {
		validity = s.Validity.Duration
	}
	backups := filepath.Join(n.a.Scan.root(), orDefault(n.a.Rollouts.StateDir, DefaultStateDir), "backups", n.r.Name)
	files, err := n.a.Rollouts.Ops.Renew(ctx, before, validity, backups)
	if err != nil {
		return fmt.Errorf("renewing the kubeadm certificates: %w", err)
	}
	for i := range files {
		files[i].Backup = n.a.Scan.hostPath(files[i].Backup)
	}
	if len(files) > 32 {
		files = files[:32]
	}
	n.mover.Journal.Renewed, n.mover.Journal.RenewedFiles = true, files
	if err := n.mover.Journal.Save(n.mover.JournalPath); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	n.op.Renewed = files
	return nil
}

// restarts restarts, in order, each component that serves or uses an old certificate, and verifies it.
func (n *nodeRun) restarts(ctx context.Context) error {
	comps, problems := Manifests(n.a.Scan)
	byName := map[string]Component{}
	for _, c := range comps {
		byName[c.Name] = c
	}
	order := componentOrder(n.settings.ComponentOrder)
	if err := unreadableManifests(order, byName, problems); err != nil {
		return err
	}
	st, err := n.observe(ctx)
	if err != nil {
		return err
	}
	for _, name := range order {
		if n.component(name) == nil {
			n.op.Components = append(n.op.Components, api.ComponentRestart{Name: name, State: api.RestartPending})
		}
	}
	for _, name := range order {
		cr := n.component(name)
		if cr == nil || cr.State == api.RestartVerified || cr.State == api.RestartSkipped {
			continue
		}
		if err := n.restartOne(ctx, st, byName, cr); err != nil {
			cr.State, cr.Message = api.RestartFailed, err.Error()
			return err
		}
	}
	return nil
}

// unreadableManifests fails the node when a component of the order has no manifest the agent could
// read while some manifest could not be read: that one may be the component's, and skipping it as "no
// manifest" would leave it serving old certificates while the rollout says the node is done.
func unreadableManifests(order []string, byName map[string]Component, problems []api.NodeProblem) error {
	if len(problems) == 0 {
		return nil
	}
	var missing []string
	for _, name := range order {
		if _, ok := byName[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var unread []string
	for _, p := range problems {
		unread = append(unread, p.Path+": "+p.Message)
	}
	return fmt.Errorf("the agent could not read every static pod manifest (%s), so it cannot tell whether %s run here; nothing was restarted: fix the manifests folder and start the rollout again",
		strings.Join(unread, "; "), strings.Join(missing, ", "))
}

// observe is the node's status now, decided locally (RolloutOps.Observe).
func (n *nodeRun) observe(ctx context.Context) (api.NodeCertificatesStatus, error) {
	if n.a.Rollouts.Ops.Observe != nil {
		return n.a.Rollouts.Ops.Observe(ctx)
	}
	return n.a.Observe(ctx)
}

func (n *nodeRun) restartOne(ctx context.Context, st api.NodeCertificatesStatus, byName map[string]Component, cr *api.ComponentRestart) error {
	e := n.mover.Journal.Components[cr.Name]
	c, hasManifest := byName[cr.Name]
	switch {
	case e.State == JournalVerified:
		cr.State = api.RestartVerified
		return nil
	case e.State == JournalBack && hasManifest && n.neverRestarted(ctx, c, e):
		cr.Reason = ReasonServesOld
		return n.restart(ctx, c, cr, true)
	case e.State == JournalBack:
		return n.waitUp(ctx, c, cr, e.StoppedAt)
	case !hasManifest && cr.Name == Etcd && n.systemdEtcd():
		cr.State, cr.Reason = api.RestartSkipped, ReasonSystemdEtcd
		cr.Message = fmt.Sprintf("etcd runs under systemd on %s, not as a static pod: once its certificates are renewed, run `systemctl restart etcd.service` there, one node at a time.", n.a.Node)
		return nil
	case !hasManifest:
		cr.State, cr.Reason, cr.Message = api.RestartSkipped, ReasonNoManifest, "No static pod manifest of it on this node."
		return nil
	}
	now := componentOf(st, cr.Name)
	switch {
	case now == nil:
		return fmt.Errorf("%s has a manifest but the agent found nothing it serves or uses", cr.Name)
	case now.State == api.ComponentCurrent:
		cr.State, cr.Reason, cr.Message = api.RestartSkipped, ReasonCurrent, now.Message
		return nil
	case now.State != api.ComponentServesOld:
		return fmt.Errorf("%s is %s before its restart: %s", cr.Name, now.State, now.Message)
	}
	cr.Reason = ReasonServesOld
	return n.restart(ctx, c, cr, false)
}

// neverRestarted: the journal says c's manifest is back but not that c was seen down (the agent was
// killed before), and c runs a container started before its manifest left, serving old certificates:
// the kubelet never saw the move. c then gets its one further restart, rather than a wait for a
// restart that is not coming and a false failure.
func (n *nodeRun) neverRestarted(ctx context.Context, c Component, e JournalEntry) bool {
	if e.StoppedAt != nil || e.OutAt == nil || e.Again {
		return false
	}
	st, err := n.observe(ctx)
	if err != nil {
		return false
	}
	now := componentOf(st, c.Name)
	if now == nil || now.State != api.ComponentServesOld {
		return false
	}
	pods, err := n.a.mirrorPods(ctx)
	if err != nil {
		return false
	}
	running, started, _ := Started(pods, c, n.a.Node)
	return running && started != nil && started.Before(*e.OutAt)
}

// restart moves c's manifest out, waits until c is down, moves it back and waits until it is verified.
// A component that does not stop gets its manifest back at once.
func (n *nodeRun) restart(ctx context.Context, c Component, cr *api.ComponentRestart, again bool) error {
	if err := n.stillMyTurn(ctx); err != nil {
		return err
	}
	cr.State = api.RestartStopping
	n.report(ctx)
	moveOut := n.mover.MoveOut
	if again {
		moveOut = n.mover.MoveOutAgain
	}
	if err := moveOut(cr.Name, filepath.Join(n.a.Scan.root(), c.Manifest)); err != nil {
		return err
	}
	n.a.Log.Info("Moved a static pod manifest out", "rollout", n.r.Name, "node", klog.KRef("", n.a.Node), "component", cr.Name)
	stopped, err := n.waitDown(ctx, c)
	if err != nil {
		if berr := n.mover.MoveBack(cr.Name); berr != nil {
			return errors.Join(err, fmt.Errorf("and putting its manifest back failed: %w", berr))
		}
		return err
	}
	if err := n.mover.Stopped(cr.Name, stopped); err != nil {
		return err
	}
	if err := n.mover.MoveBack(cr.Name); err != nil {
		return err
	}
	t := metav1.NewTime(stopped.UTC().Truncate(time.Second))
	cr.State, cr.StoppedAt = api.RestartStarting, &t
	n.report(ctx)
	return n.waitUp(ctx, c, cr, &stopped)
}

// stillMyTurn checks, just before a manifest leaves its folder, that this node still holds the Lease
// (unexpired) and the rollout still gives it its turn: the Lease is renewed in the background, and a
// renewal that failed for long enough lets another node in. A read that fails is tried again a few
// times; then the node stops, every manifest in place.
func (n *nodeRun) stillMyTurn(ctx context.Context) error {
	var err error
	for try := range observeTries {
		if try > 0 {
			if serr := n.sleep(ctx, n.a.rolloutPoll()); serr != nil {
				return serr
			}
		}
		if err = n.lock.Held(ctx); errors.Is(err, ErrLeaseLost) {
			return fmt.Errorf("stopped before moving a manifest, every manifest in place: %w", err)
		}
		if err != nil {
			continue
		}
		var r api.ControlPlaneRollout
		if err = n.a.Client.Get(ctx, client.ObjectKeyFromObject(n.r), &r); err != nil {
			err = fmt.Errorf("reading ControlPlaneRollout %s: %w", n.r.Name, err)
			continue
		}
		if r.UID != n.r.UID || r.Status.Phase.Finished() || r.Status.CurrentNode != n.a.Node || nodePhase(&r, n.a.Node) != api.NodeInProgress {
			return fmt.Errorf("stopped before moving a manifest, every manifest in place: rollout %s no longer gives %s its turn", n.r.Name, n.a.Node)
		}
		return nil
	}
	return fmt.Errorf("stopped before moving a manifest, every manifest in place: could not check the Lease and the turn: %w", err)
}

// waitDown waits until every endpoint c serves refuses and its mirror pod runs no container. The
// kubelet may report the API server's pod through that very API server (a kubelet.conf naming the
// node's own), so while it is down its mirror pod may still say running: for the API server, the closed
// port is what tells.
func (n *nodeRun) waitDown(ctx context.Context, c Component) (time.Time, error) {
	deadline := n.a.now().Add(n.timeout)
	for {
		if n.endpointsClosed(ctx, c) {
			if c.Name == KubeAPIServer {
				return n.a.now(), nil
			}
			pods, err := n.a.mirrorPods(ctx)
			if running, _, _ := Started(pods, c, n.a.Node); err == nil && !running {
				return n.a.now(), nil
			}
		}
		if n.a.now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not stop within %s of its manifest leaving the manifests folder", c.Name, n.timeout)
		}
		if err := n.sleep(ctx, componentPollInterval); err != nil {
			return time.Time{}, err
		}
	}
}

func (n *nodeRun) endpointsClosed(ctx context.Context, c Component) bool {
	for _, u := range c.Uses {
		if u.Use != api.UseServing || u.Endpoint == "" {
			continue
		}
		if _, err := Probe(ctx, n.a.Dial, u.Endpoint, n.a.ProbeTimeout); err == nil {
			return false
		}
	}
	return true
}

// waitUp waits until c runs a container started after it stopped, its mirror pod is Ready and what it
// serves and uses is what is on disk.
func (n *nodeRun) waitUp(ctx context.Context, c Component, cr *api.ComponentRestart, stopped *time.Time) error {
	deadline := n.a.now().Add(n.timeout)
	for {
		n.report(ctx)
		st, oerr := n.observe(ctx)
		pods, err := n.a.mirrorPods(ctx)
		err = errors.Join(oerr, err)
		now := componentOf(st, cr.Name)
		if err == nil && now != nil && now.State == api.ComponentCurrent && n.startedAfter(pods, c, stopped) {
			if err := n.mover.Verified(cr.Name); err != nil {
				return err
			}
			t := metav1.NewTime(n.a.now().UTC().Truncate(time.Second))
			cr.State, cr.VerifiedAt = api.RestartVerified, &t
			cr.Message = "Restarted; ready and " + strings.TrimPrefix(lowerFirst(now.Message), "it ")
			n.a.Log.Info("Verified a restarted component", "rollout", n.r.Name, "node", klog.KRef("", n.a.Node), "component", cr.Name)
			return nil
		}
		if n.a.now().After(deadline) {
			why := "its mirror pod is not Ready"
			if now != nil && now.State != api.ComponentCurrent {
				why = now.Message
			}
			return fmt.Errorf("%s did not come back ready and serving the certificates on disk within %s: %s", cr.Name, n.timeout, why)
		}
		if err := n.sleep(ctx, componentPollInterval); err != nil {
			return err
		}
	}
}

func (n *nodeRun) startedAfter(pods []corev1.Pod, c Component, stopped *time.Time) bool {
	p := mirrorPod(pods, c, n.a.Node)
	if p == nil || !podReady(p) {
		return false
	}
	running, started, _ := Started(pods, c, n.a.Node)
	if !running {
		return false
	}
	return stopped == nil || started == nil || !started.Before(stopped.Truncate(time.Second))
}

// kubeconfigs refreshes the copies the policy lists; an up-to-date copy is left alone. A copy is written
// only inside one of the folders the agent was given (--kubeconfig-copy-dirs, the folders the chart
// mounts), never in kubeadm's folder or the agent's state folder, and through an os.Root of that folder:
// a path or a symbolic link that leads out of it is refused, never followed.
func (n *nodeRun) kubeconfigs(context.Context) error {
	kubeadmDir := orDefault(n.a.Scan.KubeadmDir, DefaultKubeadmDir)
	kubeadm, err := os.OpenRoot(filepath.Join(n.a.Scan.root(), kubeadmDir))
	if err != nil {
		return fmt.Errorf("opening kubeadm's folder: %w", err)
	}
	defer kubeadm.Close()
	for _, kc := range n.settings.KubeconfigCopies {
		data, err := kubeadm.ReadFile(kc.From)
		if err != nil {
			return fmt.Errorf("reading %s: %w", kc.From, err)
		}
		if err := n.copyKubeconfig(kc, data, kubeadmDir); err != nil {
			return err
		}
	}
	return nil
}

// copyDir finds the folder of --kubeconfig-copy-dirs that holds to (a host path), and to relative to
// it; to in kubeadm's folder or the state folder is refused even when a copy folder holds it.
func (n *nodeRun) copyDir(to, kubeadmDir string) (string, string, error) {
	dirs := n.a.Rollouts.KubeconfigCopyDirs
	allowed := "none"
	if len(dirs) > 0 {
		allowed = strings.Join(dirs, ", ")
	}
	clean := filepath.Clean(to)
	stateDir := orDefault(n.a.Rollouts.StateDir, DefaultStateDir)
	if !filepath.IsAbs(to) {
		return "", "", fmt.Errorf("the kubeconfig copy %s is not an absolute path", to)
	}
	for _, forbidden := range []string{kubeadmDir, stateDir} {
		if within(clean, forbidden) {
			return "", "", fmt.Errorf("the kubeconfig copy %s is in %s, which the agent never writes copies into (folders allowed by --kubeconfig-copy-dirs: %s)", to, forbidden, allowed)
		}
	}
	for _, d := range dirs {
		if within(clean, filepath.Clean(d)) && clean != filepath.Clean(d) {
			rel, err := filepath.Rel(filepath.Clean(d), clean)
			if err != nil {
				return "", "", err
			}
			return d, filepath.ToSlash(rel), nil
		}
	}
	return "", "", fmt.Errorf("the kubeconfig copy %s is outside the folders the node agent may write (--kubeconfig-copy-dirs: %s; chart value nodeAgent.controlPlaneRollouts.kubeconfigCopyDirs)", to, allowed)
}

// within reports whether the clean path p is dir or below it.
func within(p, dir string) bool {
	dir = filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func (n *nodeRun) copyKubeconfig(kc api.KubeconfigCopy, data []byte, kubeadmDir string) error {
	dir, rel, err := n.copyDir(kc.To, kubeadmDir)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(filepath.Join(n.a.Scan.root(), dir))
	if err != nil {
		return fmt.Errorf("the folder %s of the kubeconfig copy %s is not mounted into the node agent (chart value nodeAgent.controlPlaneRollouts.kubeconfigCopyDirs): %w", dir, kc.To, err)
	}
	defer root.Close()
	copied := api.CopiedFile{Path: kc.To}
	cur, err := root.ReadFile(rel)
	switch {
	case err == nil && bytes.Equal(cur, data):
		n.recordCopy(copied)
		return nil
	case err == nil:
		backup := rel + ".certrollout-" + n.a.now().UTC().Format("20060102T150405Z")
		if err := durable.WriteFile(root, backup, cur, 0o600); err != nil {
			return fmt.Errorf("keeping the previous %s: %w", kc.To, err)
		}
		copied.Backup = filepath.Join(dir, filepath.FromSlash(backup))
	case errors.Is(err, fs.ErrNotExist):
		if _, derr := root.Stat(path.Dir(rel)); derr != nil {
			return fmt.Errorf("the folder of %s does not exist in %s: %w", kc.To, dir, derr)
		}
	default:
		return fmt.Errorf("reading %s (inside %s, links out of it refused): %w", kc.To, dir, err)
	}
	if err := durable.WriteFile(root, rel, data, 0o600); err != nil {
		return fmt.Errorf("writing %s (inside %s, links out of it refused): %w", kc.To, dir, err)
	}
	n.recordCopy(copied)
	return nil
}

func (n *nodeRun) recordCopy(c api.CopiedFile) {
	for i := range n.op.KubeconfigCopies {
		if n.op.KubeconfigCopies[i].Path == c.Path {
			if c.Backup != "" {
				n.op.KubeconfigCopies[i] = c
			}
			return
		}
	}
	n.op.KubeconfigCopies = append(n.op.KubeconfigCopies, c)
}

// systemdEtcd: etcd is not a static pod here but the node has an etcd folder or kubespray's etcd.env.
func (n *nodeRun) systemdEtcd() bool {
	if n.a.Scan.EtcdCertDir != "" {
		return true
	}
	_, err := os.Stat(filepath.Join(n.a.Scan.root(), "/etc/etcd.env"))
	return err == nil
}

func (n *nodeRun) component(name string) *api.ComponentRestart {
	for i := range n.op.Components {
		if n.op.Components[i].Name == name {
			return &n.op.Components[i]
		}
	}
	return nil
}

func componentOf(st api.NodeCertificatesStatus, name string) *api.ControlPlaneComponent {
	for i := range st.Components {
		if st.Components[i].Name == name {
			return &st.Components[i]
		}
	}
	return nil
}

// componentOrder is order with etcd moved last, whatever the list says.
func componentOrder(order []string) []string {
	if len(order) == 0 {
		order = api.DefaultComponentOrder()
	}
	out := make([]string, 0, len(order))
	etcd := false
	for _, c := range order {
		if c == Etcd {
			etcd = true
			continue
		}
		out = append(out, c)
	}
	if etcd {
		out = append(out, Etcd)
	}
	return out
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func (a *Agent) mirrorPods(ctx context.Context) ([]corev1.Pod, error) {
	lister := a.Pods
	if lister == nil {
		lister = APIMirrorPods(a.Client)
	}
	return lister(ctx, a.Node)
}
