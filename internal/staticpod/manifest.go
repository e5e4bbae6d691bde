package staticpod

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// manifest is one static pod file as read from the manifests folder.
type manifest struct {
	file string
	hash string
	pod  *corev1.Pod
}

// readManifest parses a static pod manifest. The hash is of the file's bytes: any edit, even one that
// only reorders fields, makes a new pod, which is what the kubelet does with its hash of the whole object.
func readManifest(path string) (*manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(data, pod); err != nil {
		return nil, fmt.Errorf("parsing static pod manifest %s: %w", path, err)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("static pod manifest %s has no metadata.name", path)
	}
	if len(pod.Spec.Containers) != 1 {
		return nil, fmt.Errorf("static pod manifest %s has %d containers; this runner runs exactly one", path, len(pod.Spec.Containers))
	}
	if pod.Namespace == "" {
		pod.Namespace = metaNamespaceDefault
	}
	sum := sha256.Sum256(data)
	return &manifest{file: path, hash: hex.EncodeToString(sum[:16]), pod: pod}, nil
}

const metaNamespaceDefault = "default"

// hostMount is a container mount path backed by a hostPath volume.
type hostMount struct {
	mountPath, hostPath string
}

// hostMounts lists the container's mounts of hostPath volumes, longest mount path first so that a nested
// mount wins over the one that contains it.
func hostMounts(pod *corev1.Pod) []hostMount {
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			vols[v.Name] = v.HostPath.Path
		}
	}
	var ms []hostMount
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if hp, ok := vols[m.Name]; ok {
			ms = append(ms, hostMount{mountPath: filepath.Clean(m.MountPath), hostPath: filepath.Clean(hp)})
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].mountPath) > len(ms[j].mountPath) })
	return ms
}

// mapPath turns a path inside the container into the real path on this machine: through the hostPath
// mount that holds it, then under the node's root folder. A path under no mount is left alone.
func mapPath(p, hostRoot string, mounts []hostMount) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return p, false
	}
	clean := filepath.Clean(p)
	for _, m := range mounts {
		if clean == m.mountPath || strings.HasPrefix(clean, m.mountPath+"/") {
			return filepath.Join(hostRoot, m.hostPath, strings.TrimPrefix(clean, m.mountPath)), true
		}
	}
	return p, false
}

// mapArg maps the paths in one argument: the whole argument, the value of --flag=value, and each element
// of a comma-separated value (etcd and the API server take lists of URLs and files).
func mapArg(arg, hostRoot string, mounts []hostMount) string {
	if mapped, ok := mapPath(arg, hostRoot, mounts); ok {
		return mapped
	}
	name, value, found := strings.Cut(arg, "=")
	if !found || !strings.HasPrefix(name, "-") {
		return arg
	}
	parts := strings.Split(value, ",")
	for i, part := range parts {
		parts[i], _ = mapPath(part, hostRoot, mounts)
	}
	return name + "=" + strings.Join(parts, ",")
}

// commandLine is the program and arguments that run the manifest's container on this machine.
func commandLine(pod *corev1.Pod, hostRoot string, commands map[string]string) (string, []string, error) {
	c := pod.Spec.Containers[0]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return "", nil, fmt.Errorf("container %s of %s has no command", c.Name, pod.Name)
	}
	bin, ok := commands[filepath.Base(argv[0])]
	if !ok {
		return "", nil, fmt.Errorf("no binary configured for command %q of %s", argv[0], pod.Name)
	}
	mounts := hostMounts(pod)
	args := make([]string, 0, len(argv)-1)
	for _, a := range argv[1:] {
		args = append(args, mapArg(a, hostRoot, mounts))
	}
	return bin, args, nil
}
