package staticpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// Annotations the kubelet puts on mirror pods; tools (and certrollout's node agent) read them.
const (
	AnnotationConfigHash   = "kubernetes.io/config.hash"
	AnnotationConfigMirror = "kubernetes.io/config.mirror"
	AnnotationConfigSource = "kubernetes.io/config.source"
	AnnotationConfigSeen   = "kubernetes.io/config.seen"
	// ContainerIDPrefix starts each container ID; the rest is the process ID on this machine.
	ContainerIDPrefix = "staticpod://"
)

const (
	leaseDuration   = 40 // seconds, the kubelet's default
	leaseRenewEvery = 10 * time.Second
	nodeStatusEvery = 10 * time.Second
)

// apiState remembers what was last written, so that an unchanged status is not written again.
type apiState struct {
	node           *corev1.Node
	lastNodeStatus time.Time
	lastLease      time.Time
	posted         map[types.UID]string // mirror pod UID → status last written (JSON)
}

// RESTConfig reads a node's kubeconfig (kubelet.conf): file paths in it are host paths of the node, found
// under hostRoot.
func RESTConfig(kubeconfig, hostRoot string) (*rest.Config, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	under := func(p string) string {
		if p == "" || !filepath.IsAbs(p) || strings.HasPrefix(p, hostRoot+"/") {
			return p
		}
		return filepath.Join(hostRoot, p)
	}
	for _, a := range cfg.AuthInfos {
		a.ClientCertificate, a.ClientKey = under(a.ClientCertificate), under(a.ClientKey)
	}
	for _, c := range cfg.Clusters {
		c.CertificateAuthority = under(c.CertificateAuthority)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return rc, nil
}

func newClient(kubeconfig, hostRoot string) (kubernetes.Interface, error) {
	rc, err := RESTConfig(kubeconfig, hostRoot)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "staticpod-runner"
	rc.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(rc)
}

// syncAPI posts the Node, its Lease and the mirror pods. Each part is tried even if another failed.
func (r *Runner) syncAPI(ctx context.Context) error {
	node, err := r.syncNode(ctx)
	if err != nil {
		return err
	}
	return errors.Join(r.renewLease(ctx, node), r.syncMirrorPods(ctx, node))
}

func (r *Runner) syncNode(ctx context.Context) (*corev1.Node, error) {
	nodes := r.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// The node-role label is not ours to set: NodeRestriction forbids it to a kubelet, and kubeadm's
		// mark-control-plane phase adds it with admin credentials. The taint is allowed at registration
		// (the kubelet's --register-with-taints, which kubeadm sets for control-plane nodes).
		node, err = nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Labels: map[string]string{
				corev1.LabelHostname: r.cfg.NodeName, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
			}},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}},
		}, metav1.CreateOptions{})
		if err == nil {
			r.log.Info("Registered Node", "node", r.cfg.NodeName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("getting Node %s: %w", r.cfg.NodeName, err)
	}
	if time.Since(r.apiState.lastNodeStatus) < nodeStatusEvery && nodeReady(node) && r.apiState.node != nil && r.apiState.node.UID == node.UID {
		return node, nil
	}
	now := metav1.Now()
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: r.cfg.NodeIP}, {Type: corev1.NodeHostName, Address: r.cfg.NodeName}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(r.cfg.KubeletPort) //nolint:gosec // a port number
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node.Status.Capacity, node.Status.Allocatable = capacity, capacity
	node.Status.NodeInfo.KubeletVersion = r.cfg.KubeletVersion
	node.Status.NodeInfo.OperatingSystem, node.Status.NodeInfo.Architecture = "linux", "amd64"
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range node.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	node.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
	}
	updated, err := r.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating the status of Node %s: %w", r.cfg.NodeName, err)
	}
	r.apiState.node, r.apiState.lastNodeStatus = updated, time.Now()
	return updated, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (r *Runner) renewLease(ctx context.Context, node *corev1.Node) error {
	if time.Since(r.apiState.lastLease) < leaseRenewEvery {
		return nil
	}
	leases := r.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Namespace: corev1.NamespaceNodeLease, OwnerReferences: []metav1.OwnerReference{nodeOwner(node)}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(r.cfg.NodeName), LeaseDurationSeconds: ptr.To[int32](leaseDuration), RenewTime: &now,
			},
		}, metav1.CreateOptions{})
	case err == nil:
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = ptr.To(r.cfg.NodeName), ptr.To[int32](leaseDuration), &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("renewing the Lease of Node %s: %w", r.cfg.NodeName, err)
	}
	r.apiState.lastLease = time.Now()
	return nil
}

func nodeOwner(node *corev1.Node) metav1.OwnerReference {
	// NodeRestriction admits a kubelet's mirror pod only with exactly this reference: its own Node, as
	// controller, without blockOwnerDeletion.
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, Controller: ptr.To(true)}
}

// MirrorPodName is the name the kubelet gives the mirror pod of a static pod on a node.
func MirrorPodName(podName, nodeName string) string { return podName + "-" + nodeName }

