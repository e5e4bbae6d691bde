package main

// Each section is a row of the dashboard: its title and panels with their widths and heights.

// sized is a panel with its size on the grid.
type sized struct {
	w, h int
	p    Panel
}

type section struct {
	title  string
	panels []sized
}

// Queries aggregate the replicas away (max/min by the labels that name an object), as the alert rules
// do: every replica of the controller exports the same state.
const (
	certExpiry   = `min by (namespace, kind, name, key, subject, issuer) (certrollout_certificate_expiry_timestamp_seconds{` + ns + `})`
	stalePods    = `max by (namespace, kind, name) (certrollout_workload_stale_pods{` + ns + `})`
	blocked      = `max by (namespace, kind, name, reason) (certrollout_workload_restart_blocked{` + ns + `})`
	runningUntil = `min by (namespace, kind, name) (certrollout_workload_running_certificate_expiry_timestamp_seconds{` + ns + `})`
	currentUntil = `min by (namespace, kind, name) (certrollout_workload_certificate_expiry_timestamp_seconds{` + ns + `})`
	onStale      = ` and on (namespace, kind, name) (` + stalePods + ` > 0)`
	// The control-plane series (from the node agents' NodeCertificates) name a node, not a namespace.
	cpExpiry     = `min by (node, certificate, set) (certrollout_control_plane_certificate_expiry_timestamp_seconds)`
	cpServingOld = `max by (node, component) (certrollout_control_plane_component_serving_old)`
	agentSilence = `time() - max by (node) (certrollout_node_agent_last_report_timestamp_seconds)`
)

func sections() []section {
	return []section{certificates(), controlPlane(), workloads(), rollouts(), cascades(), controller()}
}

func certificates() section {
	return section{title: "Certificates", panels: []sized{
		{8, 8, counts("Certificates by time left",
			"Certificates under each key of the Secrets and ConfigMaps certrollout watches, by how long they stay valid. "+
				"The alerts fire at 28 days (warning) and 7 days (critical).",
			[]string{"red", "orange", "yellow", "green"},
			single("A", `count(`+certExpiry+` - time() <= 0) or vector(0)`, "Expired"),
			single("B", `count(`+certExpiry+` - time() > 0 < 7 * 86400) or vector(0)`, "Under 7 days"),
			single("C", `count(`+certExpiry+` - time() >= 7 * 86400 < 28 * 86400) or vector(0)`, "7 to 28 days"),
			single("D", `count(`+certExpiry+` - time() >= 28 * 86400) or vector(0)`, "Later"))},
		{16, 8, table("Firing certrollout alerts", "Alerts of deploy/prometheus/certrollout-alerts.yaml firing now; docs/runbooks.md says what to do.",
			[]column{{header: "Firing", unit: "none"}},
			instant("A", `ALERTS{alertname=~"CertRollout.*", alertstate="firing"}`))},
		{24, 12, table("Certificate expiry timeline",
			"Every certificate by time left, soonest first: expired red, under 7 days orange, under 28 days yellow, later green.",
			[]column{{header: "Time left", unit: "s", colour: timeLeft()}, {header: "Expires", unit: "dateTimeAsIso"}},
			instant("A", certExpiry+` - time()`),
			instant("B", certExpiry+` * 1000`))},
	}}
}

