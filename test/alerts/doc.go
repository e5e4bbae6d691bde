// Package alerts tests the Prometheus alert rules in deploy/prometheus/certrollout-alerts.yaml: promtool
// checks them and runs their unit tests (certrollout-alerts.test.yaml), and the Go tests hold every rule
// to the series the controller exports, to its labels and annotations, and to its runbook.
package alerts
