package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/charttest"
)

// nodeAgentObjects are what nodeAgent.enabled adds for release certrollout.
var nodeAgentObjects = []string{
	"ClusterRole//certrollout-node-agent",
	"ClusterRoleBinding//certrollout-node-agent",
	"DaemonSet/certrollout-system/certrollout-node-agent",
	"Role/kube-system/certrollout-node-agent",
	"RoleBinding/kube-system/certrollout-node-agent",
	"ServiceAccount/certrollout-system/certrollout-node-agent",
	"ValidatingAdmissionPolicy//certrollout.io-node-certificates",
	"ValidatingAdmissionPolicyBinding//certrollout.io-node-certificates",
}

// daemonSet returns the rendered node agent DaemonSet, typed.
func (r rendered) daemonSet(t testing.TB) *appsv1.DaemonSet {
	t.Helper()
	ds := r.ofKind("DaemonSet")
	if len(ds) != 1 {
		t.Fatalf("want one DaemonSet, got %v", r.keys())
	}
	var d appsv1.DaemonSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(ds[0].Object, &d, true); err != nil {
		t.Fatalf("the DaemonSet does not convert strictly to apps/v1: %v", err)
	}
	return &d
}

// nodeAgentShipped reads the objects of config/node-agent/<file> of a kind.
func nodeAgentShipped(t *testing.T, file, kind string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "node-agent", file))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var m struct{ Kind string }
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if m.Kind == kind {
			out = append(out, doc)
		}
	}
	if len(out) == 0 {
		t.Fatalf("config/node-agent/%s holds no %s", file, kind)
	}
	return out
}

func nodeAgentShippedRules(t *testing.T, kind string) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(nodeAgentShipped(t, "rbac.yaml", kind)[0], &role); err != nil {
		t.Fatal(err)
	}
	return role.Rules
}

func TestTheNodeAgentIsOffByDefaultAndAddsExactlyItsObjects(t *testing.T) {
	if got := render(t, releaseNamespace, nil).keys(); !slices.Equal(got, defaultObjects) {
		t.Errorf("default objects:\n got  %v\n want %v", got, defaultObjects)
	}
	for name, tc := range map[string]struct {
		values  string
		added   []string
		removed []string
	}{
		"enabled":                          {"nodeAgent: {enabled: true}", nodeAgentObjects, nil},
		"enabled without its policy":       {"nodeAgent: {enabled: true, admissionPolicy: {enabled: false}}", nodeAgentObjects[:6], nil},
		"enabled without RBAC":             {"nodeAgent: {enabled: true}\nrbac: {create: false}", []string{nodeAgentObjects[2], nodeAgentObjects[5], nodeAgentObjects[6], nodeAgentObjects[7]}, []string{"ClusterRole//certrollout", "ClusterRoleBinding//certrollout", "ClusterRole//certrollout-metrics-reader", "Role/certrollout-system/certrollout-control-plane-lease", "RoleBinding/certrollout-system/certrollout-control-plane-lease", "Role/certrollout-system/certrollout-leader-election", "RoleBinding/certrollout-system/certrollout-leader-election", "Role/certrollout-system/certrollout-settings", "RoleBinding/certrollout-system/certrollout-settings", "Role/certrollout-system/certrollout-settings-reader", "RoleBinding/certrollout-system/certrollout-settings-reader"}},
		"disabled with its settings given": {"nodeAgent: {enabled: false, etcdCertDir: /etc/ssl/etcd}", nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got := render(t, releaseNamespace, values(t, tc.values)).keys()
			want := slices.DeleteFunc(slices.Clone(defaultObjects), func(k string) bool { return slices.Contains(tc.removed, k) })
			want = append(want, tc.added...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("objects:\n got  %v\n want %v", got, want)
			}
		})
	}
}

