// Command staticpod-runner runs one node's static pod manifests like the kubelet (package staticpod). The
// local kubeadm-shaped control plane starts one per node as a process of its own, so that a node can be
// stopped or killed on its own and the cluster can outlive `make cluster-up`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/klog/v2/textlogger"

	"github.com/certrollout/certrollout/internal/staticpod"
)

// commandFlag collects repeated --command name=path flags.
type commandFlag map[string]string

func (c commandFlag) String() string { return fmt.Sprint(map[string]string(c)) }

func (c commandFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want name=path, got %q", v)
	}
	c[name] = path
	return nil
}

func main() {
	cfg := staticpod.Config{Commands: map[string]string{}}
	flag.StringVar(&cfg.NodeName, "node-name", "", "Node name.")
	flag.StringVar(&cfg.NodeIP, "node-ip", "", "Node address (127.0.0.N).")
	flag.StringVar(&cfg.HostRoot, "host-root", "", "The node's root folder; host paths are under it.")
	flag.StringVar(&cfg.ManifestDir, "manifests", "/etc/kubernetes/manifests", "Host path of the static pod manifests.")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "/etc/kubernetes/kubelet.conf", "Host path of the kubelet's kubeconfig.")
	flag.StringVar(&cfg.LogDir, "log-dir", "", "Folder for the static pods' logs (a real path).")
	flag.IntVar(&cfg.KubeletPort, "kubelet-port", 0, "Kubelet TLS port on the node address (0: none).")
	flag.StringVar(&cfg.KubeletVersion, "kubelet-version", "", "Version reported in the Node's nodeInfo.")
	flag.Var(commandFlag(cfg.Commands), "command", "name=path: run this binary for containers whose command is name (repeatable).")
	verbosity := flag.Int("v", 0, "Log verbosity.")
	flag.Parse()
	cfg.Log = textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(*verbosity)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := staticpod.Run(ctx, cfg); err != nil {
		cfg.Log.Error(err, "Static pod runner failed")
		os.Exit(1)
	}
}
