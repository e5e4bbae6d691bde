package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Defaults of the agent's loop.
const (
	DefaultInterval  = time.Minute
	DefaultHeartbeat = 5 * time.Minute
	// DefaultKubeletPort is the kubelet's port when the Node does not report one.
	DefaultKubeletPort = 10250
)

// AnnotationConfigMirror marks a mirror pod: the API's copy of a static pod the kubelet runs.
const AnnotationConfigMirror = "kubernetes.io/config.mirror"

// MirrorPods lists the pods of kube-system on node whose containers' start times the agent reads. A seam:
// the agent's default lists through the API (APIMirrorPods); a test may return fixed pods.
type MirrorPods func(ctx context.Context, node string) ([]corev1.Pod, error)

// APIMirrorPods lists kube-system's pods with spec.nodeName=node and keeps the mirror pods.
func APIMirrorPods(c client.Reader) MirrorPods {
	return func(ctx context.Context, node string) ([]corev1.Pod, error) {
		var list corev1.PodList
		if err := c.List(ctx, &list, client.InNamespace(metav1.NamespaceSystem), client.MatchingFields{"spec.nodeName": node}); err != nil {
			return nil, fmt.Errorf("listing the pods of node %s in kube-system: %w", node, err)
		}
		var out []corev1.Pod
		for _, p := range list.Items {
			if _, ok := p.Annotations[AnnotationConfigMirror]; ok && p.Spec.NodeName == node {
				out = append(out, p)
			}
		}
		return out, nil
	}
}

// Agent scans one node and publishes its NodeCertificates.
type Agent struct {
	// Node is the node's name: the NodeCertificates' name.
	Node string
	Scan ScanOptions
	// KubeletAddress is host:port of the kubelet's serving endpoint; empty: the Node's InternalIP (else
	// its first address, else 127.0.0.1) and the port it reports (daemonEndpoints), else 10250.
	KubeletAddress string
	// Client reads Nodes and writes NodeCertificates.
	Client client.Client
	// Pods returns the node's mirror pods; nil: APIMirrorPods(Client).
	Pods MirrorPods
	// Dial connects to endpoints; nil: net.Dialer.
	Dial         Dialer
	ProbeTimeout time.Duration
	Interval     time.Duration
	Heartbeat    time.Duration
	// Now is the clock; nil: time.Now.
	Now          func() time.Time
	AgentVersion string
	Log          logr.Logger
	// Rollouts, when set, lets the agent do its node's part of ControlPlaneRollouts.
	Rollouts *RolloutOptions

	// opMu guards op, the report on the rollout the agent works on (published in every status).
	opMu  sync.Mutex
	op    *api.NodeOperation
	mover *Mover

	// prev is the last status written or read, for since and conditions.
	prev *api.NodeCertificatesStatus
	// ready is set after the first publish; /readyz reports it.
	ready atomic.Bool
}

func (a *Agent) operation() *api.NodeOperation {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	return a.op
}

func (a *Agent) setOperation(op *api.NodeOperation) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.op = op
}

// Ready reports whether the agent has published at least once.
func (a *Agent) Ready() bool { return a.ready.Load() }

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Gather reads the node and its endpoints into Decide's input: the files, the manifests' components
// with their mirror pods' start times, and what each serving endpoint presents. node may be nil (no
// kubelet address then unless KubeletAddress is set).
func (a *Agent) Gather(ctx context.Context, node *corev1.Node, prev *api.NodeCertificatesStatus) Input {
	in, _ := a.gather(ctx, node, prev)
	return in
}

// gather is Gather, and the error that made what it says of the components' containers uncertain (their
// mirror pods could not be listed): the status says it; a decision to restart must not rest on it.
func (a *Agent) gather(ctx context.Context, node *corev1.Node, prev *api.NodeCertificatesStatus) (Input, error) {
	now := a.now()
	sr := Scan(a.Scan)
	in := Input{Now: now, AgentVersion: a.AgentVersion, KubeadmDir: sr.KubeadmDir, KubeadmFound: sr.KubeadmFound, Problems: sr.Problems}
	var prevFiles []api.NodeCertificateFile
	var prevScan time.Time
	if prev != nil {
		prevFiles, in.PrevConditions = prev.Files, prev.Conditions
		if prev.ObservedAt != nil {
			prevScan = prev.ObservedAt.Time
		}
	}
	in.Files = Since(sr.Files, prevFiles, prevScan, now)

	comps, problems := Manifests(a.Scan)
	in.Problems = append(in.Problems, problems...)
	var pods []corev1.Pod
	var listErr error
	podsErr := ""
	if len(comps) > 0 {
		lister := a.Pods
		if lister == nil {
			lister = APIMirrorPods(a.Client)
		}
		if pods, listErr = lister(ctx, a.Node); listErr != nil {
			podsErr = listErr.Error()
			a.Log.Error(listErr, "Failed to list mirror pods", "node", klog.KRef("", a.Node))
		}
	}
	for _, c := range comps {
		o := Observed{Component: c}
		o.Running, o.StartedAt, o.NotRunning = Started(pods, c, a.Node)
		if podsErr != "" && !o.Running {
			o.NotRunning = "its mirror pod could not be listed (" + podsErr + ")"
		}
		in.Components = append(in.Components, o)
	}
	var serving, clientPath string
	for _, f := range in.Files {
		switch f.Name {
		case FileKubeletServing:
			serving = f.Path
		case FileKubeletClient:
			clientPath = f.Path
		}
	}
	if serving != "" || clientPath != "" {
		in.Components = append(in.Components, Observed{Component: KubeletComponent(serving, clientPath, a.kubeletAddress(node)), Running: true})
	}
	for i := range in.Components {
		o := &in.Components[i]
		o.Probes = make([]ProbeResult, len(o.Uses))
		if !o.Running {
			continue
		}
		for j, u := range o.Uses {
			if u.Use != api.UseServing {
				continue
			}
			fp, err := Probe(ctx, a.Dial, u.Endpoint, a.ProbeTimeout)
			if err != nil {
				o.Probes[j].Err = err.Error()
				continue
			}
			o.Probes[j].Served = fp
		}
	}
	return in, listErr
}