func TestTheNodeAgentDaemonSetRunsOnControlPlaneNodesWithReadOnlyHostMountsAndNoCapabilities(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "nodeAgent: {enabled: true, priorityClassName: system-node-critical}"))
	d := r.daemonSet(t)
	spec := d.Spec.Template.Spec
	if d.Name != "certrollout-node-agent" || spec.ServiceAccountName != "certrollout-node-agent" {
		t.Errorf("DaemonSet %s runs as %q, want certrollout-node-agent for both", d.Name, spec.ServiceAccountName)
	}
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v, dnsPolicy %q: want the node's network with ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
	}
	if spec.HostPID || spec.HostIPC {
		t.Error("the agent shares the node's PID or IPC namespace")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if got := spec.NodeSelector; len(got) != 1 || got["node-role.kubernetes.io/control-plane"] != "" {
		t.Errorf("nodeSelector %v, want only node-role.kubernetes.io/control-plane", got)
	}
	var tolerated []string
	for _, tol := range spec.Tolerations {
		if tol.Operator == corev1.TolerationOpExists && tol.Effect == corev1.TaintEffectNoSchedule {
			tolerated = append(tolerated, tol.Key)
		}
	}
	if !slices.Equal(tolerated, []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}) {
		t.Errorf("tolerates %v (of %v), want kubeadm's control-plane and master NoSchedule taints", tolerated, spec.Tolerations)
	}
	// The pod: root (kubeadm's keys folder), nothing else.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 0 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v, want runAsUser 0 and seccomp RuntimeDefault", psc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if want := "ghcr.io/certrollout/certrollout:v0.1.0"; c.Image != want {
		t.Errorf("image %q, want the controller's %q", c.Image, want)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("container security context %+v, want no privilege escalation, a read-only root and every capability dropped", sc)
	}
	wantArgs := []string{"node-agent", "--host-root=/host", "--kubeadm-dir=/etc/kubernetes", "--kubelet-pki-dir=/var/lib/kubelet/pki", "--health-probe-bind-address=:10358"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n got  %q\n want %q", c.Args, wantArgs)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env %+v, want NODE_NAME from spec.nodeName", c.Env)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "probes" {
			t.Errorf("%s probe %+v, want GET on the probes port", name, p)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 10358 {
		t.Errorf("ports %+v, want the probe port 10358", c.Ports)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v, want a CPU request and a memory limit", c.Resources)
	}
	checkMounts(t, spec, map[string]string{"/etc/kubernetes": "/host/etc/kubernetes", "/var/lib/kubelet/pki": "/host/var/lib/kubelet/pki"})

	// An external etcd's folder, and other folders and flags.
	r = render(t, releaseNamespace, values(t, `nodeAgent: {enabled: true, etcdCertDir: /etc/ssl/etcd, kubeadmDir: /srv/kubernetes, interval: 30s, heartbeat: 2m,
  logFormat: json, healthProbe: {port: 10999}, nodeSelector: {role: cp, node-role.kubernetes.io/control-plane: null}, tolerations: []}`))
	d = r.daemonSet(t)
	spec = d.Spec.Template.Spec
	wantArgs = []string{"node-agent", "--host-root=/host", "--kubeadm-dir=/srv/kubernetes", "--kubelet-pki-dir=/var/lib/kubelet/pki", "--etcd-cert-dir=/etc/ssl/etcd",
		"--interval=30s", "--heartbeat=2m", "--health-probe-bind-address=:10999", "--log-format=json"}
	if got := spec.Containers[0].Args; !slices.Equal(got, wantArgs) {
		t.Errorf("args\n got  %q\n want %q", got, wantArgs)
	}
	if len(spec.NodeSelector) != 1 || spec.NodeSelector["role"] != "cp" || len(spec.Tolerations) != 0 {
		t.Errorf("nodeSelector %v, tolerations %v: the values do not replace the defaults", spec.NodeSelector, spec.Tolerations)
	}
	checkMounts(t, spec, map[string]string{"/srv/kubernetes": "/host/srv/kubernetes", "/var/lib/kubelet/pki": "/host/var/lib/kubelet/pki", "/etc/ssl/etcd": "/host/etc/ssl/etcd"})

	// Relative paths are refused by the schema.
	if _, err := tryRender(t, releaseNamespace, values(t, "nodeAgent: {enabled: true, etcdCertDir: etc/ssl}")); err == nil {
		t.Error("a relative etcdCertDir was accepted")
	}
}

// checkMounts fails unless the pod mounts exactly these host folders (host path: mount path), each
// read-only, as folders.
func checkMounts(t *testing.T, spec corev1.PodSpec, want map[string]string) {
	t.Helper()
	hostPaths := map[string]string{} // volume name: host path
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a hostPath", v.Name)
			continue
		}
		if v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory {
			t.Errorf("hostPath %s has type %v, want Directory (nothing created on the host)", v.HostPath.Path, v.HostPath.Type)
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	got := map[string]string{}
	for _, m := range spec.Containers[0].VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
		got[hostPaths[m.Name]] = m.MountPath
	}
	if len(got) != len(want) || len(spec.Volumes) != len(want) {
		t.Errorf("mounts %v, want %v", got, want)
	}
	for host, path := range want {
		if got[host] != path {
			t.Errorf("host %s is mounted at %q, want %q", host, got[host], path)
		}
	}
}

