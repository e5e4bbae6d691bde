package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// The static pod manifests follow what kubeadm v1.34 writes (flags, hostPath volumes, labels, probes,
// priority), with three differences that three nodes on one machine need, each marked where it is made:
// every listener is bound to the node's 127.0.0.N (kubeadm binds some to 0.0.0.0 or 127.0.0.1), the ports
// are the cluster's free ports instead of the well-known ones, and nothing needs a cloud or pod network.
// kubeadm cannot write them itself: it would write the 198.18.0.N address it was given for its SANs.

const kubeadmPKI = "/etc/kubernetes/pki"

// controlPlaneManifests returns the four manifests of one node, by file name.
func controlPlaneManifests(n ControlPlaneNode, all []ControlPlaneNode, version string) (map[string]*corev1.Pod, error) {
	p := n.Ports
	ip := n.IP
	var initial []string
	for _, m := range all {
		initial = append(initial, m.Name+"=https://"+m.IP+":"+strconv.Itoa(p.EtcdPeer))
	}
	etcdClientURL := "https://" + ip + ":" + strconv.Itoa(p.EtcdClient)
	etcdPeerURL := "https://" + ip + ":" + strconv.Itoa(p.EtcdPeer)

	etcd := staticPod("etcd", "registry.k8s.io/etcd:3.6.4-0", []string{
		"etcd",
		"--advertise-client-urls=" + etcdClientURL,
		"--cert-file=" + kubeadmPKI + "/etcd/server.crt",
		"--client-cert-auth=true",
		"--data-dir=/var/lib/etcd",
		"--feature-gates=InitialCorruptCheck=true",
		"--initial-advertise-peer-urls=" + etcdPeerURL,
		"--initial-cluster=" + strings.Join(initial, ","),
		// All three members start together from empty data (kubeadm instead grows the cluster one join at
		// a time); "new" is what a cluster bootstrapped that way is started with.
		"--initial-cluster-state=new",
		"--key-file=" + kubeadmPKI + "/etcd/server.key",
		// kubeadm listens on 127.0.0.1 too; three members on one machine cannot share it.
		"--listen-client-urls=" + etcdClientURL,
		"--listen-metrics-urls=http://" + ip + ":" + strconv.Itoa(p.EtcdMetrics),
		"--listen-peer-urls=" + etcdPeerURL,
		"--name=" + n.Name,
		"--peer-cert-file=" + kubeadmPKI + "/etcd/peer.crt",
		"--peer-client-cert-auth=true",
		"--peer-key-file=" + kubeadmPKI + "/etcd/peer.key",
		"--peer-trusted-ca-file=" + kubeadmPKI + "/etcd/ca.crt",
		"--snapshot-count=10000",
		"--trusted-ca-file=" + kubeadmPKI + "/etcd/ca.crt",
		"--watch-progress-notify-interval=5s",
		// A disposable local cluster on shared disks: three members' fsyncs would dominate start-up.
		"--unsafe-no-fsync=true",
	}, p.EtcdMetrics, "HTTP", ip, "/livez", "/readyz", "/readyz", "100m", "100Mi")
	etcd.Annotations = map[string]string{"kubeadm.kubernetes.io/etcd.advertise-client-urls": etcdClientURL}
	mount(etcd, "etcd-data", "/var/lib/etcd", corev1.HostPathDirectoryOrCreate, false)
	mount(etcd, "etcd-certs", kubeadmPKI+"/etcd", corev1.HostPathDirectoryOrCreate, false)

	apiserver := staticPod("kube-apiserver", "registry.k8s.io/kube-apiserver:"+version, []string{
		"kube-apiserver",
		"--advertise-address=" + ip,
		"--allow-privileged=true",
		"--authorization-mode=Node,RBAC",
		// kubeadm binds to every address; three API servers on one machine cannot.
		"--bind-address=" + ip,
		"--client-ca-file=" + kubeadmPKI + "/ca.crt",
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		// The endpoint reconciler refuses loopback addresses and would log an error every few seconds.
		"--endpoint-reconciler-type=none",
		"--etcd-cafile=" + kubeadmPKI + "/etcd/ca.crt",
		"--etcd-certfile=" + kubeadmPKI + "/apiserver-etcd-client.crt",
		"--etcd-keyfile=" + kubeadmPKI + "/apiserver-etcd-client.key",
		"--etcd-servers=" + etcdClientURL,
		"--kubelet-client-certificate=" + kubeadmPKI + "/apiserver-kubelet-client.crt",
		"--kubelet-client-key=" + kubeadmPKI + "/apiserver-kubelet-client.key",
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=" + kubeadmPKI + "/front-proxy-client.crt",
		"--proxy-client-key-file=" + kubeadmPKI + "/front-proxy-client.key",
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-client-ca-file=" + kubeadmPKI + "/front-proxy-ca.crt",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--secure-port=" + strconv.Itoa(p.APIServer),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + kubeadmPKI + "/sa.pub",
		"--service-account-signing-key-file=" + kubeadmPKI + "/sa.key",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--tls-cert-file=" + kubeadmPKI + "/apiserver.crt",
		"--tls-private-key-file=" + kubeadmPKI + "/apiserver.key",
	}, p.APIServer, "HTTPS", ip, "/livez", "/readyz", "/livez", "250m", "")
	apiserver.Annotations = map[string]string{"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": ip + ":" + strconv.Itoa(p.APIServer)}
	for _, v := range [][2]string{{"ca-certs", "/etc/ssl/certs"}, {"etc-ca-certificates", "/etc/ca-certificates"}, {"k8s-certs", kubeadmPKI}, {"usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"}, {"usr-share-ca-certificates", "/usr/share/ca-certificates"}} {
		mount(apiserver, v[0], v[1], corev1.HostPathDirectoryOrCreate, true)
	}

	kcm := staticPod("kube-controller-manager", "registry.k8s.io/kube-controller-manager:"+version, []string{
		"kube-controller-manager",
		"--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--bind-address=" + ip,
		"--client-ca-file=" + kubeadmPKI + "/ca.crt",
		"--cluster-name=kubernetes",
		"--cluster-signing-cert-file=" + kubeadmPKI + "/ca.crt",
		"--cluster-signing-key-file=" + kubeadmPKI + "/ca.key",
		// kubeadm's list, without what needs a cloud or a pod network (they would only log errors); the
		// node lifecycle controller stays: it is what keeps the nodes' taints honest.
		"--controllers=*,bootstrapsigner,tokencleaner,-nodeipam,-service,-route,-cloud-node-lifecycle",
		"--kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--leader-elect=true",
		"--requestheader-client-ca-file=" + kubeadmPKI + "/front-proxy-ca.crt",
		"--root-ca-file=" + kubeadmPKI + "/ca.crt",
		"--secure-port=" + strconv.Itoa(p.ControllerManager),
		"--service-account-private-key-file=" + kubeadmPKI + "/sa.key",
		"--use-service-account-credentials=true",
	}, p.ControllerManager, "HTTPS", ip, "/healthz", "", "/healthz", "200m", "")
	for _, v := range [][2]string{{"ca-certs", "/etc/ssl/certs"}, {"etc-ca-certificates", "/etc/ca-certificates"}, {"flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"}, {"k8s-certs", kubeadmPKI}} {
		mount(kcm, v[0], v[1], corev1.HostPathDirectoryOrCreate, v[0] != "flexvolume-dir")
	}
	mount(kcm, "kubeconfig", "/etc/kubernetes/controller-manager.conf", corev1.HostPathFileOrCreate, true)
	for _, v := range [][2]string{{"usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"}, {"usr-share-ca-certificates", "/usr/share/ca-certificates"}} {
		mount(kcm, v[0], v[1], corev1.HostPathDirectoryOrCreate, true)
	}

	scheduler := staticPod("kube-scheduler", "registry.k8s.io/kube-scheduler:"+version, []string{
		"kube-scheduler",
		"--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--bind-address=" + ip,
		"--kubeconfig=/etc/kubernetes/scheduler.conf",
		"--leader-elect=true",
		"--secure-port=" + strconv.Itoa(p.Scheduler),
	}, p.Scheduler, "HTTPS", ip, "/livez", "/readyz", "/livez", "100m", "")
	mount(scheduler, "kubeconfig", "/etc/kubernetes/scheduler.conf", corev1.HostPathFileOrCreate, true)

	return map[string]*corev1.Pod{
		"etcd.yaml": etcd, "kube-apiserver.yaml": apiserver,
		"kube-controller-manager.yaml": kcm, "kube-scheduler.yaml": scheduler,
	}, nil
}

