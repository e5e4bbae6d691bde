// Command kubeadm runs the upstream kubeadm: the local control plane's PKI and kubeconfigs are written by
// it, and the parity tests compare certrollout's tables with its `certs check-expiration`.
package main

import (
	_ "time/tzdata"

	"k8s.io/kubernetes/cmd/kubeadm/app"
	utilerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
)

func main() {
	utilerrors.HandleError(app.Run())
}