func TestTheNodeAgentsRBACAndPolicyAreThoseOfConfigNodeAgent(t *testing.T) {
	r := renderRelease(t, "edge", "platform", values(t, "nodeAgent: {enabled: true}"))
	diffRules(t, "the node agent's ClusterRole and config/node-agent/rbac.yaml's",
		renderedRules(t, r.get(t, "ClusterRole", "edge-certrollout-node-agent")), nodeAgentShippedRules(t, "ClusterRole"))
	diffRules(t, "the node agent's Role and config/node-agent/rbac.yaml's",
		renderedRules(t, r.get(t, "Role", "edge-certrollout-node-agent")), nodeAgentShippedRules(t, "Role"))
	// Exactly these rights, written out: a rule more in config/ would otherwise pass.
	diffRules(t, "the node agent's ClusterRole", renderedRules(t, r.get(t, "ClusterRole", "edge-certrollout-node-agent")), []rbacv1.PolicyRule{
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"nodecertificates"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"nodecertificates/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
	})
	diffRules(t, "the node agent's Role", renderedRules(t, r.get(t, "Role", "edge-certrollout-node-agent")), []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
	})
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		b := r.get(t, kind, "edge-certrollout-node-agent")
		subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
		roleName, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
		if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != "edge-certrollout-node-agent" || subjects[0].(map[string]any)["namespace"] != "platform" || roleName != "edge-certrollout-node-agent" {
			t.Errorf("%s binds %v to %s, want the ServiceAccount platform/edge-certrollout-node-agent to its own role", kind, subjects, roleName)
		}
	}

	// The chart's copy of the policy is config/'s, and the rendered policy names the release's ServiceAccount.
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "node-agent", "admission_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir(t), "files", "admission", "node_agent_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("charts/certrollout/files/admission/node_agent_policy.yaml differs from config/node-agent/admission_policy.yaml: run make generate")
	}
	var shipped, rendered admissionregistrationv1.ValidatingAdmissionPolicy
	if err := yaml.Unmarshal(nodeAgentShipped(t, "admission_policy.yaml", "ValidatingAdmissionPolicy")[0], &shipped); err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(r.get(t, "ValidatingAdmissionPolicy", "certrollout.io-node-certificates").Object, &rendered, true); err != nil {
		t.Fatal(err)
	}
	if len(rendered.Spec.MatchConditions) != 1 || rendered.Spec.MatchConditions[0].Expression != "request.userInfo.username == 'system:serviceaccount:platform:edge-certrollout-node-agent'" {
		t.Errorf("the policy matches %+v, want the release's agent ServiceAccount", rendered.Spec.MatchConditions)
	}
	if len(shipped.Spec.Validations) != 2 || !slices.Equal(validationExpressions(rendered), validationExpressions(shipped)) {
		t.Errorf("the rendered policy's validations differ from config/'s:\n got  %q\n want %q", validationExpressions(rendered), validationExpressions(shipped))
	}
	if rules := rendered.Spec.MatchConstraints.ResourceRules; len(rules) != 1 || !slices.Equal(rules[0].Resources, []string{"nodecertificates", "nodecertificates/status"}) {
		t.Errorf("the policy matches %+v, want nodecertificates and their status", rules)
	}
	binding := r.get(t, "ValidatingAdmissionPolicyBinding", "certrollout.io-node-certificates")
	if actions, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !slices.Equal(actions, []string{"Deny"}) {
		t.Errorf("the binding's validationActions are %v, want Deny", actions)
	}
	if rendered.Labels["app.kubernetes.io/instance"] != "edge" || rendered.Labels["app.kubernetes.io/component"] != "node-agent" {
		t.Errorf("the policy lacks the release's node agent labels: %v", rendered.Labels)
	}
	for _, u := range r.Objects {
		if strings.Contains(u.GetName(), "node-agent") || strings.Contains(u.GetName(), "node-certificates") {
			if got := u.GetLabels()["app.kubernetes.io/component"]; got != "node-agent" {
				t.Errorf("%s has component label %q, want node-agent", key(u), got)
			}
		}
	}
}

func validationExpressions(p admissionregistrationv1.ValidatingAdmissionPolicy) []string {
	var out []string
	for _, v := range p.Spec.Validations {
		out = append(out, strings.TrimSpace(v.Expression), strings.TrimSpace(v.MessageExpression))
	}
	return out
}