// staticPod builds a kubeadm-style control-plane pod. An empty readiness path means no readiness probe
// (kubeadm gives the controller-manager none).
func staticPod(name, image string, command []string, probePort int, scheme corev1.URIScheme, host, liveness, readiness, startup, cpu, memory string) *corev1.Pod {
	probe := func(path string, period, failures, timeout, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Host: host, Path: path, Port: intstr.FromString("probe-port"), Scheme: scheme,
			}},
			InitialDelaySeconds: delay, PeriodSeconds: period, TimeoutSeconds: timeout, FailureThreshold: failures,
		}
	}
	requests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	if memory != "" {
		requests[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	c := corev1.Container{
		Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Command: command,
		Ports:                  []corev1.ContainerPort{{Name: "probe-port", ContainerPort: int32(probePort), Protocol: corev1.ProtocolTCP}}, //nolint:gosec // a port number
		LivenessProbe:          probe(liveness, 10, 8, 15, 10),
		StartupProbe:           probe(startup, 10, 24, 15, 10),
		Resources:              corev1.ResourceRequirements{Requests: requests},
		TerminationMessagePath: corev1.TerminationMessagePathDefault, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	if readiness != "" {
		c.ReadinessProbe = probe(readiness, 1, 3, 15, 0)
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem, Labels: map[string]string{"component": name, "tier": "control-plane"}},
		Spec: corev1.PodSpec{
			Containers:        []corev1.Container{c},
			HostNetwork:       true,
			Priority:          ptr.To[int32](2000001000),
			PriorityClassName: "system-node-critical",
			SecurityContext:   &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		},
	}
}

func mount(pod *corev1.Pod, name, path string, typ corev1.HostPathType, readOnly bool) {
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: readOnly})
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr.To(typ)}}})
}

// writeManifests writes the node's manifests into its manifests folder, each through a temporary file
// so that the runner never reads half a file.
func writeManifests(n ControlPlaneNode, all []ControlPlaneNode, version string) error {
	pods, err := controlPlaneManifests(n, all, version)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.Root, "etc", "kubernetes", "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for file, pod := range pods {
		data, err := yaml.Marshal(pod)
		if err != nil {
			return fmt.Errorf("writing the %s manifest: %w", pod.Name, err)
		}
		tmp := filepath.Join(dir, "."+file+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
			return err
		}
	}
	return nil
}
