package nodeagent

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Component names.
const (
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	Etcd                  = "etcd"
	Kubelet               = "kubelet"
)

// Use is one file a component serves or uses, as its manifest says.
type Use struct {
	// Path is the file on the host ("" for a certificate the component generates in memory).
	Path string
	// Use is api.UseServing or api.UseClient.
	Use string
	// Endpoint is host:port, for Serving.
	Endpoint string
	// Flag is where the manifest names it ("--tls-cert-file").
	Flag string
	// Reloads: the component reloads the file by itself (see reloads).
	Reloads bool
	// LivenessOnly: the component serves a certificate it generated in memory; only whether it answers
	// is checked.
	LivenessOnly bool
}

// Component is a control-plane component of the node and what it serves or uses.
type Component struct {
	Name string
	// Manifest is its static pod manifest on the host; empty for the kubelet.
	Manifest string
	// PodName is the manifest's metadata.name; its mirror pod is "<PodName>-<node>".
	PodName string
	Uses    []Use
}

// reloads is what each component reloads by itself, and why. What is not here needs a restart: that is
// what kubeadm's documentation says after `kubeadm certs renew`, and in doubt we say so too. Serving
// certificates are not listed: the agent sees what is served.
var reloads = map[string]string{
	// The aggregator builds its proxy client certificate from a dynamic file content controller
	// (dynamiccertificates.NewDynamicServingContentFromFiles), which re-reads the files when they change.
	KubeAPIServer + " --proxy-client-cert-file": "the aggregator watches the proxy client certificate's files and reloads them",
	// The kubelet rotates its client certificate itself and loads the new one through a certificate
	// manager; kubelet-client-current.pem is the symlink it switches.
	Kubelet + " client": "the kubelet rotates its client certificate and loads the new one itself",
	// Not reloaded, for the record:
	//   kube-apiserver --etcd-certfile: the etcd client is built once at start.
	//   kube-apiserver --kubelet-client-certificate: read into the transport at start.
	//   controller-manager, scheduler --kubeconfig: kubeadm embeds the client certificate's data in the
	//   kubeconfig; embedded data is never re-read.
}

// ReloadReason returns why a component reloads a file it names with flag, or "" when it does not.
func ReloadReason(component, flag string) string { return reloads[component+" "+flag] }

// Manifests reads the static pod manifests in <kubeadmDir>/manifests (under the root) and returns the
// components they run, in name order, and the manifests it could not read. Paths in flags are mapped
// through the pod's hostPath volumes to paths on the host.
func Manifests(o ScanOptions) ([]Component, []api.NodeProblem) {
	if o.KubeadmDir == "" {
		o.KubeadmDir = DefaultKubeadmDir
	}
	dir := filepath.Join(o.root(), o.KubeadmDir, "manifests")
	matches, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	yml, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	matches = append(matches, yml...)
	sort.Strings(matches)
	var out []Component
	var problems []api.NodeProblem
	for _, m := range matches {
		data, err := os.ReadFile(m) //nolint:gosec // the node's static pod manifests, read-only
		if err != nil {
			problems = append(problems, api.NodeProblem{Path: o.hostPath(m), Message: err.Error()})
			continue
		}
		c, err := ParseManifest(data)
		if err != nil {
			problems = append(problems, api.NodeProblem{Path: o.hostPath(m), Message: err.Error()})
			continue
		}
		c.Manifest = o.hostPath(m)
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, problems
}

// ParseManifest reads one static pod manifest: the component is the pod's label `component`, else its
// first container's name; what it serves and uses comes from the flags kubeadm writes.
func ParseManifest(data []byte) (Component, error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return Component{}, fmt.Errorf("not a pod manifest: %w", err)
	}
	if len(pod.Spec.Containers) == 0 {
		return Component{}, fmt.Errorf("pod %q has no containers", pod.Name)
	}
	ctr := pod.Spec.Containers[0]
	c := Component{Name: pod.Labels["component"], PodName: pod.Name}
	if c.Name == "" {
		c.Name = ctr.Name
	}
	flags := parseFlags(append(append([]string{}, ctr.Command...), ctr.Args...))
	path := func(flag string) string { return hostPathOf(pod, ctr, flags[flag]) }
	add := func(flag, use, endpoint string) {
		if flags[flag] == "" {
			return
		}
		u := Use{Path: path(flag), Use: use, Endpoint: endpoint, Flag: "--" + flag}
		u.Reloads = use == api.UseClient && ReloadReason(c.Name, u.Flag) != ""
		c.Uses = append(c.Uses, u)
	}
	switch c.Name {
	case KubeAPIServer:
		host := flags["advertise-address"]
		if b := flags["bind-address"]; host == "" && b != "" && !unspecified(b) {
			host = b
		}
		if host == "" {
			host = "127.0.0.1"
		}
		add("tls-cert-file", api.UseServing, net.JoinHostPort(host, orDefault(flags["secure-port"], "6443")))
		add("etcd-certfile", api.UseClient, "")
		add("kubelet-client-certificate", api.UseClient, "")
		add("proxy-client-cert-file", api.UseClient, "")
	case Etcd:
		add("cert-file", api.UseServing, firstHTTPS(flags["listen-client-urls"]))
		add("peer-cert-file", api.UseServing, firstHTTPS(flags["listen-peer-urls"]))
	case KubeControllerManager, KubeScheduler:
		port := "10257"
		if c.Name == KubeScheduler {
			port = "10259"
		}
		host := orDefault(flags["bind-address"], "127.0.0.1")
		if unspecified(host) {
			host = "127.0.0.1"
		}
		endpoint := net.JoinHostPort(host, orDefault(flags["secure-port"], port))
		switch {
		case flags["secure-port"] == "0":
			// Serves nothing: only its client certificate is checked.
		case flags["tls-cert-file"] != "":
			add("tls-cert-file", api.UseServing, endpoint)
		default:
			c.Uses = append(c.Uses, Use{Use: api.UseServing, Endpoint: endpoint, LivenessOnly: true})
		}
		add("kubeconfig", api.UseClient, "")
	}
	return c, nil
}

