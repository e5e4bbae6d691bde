package chart

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const releaseNamespace = "certrollout-system"

// defaultObjects are what the default values install, as Kind/namespace/name.
var defaultObjects = []string{
	"ClusterRole//certrollout",
	"ClusterRole//certrollout-edit",
	"ClusterRole//certrollout-emergency",
	"ClusterRole//certrollout-metrics-reader",
	"ClusterRole//certrollout-view",
	"ClusterRoleBinding//certrollout",
	"CustomResourceDefinition//certrollouts.certrollout.io",
	"CustomResourceDefinition//controlplanepolicies.certrollout.io",
	"CustomResourceDefinition//controlplanerollouts.certrollout.io",
	"CustomResourceDefinition//maintenanceholds.certrollout.io",
	"CustomResourceDefinition//nodecertificates.certrollout.io",
	"CustomResourceDefinition//rolloutpolicies.certrollout.io",
	"CustomResourceDefinition//trustbundlesyncs.certrollout.io",
	"Deployment/certrollout-system/certrollout",
	"PodDisruptionBudget/certrollout-system/certrollout",
	"Role/certrollout-system/certrollout-control-plane-lease",
	"Role/certrollout-system/certrollout-leader-election",
	"Role/certrollout-system/certrollout-settings",
	"Role/certrollout-system/certrollout-settings-reader",
	"RoleBinding/certrollout-system/certrollout-control-plane-lease",
	"RoleBinding/certrollout-system/certrollout-leader-election",
	"RoleBinding/certrollout-system/certrollout-settings",
	"RoleBinding/certrollout-system/certrollout-settings-reader",
	"Service/certrollout-system/certrollout-metrics",
	"ServiceAccount/certrollout-system/certrollout",
	"ValidatingAdmissionPolicy//certrollout.io-restart-rights",
	"ValidatingAdmissionPolicy//certrollout.io-trust-sync-rights",
	"ValidatingAdmissionPolicyBinding//certrollout.io-restart-rights",
	"ValidatingAdmissionPolicyBinding//certrollout.io-trust-sync-rights",
}

// deployment returns the rendered controller Deployment, typed.
func (r rendered) deployment(t testing.TB) *appsv1.Deployment {
	t.Helper()
	ds := r.ofKind("Deployment")
	if len(ds) != 1 {
		t.Fatalf("want one Deployment, got %v", r.keys())
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(ds[0].Object, &d, true); err != nil {
		t.Fatalf("the Deployment does not convert strictly to apps/v1: %v", err)
	}
	return &d
}

// controller returns the controller container.
func controller(t testing.TB, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return d.Spec.Template.Spec.Containers[0]
}

// env returns the value of an environment variable of the container, and whether it is set.
func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestDefaultValuesRenderAControllerWithLeaderElectionGOMEMLIMITAndARestrictedPod(t *testing.T) {
	r := render(t, releaseNamespace, nil)
	if got := r.keys(); !slices.Equal(got, defaultObjects) {
		t.Errorf("objects:\n got  %v\n want %v", got, defaultObjects)
	}
	d := r.deployment(t)
	c := controller(t, d)
	// Only the flags the chart must set: everything else keeps the binary's defaults.
	wantArgs := []string{
		"controller",
		"--leader-elect=true",
		"--leader-election-lease-duration=15s",
		"--leader-election-renew-deadline=10s",
		"--leader-election-retry-period=2s",
		"--settings-namespace=certrollout-system", // the release's: the Lease may be elsewhere
		"--metrics-secure",                        // HTTPS, authenticated and authorised by the API server
		"--metrics-bind-address=:8443",
		"--health-probe-bind-address=:8081",
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args:\n got  %q\n want %q", c.Args, wantArgs)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	if c.Image != "ghcr.io/certrollout/certrollout:v0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q (%s), want ghcr.io/certrollout/certrollout:v0.1.0 (IfNotPresent)", c.Image, c.ImagePullPolicy)
	}
	if got := c.Resources.Requests.Cpu().String() + " " + c.Resources.Requests.Memory().String() + " " + c.Resources.Limits.Memory().String(); got != "50m 64Mi 256Mi" {
		t.Errorf("resources (cpu request, memory request, memory limit) %s, want 50m 64Mi 256Mi", got)
	}
	// 90% of 256Mi, in bytes: about 230 MiB.
	if v, _ := env(c, "GOMEMLIMIT"); v != "241591910" {
		t.Errorf("GOMEMLIMIT %q, want 241591910 (0.9 × 256Mi)", v)
	}

	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v does not run as 65532:65532, non-root, seccomp RuntimeDefault", psc)
	}
	csc := c.SecurityContext
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || csc.ReadOnlyRootFilesystem == nil ||
		!*csc.ReadOnlyRootFilesystem || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v is not: no privilege escalation, read-only root, drop ALL", csc)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "probes" {
		t.Errorf("liveness probe %+v, want GET /healthz on port probes", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "probes" {
		t.Errorf("readiness probe %+v, want GET /readyz on port probes", p)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["https"] != 8443 || ports["probes"] != 8081 || len(ports) != 2 {
		t.Errorf("ports %v, want https 8443 and probes 8081", ports)
	}
	if pod.ServiceAccountName != "certrollout" {
		t.Errorf("serviceAccountName %q, want certrollout", pod.ServiceAccountName)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil || len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity %+v, want a preferred pod anti-affinity by hostname", pod.Affinity)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 45 {
		t.Errorf("terminationGracePeriodSeconds %v, want 45", pod.TerminationGracePeriodSeconds)
	}
	for _, crd := range r.ofKind("CustomResourceDefinition") {
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is not annotated helm.sh/resource-policy: keep", crd.GetName())
		}
	}
	pdb := r.get(t, "PodDisruptionBudget", "certrollout")
	if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); v != int64(1) {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", v)
	}
}

