// Package smoke checks that the local cluster behaves like a real one in the ways certrollout depends on:
// Deployments roll out and restart, cert-manager renews certificates, and the cluster tooling starts and
// stops cleanly.
package smoke
