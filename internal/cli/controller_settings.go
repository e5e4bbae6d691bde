package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/controller"
)

// ControllerFlags are the controller's settings a command decides with. By default they are the ones the
// controller publishes (ConfigMap certrollout-settings, found with controller.FindSettings), so a
// command decides as the controller does without being told its flags; a flag given on the command line
// wins over the published value, and is named in what the command says it assumed.
type ControllerFlags struct {
	// Options start as the controller's defaults; flags write into them.
	Options controller.Options
	// Namespace is --controller-namespace: where the controller publishes its settings ("" to search).
	Namespace string
	// Assumed says what Resolve found, for the report.
	Assumed AssumedSettings

	flags *cobra.Command
	// names are the flags registered, each overriding the published value when given.
	names []string
}

// AssumedSettings say which controller configuration a command's decisions assume.
type AssumedSettings struct {
	// Source is where the settings came from: "ConfigMap <ns>/certrollout-settings", or "defaults".
	Source string `json:"source"`
	// Overridden are the flags given on the command line, which win over the source.
	Overridden []string `json:"overridden,omitempty"`
	// Settings are the settings decided with.
	Settings controller.Settings `json:"settings"`
}

// addControllerFlags registers --controller-namespace and the given decision flags ("auto",
// "min-restart-interval", "settle-period", "max-restarts-per-day", "cluster-resource-namespace").
func (c *ControllerFlags) addControllerFlags(cmd *cobra.Command, names ...string) {
	c.Options = controller.DefaultOptions()
	c.flags, c.names = cmd, names
	f := cmd.Flags()
	f.StringVar(&c.Namespace, "controller-namespace", "", "Namespace where the controller publishes its settings (ConfigMap "+controller.SettingsConfigMap+
		"); default: found by its label, else "+controller.DefaultControllerNamespace+". Decisions follow those settings, except for the decision flags given on this command line.")
	for _, n := range names {
		switch n {
		case "auto":
			f.BoolVar(&c.Options.Auto, n, false, "Decide as a controller started with --auto (every workload eligible unless opted out); when not given, the controller's published setting.")
		case "min-restart-interval":
			f.DurationVar(&c.Options.MinRestartInterval, n, c.Options.MinRestartInterval, "The controller's --min-restart-interval; when not given, its published setting, else this default.")
		case "settle-period":
			f.DurationVar(&c.Options.SettlePeriod, n, c.Options.SettlePeriod, "The controller's --settle-period; when not given, its published setting, else this default.")
		case "max-restarts-per-day":
			f.IntVar(&c.Options.MaxRestartsPerDay, n, c.Options.MaxRestartsPerDay, "The controller's --max-restarts-per-day (0: no limit); when not given, its published setting, else this default.")
		case "cluster-resource-namespace":
			addClusterResourceNamespaceFlag(cmd, &c.Options.ClusterResourceNamespace)
		default:
			panic("unknown controller flag " + n)
		}
	}
}

// Resolve reads the published settings through r and applies them under the flags given on the command
// line. target is the namespace the command looks at ("" for all). Settings that cannot be found leave
// the defaults, and Assumed says so.
func (c *ControllerFlags) Resolve(ctx context.Context, r client.Reader, target string) error {
	var given []string
	for _, n := range c.names {
		if c.flags.Flags().Changed(n) {
			given = append(given, "--"+n)
		}
	}
	cmdline := c.Options
	published, found, err := controller.FindSettings(ctx, r, c.Namespace, target)
	if err != nil {
		return err
	}
	c.Assumed = AssumedSettings{Source: "defaults", Overridden: given}
	if found {
		c.Options = published.Apply(c.Options)
		c.Assumed.Source = "ConfigMap " + published.Namespace + "/" + controller.SettingsConfigMap
		for _, n := range given {
			c.Options = overrideFlag(c.Options, cmdline, strings.TrimPrefix(n, "--"))
		}
	}
	c.Assumed.Settings = controller.SettingsOf(c.Options)
	c.Assumed.Settings.Namespaces = c.Options.ModelledNamespaces
	c.Assumed.Settings.Version = ""
	if found {
		c.Assumed.Settings.Version = published.Version
	}
	return nil
}

// overrideFlag copies one decision setting from the command line into o.
func overrideFlag(o, cmdline controller.Options, name string) controller.Options {
	switch name {
	case "auto":
		o.Auto = cmdline.Auto
	case "min-restart-interval":
		o.MinRestartInterval = cmdline.MinRestartInterval
	case "settle-period":
		o.SettlePeriod = cmdline.SettlePeriod
	case "max-restarts-per-day":
		o.MaxRestartsPerDay = cmdline.MaxRestartsPerDay
	case "cluster-resource-namespace":
		o.ClusterResourceNamespace = cmdline.ClusterResourceNamespace
	}
	return o
}

// describe is one line for people: which settings the decisions assume.
func (a AssumedSettings) describe() string {
	var b strings.Builder
	if a.Source == "defaults" {
		fmt.Fprintf(&b, "Assuming the controller's defaults (no published settings found; pass --controller-namespace if it runs elsewhere): %s", a.Settings)
	} else {
		fmt.Fprintf(&b, "Deciding as the controller does (%s", a.Source)
		if a.Settings.Version != "" {
			fmt.Fprintf(&b, ", version %s", a.Settings.Version)
		}
		fmt.Fprintf(&b, "): %s", a.Settings)
	}
	if len(a.Overridden) > 0 {
		fmt.Fprintf(&b, "; overridden here: %s", strings.Join(a.Overridden, ", "))
	}
	return b.String()
}

// note prints describe to w (a command's stderr), for table and describe output.
func (a AssumedSettings) note(w io.Writer) {
	fmt.Fprintln(w, a.describe())
}