func TestEveryControllerFlagIsRenderedFromItsValue(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
auto: true
watchNamespaces: [team-a, team-b]
settlePeriod: 3s
minRestartInterval: 30m
restartRate: 0.5
restartBurst: 20
maxConcurrentReconciles: 8
maxConcurrentRollouts: 0
maxConcurrentRolloutsPerNamespace: 1
maxRestartsPerDay: 0
caCascade: true
probes: {enabled: false, timeout: 5s, grace: 90s}
clusterResourceNamespace: cm-system
leaderElection: {namespace: leases, leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 5s}
kubeAPI: {qps: 75.5, burst: 1000000}
pprofBindAddress: 127.0.0.1:6060
logFormat: json
verbosity: 2
metrics: {port: 9090}
healthProbe: {port: 9091}
extraArgs: [--some-future-flag=x]
`))
	want := []string{
		"controller",
		"--leader-elect=true",
		"--leader-election-lease-duration=30s",
		"--leader-election-renew-deadline=20s",
		"--leader-election-retry-period=5s",
		"--leader-election-namespace=leases",
		"--settings-namespace=certrollout-system",
		"--metrics-secure",
		"--metrics-bind-address=:9090",
		"--health-probe-bind-address=:9091",
		"--namespaces=team-a,team-b",
		"--auto",
		"--settle-period=3s",
		"--min-restart-interval=30m",
		"--restart-rate=0.5",
		"--restart-burst=20",
		"--max-concurrent-reconciles=8",
		"--max-concurrent-rollouts=0", // 0 is a value (no limit), not "unset"
		"--max-restarts-per-day=0",
		"--max-concurrent-rollouts-per-namespace=1",
		"--ca-cascade",
		"--probe=false",
		"--probe-timeout=5s",
		"--probe-grace=90s",
		"--cluster-resource-namespace=cm-system",
		"--kube-api-qps=75.5",
		"--kube-api-burst=1000000",
		"--pprof-bind-address=127.0.0.1:6060",
		"--log-format=json",
		"-v=2",
		"--some-future-flag=x",
	}
	if got := controller(t, r.deployment(t)).Args; !slices.Equal(got, want) {
		t.Errorf("args:\n got  %q\n want %q", got, want)
	}
	// The leader election Role follows the Lease.
	if role := r.get(t, "Role", "certrollout-leader-election"); role.GetNamespace() != "leases" {
		t.Errorf("the leader election Role is in %q, want leases", role.GetNamespace())
	}
}

func TestLeaderElectionOffRendersLeaderElectFalseForOneReplicaAndFailsForTwo(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "replicaCount: 1\nleaderElection: {enabled: false}"))
	args := controller(t, r.deployment(t)).Args
	if !slices.Contains(args, "--leader-elect=false") {
		t.Errorf("args %q lack --leader-elect=false", args)
	}
	roles := slices.DeleteFunc(r.ofKind("Role"), func(u *unstructured.Unstructured) bool {
		return strings.HasPrefix(u.GetName(), "certrollout-settings") || u.GetName() == "certrollout-control-plane-lease"
	})
	if len(r.ofKind("PodDisruptionBudget")) != 0 || len(roles) != 0 {
		t.Errorf("one replica without leader election should have no PodDisruptionBudget and no leader election Role: %v", r.keys())
	}
	_, err := tryRender(t, releaseNamespace, values(t, "replicaCount: 2\nleaderElection: {enabled: false}"))
	if err == nil || !strings.Contains(err.Error(), "replicaCount is 2 but leaderElection.enabled is false") {
		t.Errorf("rendering 2 replicas without leader election: error %v, want one naming replicaCount and leaderElection.enabled", err)
	}
}

func TestGOMEMLIMITIsNinetyPercentOfTheMemoryLimitInEveryUnit(t *testing.T) {
	for name, tc := range map[string]struct {
		limit string // YAML of resources.limits.memory; empty: no limit
		want  int64  // GOMEMLIMIT in bytes; 0: unset
	}{
		"binary mebibytes":                       {"256Mi", 241591910},
		"binary gibibytes":                       {"1Gi", 966367641},
		"a fraction of a gibibyte":               {"0.5Gi", 483183820},
		"decimal megabytes":                      {"500M", 450000000},
		"decimal gigabytes":                      {"2G", 1800000000},
		"plain bytes, as a YAML number":          {"268435456", 241591910},
		"plain bytes, as a string":               {`"268435456"`, 241591910},
		"no memory limit sets no GOMEMLIMIT":     {"", 0},
		"kibibytes":                              {"262144Ki", 241591910},
		"decimal kilobytes, lower-case k as k8s": {"256000k", 230400000},
	} {
		t.Run(name, func(t *testing.T) {
			doc := "resources: {limits: null}"
			if tc.limit != "" {
				doc = "resources: {limits: {memory: " + tc.limit + "}}"
			}
			c := controller(t, render(t, releaseNamespace, values(t, doc)).deployment(t))
			got, set := env(c, "GOMEMLIMIT")
			if tc.want == 0 {
				if set {
					t.Errorf("GOMEMLIMIT %q set without a memory limit", got)
				}
				return
			}
			if got != strconv.FormatInt(tc.want, 10) {
				t.Errorf("GOMEMLIMIT %q, want %d", got, tc.want)
			}
			// And it is 90% of what Kubernetes reads the limit as.
			limit := c.Resources.Limits.Memory().Value()
			if n, _ := strconv.ParseInt(got, 10, 64); n != int64(float64(limit)*0.9) {
				t.Errorf("GOMEMLIMIT %d is not 90%% of the limit %s (%d bytes)", n, c.Resources.Limits.Memory(), limit)
			}
		})
	}
	t.Run("a GOMEMLIMIT in env wins", func(t *testing.T) {
		c := controller(t, render(t, releaseNamespace, values(t, "env: [{name: GOMEMLIMIT, value: 100MiB}, {name: GOGC, value: '80'}]")).deployment(t))
		var names []string
		for _, e := range c.Env {
			names = append(names, e.Name+"="+e.Value)
		}
		if !slices.Equal(names, []string{"GOMEMLIMIT=100MiB", "GOGC=80"}) {
			t.Errorf("env %q, want only the user's GOMEMLIMIT=100MiB and GOGC=80", names)
		}
	})
	t.Run("an unknown unit fails naming the value", func(t *testing.T) {
		_, err := tryRender(t, releaseNamespace, values(t, "resources: {limits: {memory: 256MB}}"))
		if err == nil || !strings.Contains(err.Error(), `resources.limits.memory "256MB"`) {
			t.Errorf("error %v, want one naming resources.limits.memory \"256MB\"", err)
		}
	})
	t.Run("goMemLimit.enabled false sets none", func(t *testing.T) {
		c := controller(t, render(t, releaseNamespace, values(t, "goMemLimit: {enabled: false}")).deployment(t))
		if v, set := env(c, "GOMEMLIMIT"); set {
			t.Errorf("GOMEMLIMIT %q set with goMemLimit.enabled=false", v)
		}
	})
	// The test's own arithmetic: 0.9 × 256Mi.
	if q := resource.MustParse("256Mi"); int64(float64(q.Value())*0.9) != 241591910 {
		t.Fatal("the expected GOMEMLIMIT for 256Mi is wrong")
	}
}

func TestAnImageDigestWinsOverTheTag(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for name, tc := range map[string]struct{ values, want string }{
		"tag defaults to appVersion": {"", "ghcr.io/certrollout/certrollout:v0.1.0"},
		"a tag":                      {"image: {tag: v9.9.9}", "ghcr.io/certrollout/certrollout:v9.9.9"},
		"a digest and a tag":         {"image: {tag: v9.9.9, digest: " + digest + "}", "ghcr.io/certrollout/certrollout@" + digest},
		"another repository":         {"image: {repository: registry.example/mirror/certrollout, digest: " + digest + "}", "registry.example/mirror/certrollout@" + digest},
	} {
		t.Run(name, func(t *testing.T) {
			if got := controller(t, render(t, releaseNamespace, values(t, tc.values)).deployment(t)).Image; got != tc.want {
				t.Errorf("image %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNamespacedModeRendersARolePerWatchedNamespaceAndTheNamespacesFlag(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "watchNamespaces: [team-a, team-b]"))
	// Only the cluster-wide controller reads the node agents' Lease.
	want := slices.DeleteFunc(slices.Clone(defaultObjects), func(k string) bool { return strings.HasSuffix(k, "/certrollout-control-plane-lease") })
	want = append(want,
		"Role/team-a/certrollout", "RoleBinding/team-a/certrollout",
		"Role/team-b/certrollout", "RoleBinding/team-b/certrollout")
	slices.Sort(want)
	if got := r.keys(); !slices.Equal(got, want) {
		t.Errorf("objects:\n got  %v\n want %v", got, want)
	}
	if args := controller(t, r.deployment(t)).Args; !slices.Contains(args, "--namespaces=team-a,team-b") {
		t.Errorf("args %q lack --namespaces=team-a,team-b", args)
	}
	for _, rb := range r.ofKind("RoleBinding") {
		if rb.GetName() == "certrollout-settings-reader" {
			continue // binds rbac.settingsReaders
		}
		subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
		if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != releaseNamespace || subjects[0].(map[string]any)["name"] != "certrollout" {
			t.Errorf("RoleBinding %s/%s binds %v, want the ServiceAccount certrollout/%s", rb.GetNamespace(), rb.GetName(), subjects, releaseNamespace)
		}
	}
	// The ClusterRole keeps only what no Role can grant.
	rules, _, _ := unstructured.NestedSlice(r.get(t, "ClusterRole", "certrollout").Object, "rules")
	if len(rules) != 3 {
		t.Errorf("the namespaced mode's ClusterRole has %d rules, want only ClusterIssuers, TokenReviews and SubjectAccessReviews: %v", len(rules), rules)
	}
}

func TestTogglesAddOrRemoveExactlyTheirObjects(t *testing.T) {
	ns := "certrollout-system/"
	for name, tc := range map[string]struct {
		values  string
		added   []string
		removed []string
	}{
		"serviceMonitor":                      {"serviceMonitor: {enabled: true}", []string{"ServiceMonitor/" + ns + "certrollout"}, nil},
		"serviceMonitor in another namespace": {"serviceMonitor: {enabled: true, namespace: monitoring}", []string{"ServiceMonitor/monitoring/certrollout"}, nil},
		"podMonitor":                          {"podMonitor: {enabled: true, authorization: {type: Bearer, credentials: {name: prom, key: token}}}", []string{"PodMonitor/" + ns + "certrollout"}, nil},
		"prometheusRule":                      {"prometheusRule: {enabled: true}", []string{"PrometheusRule/" + ns + "certrollout"}, nil},
		"grafanaDashboard":                    {"grafanaDashboard: {enabled: true}", []string{"ConfigMap/" + ns + "certrollout-dashboard"}, nil},
		"networkPolicy":                       {"networkPolicy: {enabled: true}", []string{"NetworkPolicy/" + ns + "certrollout"}, nil},
		"podDisruptionBudget off":             {"podDisruptionBudget: {enabled: false}", nil, []string{"PodDisruptionBudget/" + ns + "certrollout"}},
		"one replica has no PDB":              {"replicaCount: 1", nil, []string{"PodDisruptionBudget/" + ns + "certrollout"}},
		"crds.enabled false": {"crds: {enabled: false}", nil, []string{"CustomResourceDefinition//certrollouts.certrollout.io", "CustomResourceDefinition//maintenanceholds.certrollout.io",
			"CustomResourceDefinition//controlplanepolicies.certrollout.io", "CustomResourceDefinition//controlplanerollouts.certrollout.io",
			"CustomResourceDefinition//nodecertificates.certrollout.io", "CustomResourceDefinition//rolloutpolicies.certrollout.io", "CustomResourceDefinition//trustbundlesyncs.certrollout.io"}},
		"serviceAccount.create false": {"serviceAccount: {create: false, name: existing}", nil,
			[]string{"ServiceAccount/" + ns + "certrollout"}},
		"rbac.create false": {"rbac: {create: false}", nil, []string{"ClusterRole//certrollout", "ClusterRoleBinding//certrollout", "ClusterRole//certrollout-metrics-reader",
			"Role/" + ns + "certrollout-control-plane-lease", "RoleBinding/" + ns + "certrollout-control-plane-lease",
			"Role/" + ns + "certrollout-leader-election", "RoleBinding/" + ns + "certrollout-leader-election",
			"Role/" + ns + "certrollout-settings", "RoleBinding/" + ns + "certrollout-settings",
			"Role/" + ns + "certrollout-settings-reader", "RoleBinding/" + ns + "certrollout-settings-reader"}},
		"nobody reads the settings": {"rbac: {settingsReaders: []}", nil, []string{"Role/" + ns + "certrollout-settings-reader",
			"RoleBinding/" + ns + "certrollout-settings-reader"}},
		"admissionPolicy off": {"admissionPolicy: {enabled: false}", nil, []string{"ValidatingAdmissionPolicy//certrollout.io-restart-rights",
			"ValidatingAdmissionPolicyBinding//certrollout.io-restart-rights", "ValidatingAdmissionPolicy//certrollout.io-trust-sync-rights",
			"ValidatingAdmissionPolicyBinding//certrollout.io-trust-sync-rights"}},
		"rbac.aggregateToDefaultRoles off": {"rbac: {aggregateToDefaultRoles: false}", nil, []string{"ClusterRole//certrollout-edit", "ClusterRole//certrollout-emergency", "ClusterRole//certrollout-view"}},
		"metrics off": {"metrics: {enabled: false}\nserviceMonitor: {enabled: true}\npodMonitor: {enabled: true}", nil,
			[]string{"Service/" + ns + "certrollout-metrics", "ClusterRole//certrollout-metrics-reader"}},
		"a metrics reader": {"metrics: {reader: {serviceAccount: {name: prometheus-k8s, namespace: monitoring}}}",
			[]string{"ClusterRoleBinding//certrollout-metrics-reader"}, nil},
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

func TestMonitorsNetworkPolicyAndCRDKeepFollowTheirValues(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
serviceMonitor: {enabled: true, interval: 15s, scrapeTimeout: 5s, labels: {release: prometheus}}
podMonitor: {enabled: true, interval: 20s, scrapeTimeout: 7s, labels: {release: prometheus}, authorization: {type: Bearer, credentials: {name: prom, key: token}}}
networkPolicy:
  enabled: true
  ingress: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}
crds: {keep: false}
`))
	for kind, want := range map[string][3]string{
		"ServiceMonitor": {"endpoints", "15s", "5s"},
		"PodMonitor":     {"podMetricsEndpoints", "20s", "7s"},
	} {
		m := r.get(t, kind, "certrollout")
		eps, _, _ := unstructured.NestedSlice(m.Object, "spec", want[0])
		if len(eps) != 1 {
			t.Fatalf("%s has %d endpoints, want 1", kind, len(eps))
		}
		ep := eps[0].(map[string]any)
		if ep["port"] != "https" || ep["interval"] != want[1] || ep["scrapeTimeout"] != want[2] {
			t.Errorf("%s endpoint %v, want port https, interval %s, scrapeTimeout %s", kind, ep, want[1], want[2])
		}
		if m.GetLabels()["release"] != "prometheus" || m.GetLabels()["app.kubernetes.io/name"] != "certrollout" {
			t.Errorf("%s labels %v lack release=prometheus or the chart's labels", kind, m.GetLabels())
		}
	}
	np := r.get(t, "NetworkPolicy", "certrollout")
	ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	egress, _, _ := unstructured.NestedSlice(np.Object, "spec", "egress")
	if len(ingress) != 1 || len(ingress[0].(map[string]any)["from"].([]any)) != 1 || len(ingress[0].(map[string]any)["ports"].([]any)) != 2 {
		t.Errorf("NetworkPolicy ingress %v, want one rule: the metrics and probe ports from the monitoring namespace", ingress)
	}
	var egressPorts []string
	for _, rule := range egress {
		for _, p := range rule.(map[string]any)["ports"].([]any) {
			port := p.(map[string]any)
			egressPorts = append(egressPorts, port["protocol"].(string)+"/"+strconv.FormatInt(port["port"].(int64), 10))
		}
	}
	if !slices.Equal(egressPorts, []string{"TCP/443", "TCP/6443"}) {
		t.Errorf("NetworkPolicy egress ports %v, want TCP/443 and TCP/6443", egressPorts)
	}
	for _, crd := range r.ofKind("CustomResourceDefinition") {
		if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("CRD %s keeps helm.sh/resource-policy with crds.keep=false", crd.GetName())
		}
	}
}