// With nodeAgent.controlPlaneRollouts the agent gets exactly what its part in a ControlPlaneRollout
// needs, each with its reason in the template: kubeadm's folder writable (renewal and manifest moves), or
// only manifests/ without renewal; its state folder; the kubeconfig copies' folders; read access to
// rollouts, the Lease by name, and kubeadm's ClusterConfiguration. config/node-agent-rollouts builds the
// same.
func TestTheNodeAgentsRolloutPartWritesOnlyWhatItMustAndIsThatOfConfigNodeAgentRollouts(t *testing.T) {
	r := renderRelease(t, "edge", "platform", values(t, "nodeAgent: {enabled: true, controlPlaneRollouts: {enabled: true, kubeconfigCopyDirs: [/root/.kube]}}"))
	c := r.daemonSet(t).Spec.Template.Spec.Containers[0]
	wantArgs := []string{"node-agent", "--host-root=/host", "--kubeadm-dir=/etc/kubernetes", "--kubelet-pki-dir=/var/lib/kubelet/pki",
		"--health-probe-bind-address=:10358", "--control-plane-rollouts", "--state-dir=/var/lib/certrollout", "--kubeconfig-copy-dirs=/root/.kube"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n got  %q\n want %q", c.Args, wantArgs)
	}
	if len(c.Env) != 2 || c.Env[1].Name != "POD_NAMESPACE" || c.Env[1].ValueFrom == nil || c.Env[1].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("env %+v, want NODE_NAME and POD_NAMESPACE from the downward API", c.Env)
	}
	wantMounts := map[string]bool{"/host/etc/kubernetes": true, "/host/var/lib/kubelet/pki": false, "/host/var/lib/certrollout": true, "/host/root/.kube": true}
	checkWritable(t, r.daemonSet(t).Spec.Template.Spec, wantMounts)

	diffRules(t, "the node agent's ClusterRole", renderedRules(t, r.get(t, "ClusterRole", "edge-certrollout-node-agent")), []rbacv1.PolicyRule{
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"nodecertificates"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"nodecertificates/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
		{APIGroups: []string{"certrollout.io"}, Resources: []string{"controlplanerollouts"}, Verbs: []string{"get", "list", "watch"}},
	})
	diffRules(t, "the node agent's Role in kube-system", renderedRules(t, r.getIn(t, "Role", "kube-system", "edge-certrollout-node-agent")), []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kubeadm-config"}, Verbs: []string{"get"}},
	})
	diffRules(t, "the node agent's Role in its namespace", renderedRules(t, r.getIn(t, "Role", "platform", "edge-certrollout-node-agent")), []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"certrollout-control-plane"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
	})

	// config/node-agent-rollouts: the same rights and the same writable mounts (no kubeconfig copies).
	built := kustomizeBuild(t, "config/node-agent-rollouts")
	plain := renderRelease(t, "certrollout", "certrollout-system", values(t, "nodeAgent: {enabled: true, controlPlaneRollouts: {enabled: true}}"))
	for _, k := range [][]string{{"ClusterRole", ""}, {"Role", "kube-system"}, {"Role", "certrollout-system"}} {
		diffRules(t, "config/node-agent-rollouts' "+k[0]+" in "+k[1], renderedRules(t, built.getIn(t, k[0], k[1], "certrollout-node-agent")),
			renderedRules(t, plain.getIn(t, k[0], k[1], "certrollout-node-agent")))
	}
	bc := built.daemonSet(t).Spec.Template.Spec.Containers[0]
	if want := plain.daemonSet(t).Spec.Template.Spec.Containers[0].Args; !slices.Equal(bc.Args, want) {
		t.Errorf("config/node-agent-rollouts' args\n got  %q\n want %q", bc.Args, want)
	}
	delete(wantMounts, "/host/root/.kube")
	checkWritable(t, built.daemonSet(t).Spec.Template.Spec, wantMounts)

	// Without renewal, kubeadm's folder stays read-only and only manifests/ is writable.
	r = render(t, releaseNamespace, values(t, "nodeAgent: {enabled: true, controlPlaneRollouts: {enabled: true, renew: false}}"))
	checkWritable(t, r.daemonSet(t).Spec.Template.Spec, map[string]bool{"/host/etc/kubernetes": false, "/host/etc/kubernetes/manifests": true,
		"/host/var/lib/kubelet/pki": false, "/host/var/lib/certrollout": true})
	if _, err := tryRender(t, releaseNamespace, values(t, "nodeAgent: {enabled: true, controlPlaneRollouts: {enabled: true, stateDir: /}}")); err == nil {
		t.Error("stateDir / was accepted")
	}
}

// checkWritable fails unless the pod mounts exactly these paths, writable or not as given.
func checkWritable(t *testing.T, spec corev1.PodSpec, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, m := range spec.Containers[0].VolumeMounts {
		got[m.MountPath] = !m.ReadOnly
	}
	if len(got) != len(want) || len(spec.Volumes) != len(want) {
		t.Errorf("mounts (path: writable) %v, want %v", got, want)
	}
	for path, writable := range want {
		if w, ok := got[path]; !ok || w != writable {
			t.Errorf("%s: mounted %v, writable %v; want writable %v", path, ok, w, writable)
		}
	}
}

// getIn returns the object of that kind, namespace ("" for cluster-scoped) and name.
func (r rendered) getIn(t testing.TB, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range r.Objects {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s/%s among %v", kind, namespace, name, r.keys())
	return nil
}

// kustomizeBuild builds a kustomization of the repository, as kubectl apply -k does.
func kustomizeBuild(t *testing.T, dir string) rendered {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	manifests, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(string(manifests))
	if err != nil {
		t.Fatal(err)
	}
	return rendered{charttest.Rendered{Objects: objs}}
}
