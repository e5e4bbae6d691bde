// Command certrollout restarts the workloads that use a renewed certificate, safely. Installed as
// kubectl-certrollout it also runs as `kubectl certrollout`.
package main

import (
	"os"
	// The container image has no /usr/share/zoneinfo, and RolloutPolicy windows name IANA time zones that
	// time.LoadLocation resolves: embed the zone database in the binary (about 450 KB).
	_ "time/tzdata"

	"github.com/certrollout/certrollout/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args))
}
