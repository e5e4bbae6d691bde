package chart

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

// namespacedValues is a values file a user of the namespaced mode would write.
const namespacedValues = `
watchNamespaces: [team-a, team-b]
replicaCount: 1
leaderElection: {enabled: false}
auto: true
logFormat: json
verbosity: 1
serviceMonitor: {enabled: true, labels: {release: prometheus}}
networkPolicy: {enabled: true}
`

// lintChart runs `helm lint --strict`'s checks (chart file, values and schema, templates, CRDs) and
// returns the messages at warning or above.
func lintChart(t *testing.T, vals map[string]any) []support.Message {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	result := lint.RunAll(chartDir(t), vals, releaseNamespace, lint.WithKubeVersion(kv))
	var out []support.Message
	for _, m := range result.Messages {
		if m.Severity >= support.WarningSev {
			out = append(out, m)
		}
	}
	return out
}

func TestHelmLintPassesWithDefaultAndNamespacedValues(t *testing.T) {
	for name, doc := range map[string]string{"default values": "", "namespaced mode": namespacedValues} {
		t.Run(name, func(t *testing.T) {
			for _, m := range lintChart(t, values(t, doc)) {
				t.Errorf("helm lint: %s", m.Error())
			}
		})
	}
	// The linter is live: a chart whose values break the schema does not pass.
	if msgs := lintChart(t, values(t, "replicaCount: two")); len(msgs) == 0 {
		t.Error("helm lint passed values the schema rejects")
	}
}

func TestTheSchemaRejectsBadValuesNamingTheField(t *testing.T) {
	for name, tc := range map[string]struct{ values, field string }{
		"replicaCount as a word":           {`replicaCount: "two"`, "replicaCount"},
		"an unknown log format":            {"logFormat: xml", "logFormat"},
		"an unknown top-level key":         {"replicas: 3", "replicas"},
		"a duration without a unit":        {"settlePeriod: 5", "settlePeriod"},
		"a malformed duration":             {"leaderElection: {leaseDuration: fifteen}", "leaseDuration"},
		"a digest that is not sha256":      {"image: {digest: latest}", "digest"},
		"watchNamespaces as a string":      {"watchNamespaces: team-a", "watchNamespaces"},
		"a negative max concurrent":        {"maxConcurrentRollouts: -1", "maxConcurrentRollouts"},
		"a zero restart rate":              {"restartRate: 0", "restartRate"},
		"a misspelt nested key":            {"leaderElection: {enable: true}", "enable"},
		"a port out of range":              {"metrics: {port: 70000}", "port"},
		"an unknown image pull policy":     {"image: {pullPolicy: Sometimes}", "pullPolicy"},
		"a GOMEMLIMIT ratio over one":      {"goMemLimit: {ratio: 1.5}", "ratio"},
		"verbosity as a word":              {"verbosity: debug", "verbosity"},
		"crds.keep as a string":            {`crds: {keep: "yes"}`, "keep"},
		"a namespace that is not a name":   {"watchNamespaces: [Team_A]", "watchNamespaces"},
		"extraArgs as a single string arg": {"extraArgs: --foo", "extraArgs"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tryRender(t, releaseNamespace, values(t, tc.values))
			if err == nil {
				t.Fatalf("values %q were accepted", tc.values)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("values %q: error %q does not name the schema and %s", tc.values, err, tc.field)
			}
		})
	}
	// And good values of the same fields pass.
	if _, err := tryRender(t, releaseNamespace, values(t, `
replicaCount: 3
logFormat: text
settlePeriod: 1m30s
leaderElection: {leaseDuration: 1h}
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
watchNamespaces: [team-a]
maxConcurrentRollouts: 0
restartRate: 0.1
verbosity: 4
`)); err != nil {
		t.Errorf("good values were rejected: %v", err)
	}
}
