// Command certrollout restarts the workloads that use a renewed certificate, safely. Installed as
// kubectl-certrollout it also runs as `kubectl certrollout`.
package main

import (
	"os"

	"github.com/certrollout/certrollout/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args))
}