func (a *Agent) kubeletAddress(node *corev1.Node) string {
	if a.KubeletAddress != "" {
		return a.KubeletAddress
	}
	host, port := "127.0.0.1", DefaultKubeletPort
	if node != nil {
		if p := node.Status.DaemonEndpoints.KubeletEndpoint.Port; p > 0 {
			port = int(p)
		}
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, ad := range node.Status.Addresses {
				if ad.Type == t && net.ParseIP(ad.Address) != nil && host == "127.0.0.1" {
					host = ad.Address
				}
			}
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Started finds a component's mirror pod on node ("<manifest's pod name>-<node>", else the pod whose
// label component names it) and returns whether a container of it runs, since when (its first running
// container's startedAt), and otherwise why not.
func Started(pods []corev1.Pod, c Component, node string) (bool, *time.Time, string) {
	var pod *corev1.Pod
	for i := range pods {
		if c.PodName != "" && pods[i].Name == c.PodName+"-"+node {
			pod = &pods[i]
			break
		}
	}
	if pod == nil {
		for i := range pods {
			if pods[i].Labels["component"] == c.Name {
				pod = &pods[i]
				break
			}
		}
	}
	if pod == nil {
		return false, nil, fmt.Sprintf("no mirror pod %s-%s in kube-system", orDefault(c.PodName, c.Name), node)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil {
			t := cs.State.Running.StartedAt.Time
			if t.IsZero() {
				return true, nil, ""
			}
			return true, &t, ""
		}
	}
	return false, nil, fmt.Sprintf("no container of mirror pod %s runs", pod.Name)
}

// Once scans, decides and publishes. It returns the status and whether it was written.
func (a *Agent) Once(ctx context.Context) (api.NodeCertificatesStatus, bool, error) {
	var node corev1.Node
	if err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, &node); err != nil {
		return api.NodeCertificatesStatus{}, false, fmt.Errorf("reading Node %s: %w", a.Node, err)
	}
	var current api.NodeCertificates
	err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, &current)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return api.NodeCertificatesStatus{}, false, fmt.Errorf("reading NodeCertificates %s: %w", a.Node, err)
	case a.prev == nil:
		// A restarted agent keeps the since it wrote before, and its report on a rollout.
		a.prev = current.Status.DeepCopy()
		if a.operation() == nil {
			a.setOperation(current.Status.Operation)
		}
	}
	st := Decide(a.Gather(ctx, &node, a.prev))
	st.Operation = a.operation().DeepCopy()
	st.Rollouts = a.rolloutAbilities()
	wrote, err := a.publish(ctx, &node, st)
	if err != nil {
		return st, false, err
	}
	a.prev = &st
	a.ready.Store(true)
	return st, wrote, nil
}

