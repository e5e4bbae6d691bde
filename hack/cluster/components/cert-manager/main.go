// Command cert-manager runs the upstream cert-manager controller for the local test cluster. It wires the
// controller command the same way that release's own main does: exit handler, klog flags, then Execute.
package main

import (
	"flag"

	"github.com/cert-manager/cert-manager/cmd/controller/app"
	"github.com/cert-manager/cert-manager/cmd/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

func main() {
	stop, exit := util.SetupExitHandler(util.GracefulShutdown)
	defer exit()

	logf.InitLogs(flag.CommandLine)
	defer logf.FlushLogs()

	cmd := app.NewCommandStartCertManagerController(stop)
	cmd.Flags().AddGoFlagSet(flag.CommandLine)
	if err := flag.CommandLine.Parse(nil); err != nil {
		panic(err)
	}
	if err := cmd.Execute(); err != nil {
		logf.Log.Error(err, "Controller exited with an error")
		util.SetExitCode(err)
	}
}