func TestCommonLabelsAndAnnotationsReachEveryObject(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
commonLabels: {team: platform}
commonAnnotations: {owner: sre}
watchNamespaces: [team-a]
serviceMonitor: {enabled: true}
podMonitor: {enabled: true, authorization: {type: Bearer, credentials: {name: prom, key: token}}}
networkPolicy: {enabled: true}
serviceAccount: {annotations: {iam.example/role: certrollout}}
podLabels: {extra: pod}
podAnnotations: {scrape: "yes"}
`))
	if len(r.Objects) < len(defaultObjects)+3 { // namespaced: 5 objects more, the agents' Lease Role and RoleBinding fewer
		t.Fatalf("only %d objects rendered: %v", len(r.Objects), r.keys())
	}
	for _, u := range r.Objects {
		if u.GetLabels()["team"] != "platform" || u.GetAnnotations()["owner"] != "sre" {
			t.Errorf("%s: labels %v, annotations %v lack team=platform, owner=sre", key(u), u.GetLabels(), u.GetAnnotations())
		}
	}
	if sa := r.get(t, "ServiceAccount", "certrollout"); sa.GetAnnotations()["iam.example/role"] != "certrollout" {
		t.Errorf("ServiceAccount annotations %v lack its own", sa.GetAnnotations())
	}
	tpl := r.deployment(t).Spec.Template
	if tpl.Labels["team"] != "platform" || tpl.Labels["extra"] != "pod" || tpl.Annotations["scrape"] != "yes" {
		t.Errorf("pod template labels %v, annotations %v lack commonLabels, podLabels or podAnnotations", tpl.Labels, tpl.Annotations)
	}
	// CRDs keep what controller-gen wrote next to the chart's annotations.
	for _, crd := range r.ofKind("CustomResourceDefinition") {
		if crd.GetAnnotations()["controller-gen.kubebuilder.io/version"] == "" {
			t.Errorf("CRD %s lost its controller-gen annotation: %v", crd.GetName(), crd.GetAnnotations())
		}
	}
}

func TestPodSchedulingValuesReachThePodSpec(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: infra, operator: Exists}]}]}}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
terminationGracePeriodSeconds: 120
imagePullSecrets: [{name: regcred}]
envFrom: [{configMapRef: {name: proxy}}]
`))
	pod := r.deployment(t).Spec.Template.Spec
	if pod.PriorityClassName != "system-cluster-critical" || pod.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" || *pod.TerminationGracePeriodSeconds != 120 ||
		len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pod spec lacks priorityClassName, nodeSelector, tolerations, terminationGracePeriodSeconds or imagePullSecrets: %+v", pod)
	}
	if pod.Affinity == nil || pod.Affinity.NodeAffinity == nil || pod.Affinity.PodAntiAffinity != nil {
		t.Errorf("affinity %+v, want exactly the given node affinity instead of the default anti-affinity", pod.Affinity)
	}
	if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].LabelSelector == nil ||
		pod.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "certrollout" {
		t.Errorf("topology spread constraints %+v, want the given one with the pods' selector filled in", pod.TopologySpreadConstraints)
	}
	if c := pod.Containers[0]; len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "proxy" {
		t.Errorf("envFrom %+v, want the proxy ConfigMap", c.EnvFrom)
	}
}