// controlPlane is empty unless the node agent runs (chart nodeAgent.enabled).
func controlPlane() section {
	return section{title: "Control plane", panels: []sized{
		{4, 8, stat("Components on old certificates",
			"Control-plane components and kubelets that serve or use a certificate older than the one on disk: each needs a restart (the manifest move of docs/runbooks.md).",
			steps("green", 1.0, "orange"),
			single("A", `sum(`+cpServingOld+`) or vector(0)`, "Components"))},
		{10, 8, table("Components serving old certificates", "Each component still on an old certificate, by node.",
			[]column{{header: "Serving old", unit: "none"}},
			instant("A", cpServingOld+` == 1`))},
		{10, 8, table("Node agents, time since the last report",
			"How long ago each control-plane node's agent wrote its NodeCertificates; it writes at least every 5 minutes (orange after 10, red after 15: the alert).",
			[]column{{header: "Last report", unit: "s", colour: steps("green", 600.0, "orange", 900.0, "red")}},
			instant("A", agentSilence))},
		{24, 10, table("Control-plane certificates by time left",
			"Every certificate on the control-plane nodes (kubeadm's, the kubelets', an external etcd's), soonest first, coloured as the alerts fire.",
			[]column{{header: "Time left", unit: "s", colour: timeLeft()}, {header: "Expires", unit: "dateTimeAsIso"}},
			instant("A", cpExpiry+` - time()`),
			instant("B", cpExpiry+` * 1000`))},
		{12, 8, timeseries("Control-plane rollouts, refusals and component restarts",
			"ControlPlaneRollouts that finished in each interval, by result; those refused before they touched anything, by reason (RenewalNotPossible: set nodeAgent.controlPlaneRollouts.renew); component restarts the agents reported, by component and result.",
			"none", true,
			series("A", `sum by (result) (increase(certrollout_control_plane_rollouts_total[$__rate_interval]))`, "{{result}}"),
			series("B", `sum by (reason) (increase(certrollout_control_plane_rollout_refusals_total[$__rate_interval]))`, "refused {{reason}}"),
			series("C", `sum by (component, result) (increase(certrollout_control_plane_component_restarts_total[$__rate_interval]))`, "restarts {{component}} {{result}}"))},
		{12, 8, timeseries("Control-plane node duration",
			"How long a node takes in a rollout, from its agent's start to its report of the end.",
			"s", false,
			series("A", `histogram_quantile(0.5, sum by (le) (rate(certrollout_control_plane_node_duration_seconds_bucket[$__rate_interval])))`, "node p50"),
			series("B", `histogram_quantile(0.95, sum by (le) (rate(certrollout_control_plane_node_duration_seconds_bucket[$__rate_interval])))`, "node p95"))},
	}}
}

func workloads() section {
	return section{title: "Workloads", panels: []sized{
		{8, 8, counts("Workloads by state",
			"Workloads that use certificates: stale (pods on older certificates, restart not blocked), blocked (a due restart cannot happen), up to date.",
			[]string{"orange", "red", "green"},
			single("A", `count(`+stalePods+` > 0 unless on (namespace, kind, name) `+blocked+` > 0) or vector(0)`, "Stale"),
			single("B", `count(max by (namespace, kind, name) (`+blocked+`) > 0) or vector(0)`, "Blocked"),
			single("C", `count(`+stalePods+` == 0) or vector(0)`, "Up to date"))},
		{4, 8, stat("Pods on older certificates",
			"Pods that started before the certificates they use were issued: they still serve the older ones.",
			steps("green", 1.0, "orange"),
			single("A", `sum(`+stalePods+`) or vector(0)`, "Pods"))},
		{12, 8, table("Blocked restarts",
			"Workloads whose due restart cannot happen, and why (the reason is also the Warning Event's: kubectl get events --field-selector reason=REASON).",
			[]column{{header: "Blocked", unit: "none"}},
			instant("A", blocked+` == 1`))},
		{24, 10, table("Workloads with pods on older certificates",
			"Each workload with stale pods: how many, when the certificate they still run on expires, and when the current one does.",
			[]column{
				{header: "Stale pods", unit: "none"},
				{header: "Running certificate expires in", unit: "s", colour: timeLeft()},
				{header: "Current certificate expires in", unit: "s", colour: timeLeft()},
			},
			instant("A", stalePods+` > 0`),
			instant("B", runningUntil+` - time()`+onStale),
			instant("C", currentUntil+` - time()`+onStale))},
	}}
}