// KubeletComponent is the kubelet: it serves servingPath on endpoint and uses clientPath (either may be
// "" when the file is absent).
func KubeletComponent(servingPath, clientPath, endpoint string) Component {
	c := Component{Name: Kubelet}
	if servingPath != "" {
		c.Uses = append(c.Uses, Use{Path: servingPath, Use: api.UseServing, Endpoint: endpoint})
	}
	if clientPath != "" {
		c.Uses = append(c.Uses, Use{Path: clientPath, Use: api.UseClient, Flag: "client", Reloads: true})
	}
	return c
}

// parseFlags reads --name=value and --name value.
func parseFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			value = args[i+1]
			i++
		}
		out[name] = value
	}
	return out
}

// hostPathOf maps a path in a container to the host through the mount holding it (the longest mount
// path that contains it) and that mount's hostPath volume. A path under no hostPath mount is returned
// as it is (kubeadm mounts identical paths).
func hostPathOf(pod corev1.Pod, ctr corev1.Container, p string) string {
	if p == "" {
		return ""
	}
	best := -1
	for i, m := range ctr.VolumeMounts {
		mp := strings.TrimRight(m.MountPath, "/")
		if p != mp && !strings.HasPrefix(p, mp+"/") {
			continue
		}
		if best < 0 || len(mp) > len(strings.TrimRight(ctr.VolumeMounts[best].MountPath, "/")) {
			best = i
		}
	}
	if best < 0 {
		return p
	}
	m := ctr.VolumeMounts[best]
	for _, v := range pod.Spec.Volumes {
		if v.Name != m.Name || v.HostPath == nil {
			continue
		}
		rest := strings.TrimPrefix(p, strings.TrimRight(m.MountPath, "/"))
		if m.SubPath != "" {
			return filepath.Join(v.HostPath.Path, m.SubPath, rest)
		}
		return filepath.Join(v.HostPath.Path, rest)
	}
	return p
}

func firstHTTPS(urls string) string {
	for _, s := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err == nil && u.Scheme == "https" && u.Host != "" {
			host, port, err := net.SplitHostPort(u.Host)
			if err != nil {
				return u.Host
			}
			if unspecified(host) {
				host = "127.0.0.1"
			}
			return net.JoinHostPort(host, port)
		}
	}
	return ""
}

func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
