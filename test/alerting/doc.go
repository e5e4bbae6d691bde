// Package alerting runs the shipped alert rules in a real Prometheus server that scrapes a real
// controller on the local cluster, and checks that a real cert-manager renewal of a certificate used by a
// workload whose restart is blocked makes the stale-pod alerts fire.
package alerting