// syncMirrorPods makes the API's mirror pods of this node match the manifests: create the missing ones
// (with the running process's start time: a deleted mirror pod comes back and nothing restarts), replace
// the ones of an older manifest, delete the ones without a manifest, and write changed statuses.
func (r *Runner) syncMirrorPods(ctx context.Context, node *corev1.Node) error {
	// A kubelet may only list pods with a field selector on its own node (the Node authorizer).
	list, err := r.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", r.cfg.NodeName).String()})
	if err != nil {
		return fmt.Errorf("listing the pods of Node %s: %w", r.cfg.NodeName, err)
	}
	existing := map[types.NamespacedName]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if _, mirror := p.Annotations[AnnotationConfigMirror]; mirror {
			existing[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
		}
	}
	if r.apiState.posted == nil {
		r.apiState.posted = map[types.UID]string{}
	}
	posted := map[types.UID]string{}
	var errs []error
	for _, v := range r.snapshot() {
		key := types.NamespacedName{Namespace: v.m.pod.Namespace, Name: MirrorPodName(v.m.pod.Name, r.cfg.NodeName)}
		pod := existing[key]
		delete(existing, key)
		if pod != nil && (pod.Annotations[AnnotationConfigMirror] != v.m.hash || pod.DeletionTimestamp != nil) {
			// Like the kubelet: a mirror pod someone deleted (it waits in Terminating for its node) or one
			// of an older manifest is deleted at once, and a new one is posted for the same process.
			reason := "manifest changed"
			if pod.DeletionTimestamp != nil {
				reason = "mirror pod was deleted"
			}
			if err := r.deleteMirror(ctx, pod, reason); err != nil {
				errs = append(errs, err)
			}
			continue // created on a later pass, once the old one is gone
		}
		if pod == nil {
			pod, err = r.client.CoreV1().Pods(key.Namespace).Create(ctx, r.mirrorPod(v, node, key.Name), metav1.CreateOptions{})
			if err != nil {
				errs = append(errs, fmt.Errorf("creating mirror pod %s: %w", key, err))
				continue
			}
			r.log.Info("Created mirror pod", "pod", key.String(), "pid", v.pid)
		}
		status := r.podStatus(v)
		// The API server computes the QoS class at creation and refuses to see it change.
		status.QOSClass = pod.Status.QOSClass
		data, _ := json.Marshal(status)
		if r.apiState.posted[pod.UID] == string(data) {
			posted[pod.UID] = string(data)
			continue
		}
		pod.Status = status
		if _, err := r.client.CoreV1().Pods(key.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("updating the status of mirror pod %s: %w", key, err))
			continue
		}
		posted[pod.UID] = string(data)
	}
	r.apiState.posted = posted
	for _, pod := range existing {
		if err := r.deleteMirror(ctx, pod, "manifest removed"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) deleteMirror(ctx context.Context, pod *corev1.Pod, reason string) error {
	err := r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting mirror pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r.log.Info("Deleted mirror pod", "pod", pod.Namespace+"/"+pod.Name, "reason", reason)
	return nil
}

func (r *Runner) mirrorPod(v containerView, node *corev1.Node, name string) *corev1.Pod {
	src := v.m.pod
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: src.Namespace, Labels: map[string]string{},
			Annotations: map[string]string{
				AnnotationConfigHash: v.m.hash, AnnotationConfigMirror: v.m.hash,
				AnnotationConfigSource: "file", AnnotationConfigSeen: v.seen.Format(time.RFC3339Nano),
			},
			OwnerReferences: []metav1.OwnerReference{nodeOwner(node)},
		},
		Spec: *src.Spec.DeepCopy(),
	}
	for k, val := range src.Labels {
		pod.Labels[k] = val
	}
	for k, val := range src.Annotations {
		if _, ours := pod.Annotations[k]; !ours {
			pod.Annotations[k] = val
		}
	}
	pod.Spec.NodeName = r.cfg.NodeName
	// What the API server would default, made explicit so a later comparison does not see a difference.
	if pod.Spec.RestartPolicy == "" {
		pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	return pod
}

func (r *Runner) podStatus(v containerView) corev1.PodStatus {
	c := v.m.pod.Spec.Containers[0]
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, RestartCount: v.restartCount, Ready: v.pid != 0 && v.ready}
	running := v.pid != 0
	if running {
		cs.ContainerID = ContainerIDPrefix + fmt.Sprint(v.pid)
		cs.Started = ptr.To(true)
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(v.startedAt)}
	} else {
		cs.Started = ptr.To(false)
		reason := "ContainerCreating"
		if v.restartCount > 0 {
			reason = "CrashLoopBackOff"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
	}
	if v.lastPID != 0 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: int32(v.lastExit), Reason: "Error", //nolint:gosec // exit codes are small
			StartedAt: metav1.NewTime(v.lastStarted), FinishedAt: metav1.NewTime(v.lastFinished),
			ContainerID: ContainerIDPrefix + fmt.Sprint(v.lastPID),
		}
		if v.lastExit == 0 {
			cs.LastTerminationState.Terminated.Reason = "Completed"
		}
	}
	t := metav1.NewTime(v.seen)
	boolCond := func(typ corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		// Transition times are the manifest's first sight: stable, so an unchanged status is not rewritten.
		return corev1.PodCondition{Type: typ, Status: s, LastTransitionTime: t}
	}
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			boolCond(corev1.PodReadyToStartContainers, true),
			boolCond(corev1.PodInitialized, true),
			boolCond(corev1.PodReady, cs.Ready),
			boolCond(corev1.ContainersReady, cs.Ready),
			boolCond(corev1.PodScheduled, true),
		},
		HostIP: r.cfg.NodeIP, HostIPs: []corev1.HostIP{{IP: r.cfg.NodeIP}},
		PodIP: r.cfg.NodeIP, PodIPs: []corev1.PodIP{{IP: r.cfg.NodeIP}},
		StartTime:         &t,
		ContainerStatuses: []corev1.ContainerStatus{cs},
	}
}
