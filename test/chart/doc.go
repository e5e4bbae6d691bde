// Package chart tests the Helm chart in charts/certrollout with Helm's own Go code: lint and schema,
// rendering, and install, upgrade and uninstall against the local cluster.
package chart