func rollouts() section {
	return section{title: "Restarts and rollouts", panels: []sized{
		{12, 8, timeseries("Renewal → restart → ready",
			"How long after a certificate's data is written its workload's restart starts, and how long from then until no pod runs on older certificates.",
			"s", false,
			series("A", `histogram_quantile(0.5, sum by (le) (rate(certrollout_renewal_to_restart_seconds_bucket[$__rate_interval])))`, "renewal → restart p50"),
			series("B", `histogram_quantile(0.95, sum by (le) (rate(certrollout_renewal_to_restart_seconds_bucket[$__rate_interval])))`, "renewal → restart p95"),
			series("C", `histogram_quantile(0.5, sum by (le) (rate(certrollout_restart_to_ready_seconds_bucket[$__rate_interval])))`, "restart → ready p50"),
			series("D", `histogram_quantile(0.95, sum by (le) (rate(certrollout_restart_to_ready_seconds_bucket[$__rate_interval])))`, "restart → ready p95"))},
		{12, 8, timeseries("Restarts and blocked restart decisions",
			"Restarts started (by kind and result) and restarts that were due but blocked (by reason), per second.",
			"ops", false,
			series("A", `sum by (kind, result) (rate(certrollout_restarts_total[$__rate_interval]))`, "restart {{kind}} {{result}}"),
			series("B", `sum by (reason) (rate(certrollout_restarts_blocked_total[$__rate_interval]))`, "blocked {{reason}}"))},
		{12, 8, timeseries("CertRollouts by phase", "CertRollouts that exist, by type and phase.", "none", true,
			series("A", `sum by (type, phase) (max by (namespace, name, type, phase) (certrollout_rollouts{`+ns+`}))`, "{{type}} {{phase}}"))},
		{12, 8, timeseries("Finished CertRollouts by result", "CertRollouts that finished in each interval, by type and result.", "none", true,
			series("A", `sum by (type, result) (increase(certrollout_rollouts_total{`+ns+`}[$__rate_interval]))`, "{{type}} {{result}}"))},
		{12, 8, timeseries("Rollout duration", "A finished CertRollout's start → completion, by type.", "s", false,
			series("A", `histogram_quantile(0.5, sum by (type, le) (rate(certrollout_rollout_duration_seconds_bucket[$__rate_interval])))`, "{{type}} p50"),
			series("B", `histogram_quantile(0.95, sum by (type, le) (rate(certrollout_rollout_duration_seconds_bucket[$__rate_interval])))`, "{{type}} p95"))},
		{12, 8, table("Rollouts waiting, until their expiry deadline",
			"CertRollouts waiting for a window under a policy with an expiryDeadline: the time until the deadline starts them whatever the window (red: past it).",
			[]column{{header: "Deadline in", unit: "s", colour: steps("red", 0.0, "orange", 1*day, "green")}},
			instant("A", `max by (namespace, name) (certrollout_rollout_deadline_timestamp_seconds{`+ns+`}) - time()`))},
		{12, 8, timeseries("Decisions by action", "Every workload decision per second, by action (None, Record, Restart, Block, Wait, Delegate).", "ops", true,
			series("A", `sum by (action) (rate(certrollout_decisions_total[$__rate_interval]))`, "{{action}}"))},
		{12, 8, table("Stalled RolloutPolicies", "RolloutPolicies whose Stalled condition is True, and why: their workloads are not restarted until someone acts.",
			[]column{{header: "Stalled", unit: "none"}},
			instant("A", `max by (namespace, name, reason) (certrollout_rolloutpolicy_invalid{`+ns+`}) == 1`))},
	}}
}

func cascades() section {
	return section{title: "CA cascades", panels: []sized{
		{12, 8, timeseries("Leaf certificates of unfinished cascades", "Leaves of the CA cascades still running, by state.", "none", true,
			series("A", `sum by (state) (max by (namespace, name, state) (certrollout_cascade_certificates{`+ns+`}))`, "{{state}}"))},
		{12, 8, table("Unfinished cascades", "Each unfinished CA cascade (a CertRollout): its leaves by state.",
			[]column{{header: "Leaves", unit: "none"}},
			instant("A", `max by (namespace, name, state) (certrollout_cascade_certificates{`+ns+`}) > 0`))},
	}}
}

func controller() section {
	leaders := stat("Replicas holding the lease", "Replicas that lead: 1 is healthy, 0 means nothing acts.",
		steps("red", 1.0, "green", 2.0, "orange"),
		single("A", `sum(certrollout_controller_leader) or vector(0)`, "Leaders"))
	leaders.FieldConfig.Defaults.Mappings = []ValueMapping{{Type: "value", Options: map[string]MappedValue{"0": {Color: "red", Text: "no leader"}}}}
	return section{title: "Controller", panels: []sized{
		{4, 6, leaders},
		{4, 6, stat("Replicas scraped", "Controller replicas Prometheus scrapes.", steps("red", 1.0, "green"),
			single("A", `count(certrollout_build_info) or vector(0)`, "Replicas"))},
		{16, 6, table("Build", "The running builds, one row per replica.", []column{{header: "Replicas", unit: "none"}},
			instant("A", `count by (version, git_commit, go_version) (certrollout_build_info)`))},
		{24, 8, timeseries("API requests", "The controller's own requests to the API server per second, by verb and resource (steady state: WATCH only).",
			"reqps", false,
			series("A", `sum by (verb, resource) (rate(certrollout_api_requests_total[$__rate_interval]))`, "{{verb}} {{resource}}"))},
	}}
}