// Run calls Once every Interval until ctx ends. A failed round is logged and retried at the next. With
// Rollouts set, it first puts back any manifest a crash left out, and after each scan does the node's
// part of the rollout whose turn it is, looking every Poll while this node is current or next in a
// rollout.
func (a *Agent) Run(ctx context.Context) error {
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	for {
		st, wrote, err := a.Once(ctx)
		if err != nil {
			a.Log.Error(err, "Failed to publish NodeCertificates", "nodeCertificates", klog.KRef("", a.Node))
		} else {
			a.Log.V(1).Info("Scanned node", "node", klog.KRef("", a.Node), "files", st.FileCount,
				"componentsServingOld", st.ComponentsServingOld, "problems", len(st.Problems), "written", wrote)
		}
		wait := interval
		if a.Rollouts != nil {
			if a.rolloutRound(ctx) {
				wait = min(interval, a.rolloutPoll())
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// recover puts back what the journal says a crash left out, before anything else.
func (a *Agent) recover() error {
	m, err := a.loadMover(a.stateDir())
	if err != nil {
		return err
	}
	return a.recoverManifests(m)
}

// rolloutRound puts back what the journal says is out, does this node's turn, if it has one, and says
// whether this node is current or next in one (then the agent polls fast). Recovery runs every round, not only at start: a manifest a failed
// round left out (the kubelet then runs nothing) must not wait for the agent's next restart.
func (a *Agent) rolloutRound(ctx context.Context) bool {
	if err := a.recover(); err != nil {
		a.Log.Error(err, "Failed to put the static pod manifests back", "node", klog.KRef("", a.Node))
		if op := a.operation(); op != nil {
			op = op.DeepCopy()
			op.Message = strings.TrimSpace(op.Message + " Putting the static pod manifests back failed: " + err.Error())
			a.setOperation(op)
		}
	}
	soon, mine, err := a.rolloutsUnfinished(ctx)
	if err != nil {
		a.Log.Error(err, "Failed to read the control-plane rollouts")
		return false
	}
	if mine != nil {
		if err := a.Work(ctx, mine); err != nil && ctx.Err() == nil {
			a.Log.Error(err, "The node's part of the control-plane rollout stopped", "rollout", mine.Name)
		}
	}
	return soon
}

// rolloutAbilities says whether the agent takes part in ControlPlaneRollouts and whether it can renew:
// it can when it may create (and remove) a file in the kubeadm folder and its pki folder, where renewal
// writes (the chart mounts them read-only unless nodeAgent.controlPlaneRollouts.renew).
func (a *Agent) rolloutAbilities() *api.NodeRolloutAbilities {
	if a.Rollouts == nil {
		return &api.NodeRolloutAbilities{}
	}
	out := &api.NodeRolloutAbilities{Enabled: true, CanRenew: true}
	dir := filepath.Join(a.Scan.root(), orDefault(a.Scan.KubeadmDir, DefaultKubeadmDir))
	for _, d := range []string{dir, filepath.Join(dir, "pki")} {
		f, err := os.CreateTemp(d, ".certrollout-write-probe-*")
		if err != nil {
			out.CanRenew, out.Message = false, fmt.Sprintf("cannot write %s: %v", d, err)
			return out
		}
		_ = f.Close()
		if err := os.Remove(f.Name()); err != nil {
			out.CanRenew, out.Message = false, fmt.Sprintf("cannot remove a file from %s: %v", d, err)
			return out
		}
	}
	return out
}

// SameStatus reports whether two statuses say the same, observedAt aside.
func SameStatus(a, b api.NodeCertificatesStatus) bool {
	a.ObservedAt, b.ObservedAt = nil, nil
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// publish writes st when it differs from the stored status or the stored one is Heartbeat old, creating
// the object (owned by the Node, so it goes with it) when missing. Conflicts are retried on a fresh read.
func (a *Agent) publish(ctx context.Context, node *corev1.Node, st api.NodeCertificatesStatus) (bool, error) {
	heartbeat := a.Heartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, Controller: ptr.To(false)}
	wrote := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var obj api.NodeCertificates
		err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, &obj)
		if apierrors.IsNotFound(err) {
			obj = api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: a.Node, OwnerReferences: []metav1.OwnerReference{owner}}}
			if err := a.Client.Create(ctx, &obj); err != nil {
				return fmt.Errorf("creating NodeCertificates %s: %w", a.Node, err)
			}
			a.Log.Info("Created NodeCertificates", "nodeCertificates", klog.KObj(&obj))
		} else if err != nil {
			return fmt.Errorf("reading NodeCertificates %s: %w", a.Node, err)
		}
		if !ownedBy(obj.OwnerReferences, owner) {
			obj.OwnerReferences = append(obj.OwnerReferences, owner)
			if err := a.Client.Update(ctx, &obj); err != nil {
				return fmt.Errorf("setting the owner of NodeCertificates %s: %w", a.Node, err)
			}
		}
		old := obj.Status
		if SameStatus(old, st) && old.ObservedAt != nil && st.ObservedAt != nil && st.ObservedAt.Sub(old.ObservedAt.Time) < heartbeat {
			return nil
		}
		obj.Status = st
		if err := a.Client.Status().Update(ctx, &obj); err != nil {
			return fmt.Errorf("writing the status of NodeCertificates %s: %w", a.Node, err)
		}
		wrote = true
		return nil
	})
	return wrote, err
}

func ownedBy(refs []metav1.OwnerReference, owner metav1.OwnerReference) bool {
	for _, r := range refs {
		if r.UID == owner.UID {
			return true
		}
	}
	return false
}

// ErrBadRoot is returned by CheckRoot.
var ErrBadRoot = errors.New("not a folder")

// CheckRoot checks that the host root is a folder the agent can read.
func CheckRoot(root string) error {
	fi, err := os.Stat(filepath.Clean(root))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w", root, ErrBadRoot)
	}
	return nil
}
