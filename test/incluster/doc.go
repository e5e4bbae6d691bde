// Package incluster runs certrollout as it is shipped: the OCI image `make image` builds, its entrypoint
// started the way a container runtime starts it in a pod (package containertest), with the arguments,
// environment and RBAC of the rendered Helm chart, in in-cluster mode against the local cluster, and
// checks that it becomes ready and rolls a consumer once after a real cert-manager renewal.
package incluster
