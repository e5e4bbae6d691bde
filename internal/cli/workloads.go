package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/kinds"
)

// WorkloadArg is a KIND/NAME argument, with the kind as certrollout names it (Deployment, StatefulSet,
// DaemonSet, CronJob, Pod). It is the one parser of workload arguments: plan takes any kind, restart
// keeps those a CertRollout can restart (parseRestartable).
type WorkloadArg struct {
	Kind, Name string
}

// Reference is the API's reference to the workload.
func (w WorkloadArg) Reference() api.WorkloadReference {
	return api.WorkloadReference{Kind: w.Kind, Name: w.Name}
}

func (w WorkloadArg) String() string { return w.Reference().Key() }

// ParseWorkloadArg reads "deployment/web", "deploy/web", "sts/db", "Deployment/web", and the forms with
// a group kubectl also accepts ("deployments.apps/web", "deployments.v1.apps/web", "cronjobs.batch/x").
// The names and aliases are the kinds table's (package kinds), as the controller knows them.
func ParseWorkloadArg(s string) (WorkloadArg, error) {
	k, name, err := parseKindName(s)
	if err != nil {
		return WorkloadArg{}, err
	}
	return WorkloadArg{Kind: k.Name, Name: name}, nil
}

func parseKindName(s string) (kinds.Kind, string, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return kinds.Kind{}, "", fmt.Errorf("%q is not KIND/NAME (for example deployment/web, sts/db, ds/agent)", s)
	}
	resource := strings.ToLower(kind)
	for _, group := range []string{".apps", ".batch", ".core", ".v1"} {
		resource = strings.TrimSuffix(resource, group)
	}
	k, known := kinds.Named(resource)
	if !known {
		return kinds.Kind{}, "", fmt.Errorf("%q: unknown kind %q; certrollout knows %s", s, kind, strings.Join(kinds.Names(), ", "))
	}
	return k, name, nil
}

// parseRestartable reads a KIND/NAME argument (ParseWorkloadArg) and keeps the kinds a CertRollout can
// restart (the kinds table's Orchestrated ones).
func parseRestartable(arg string) (api.WorkloadReference, error) {
	k, name, err := parseKindName(arg)
	if err != nil {
		return api.WorkloadReference{}, err
	}
	ref := api.WorkloadReference{Kind: k.Name, Name: name}
	if !k.Orchestrated {
		return api.WorkloadReference{}, fmt.Errorf("cannot restart %s: certrollout restarts Deployments, StatefulSets and DaemonSets (a CronJob's next Jobs read the Secret afresh; delete a bare Pod to restart it)", ref.Key())
	}
	return ref, nil
}

// workloadKey is api.WorkloadReference.Key for the status types that carry a kind and a name of their
// own (targets, quiesced and trusting workloads, notes): one spelling of "Deployment/web" everywhere.
func workloadKey(kind, name string) string {
	return api.WorkloadReference{Kind: kind, Name: name}.Key()
}

// completeWorkloads completes KIND/NAME arguments from the cluster: kinds first, then names of that kind.
func completeWorkloads(k *KubeFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		kind, prefix, ok := strings.Cut(toComplete, "/")
		if !ok {
			var out []string
			for _, n := range kinds.Names() {
				out = append(out, n+"/")
			}
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		kd, _, err := parseKindName(kind + "/x")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, directive := completeNames(k, kd.NewList)(cmd, nil, prefix)
		for i := range names {
			names[i] = kind + "/" + names[i]
		}
		return names, directive
	}
}

// completeNames completes the names of the objects newList lists in the namespace of k's flags.
func completeNames(k *KubeFlags, newList func() client.ObjectList) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if k.Complete() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := k.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(k.ResolvedNamespace())); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		_ = forEachObject(list, func(o client.Object) {
			if strings.HasPrefix(o.GetName(), prefix) {
				out = append(out, o.GetName())
			}
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// forEachObject calls fn for each item of a typed list.
func forEachObject(list client.ObjectList, fn func(client.Object)) error {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return err
	}
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			fn(o)
		}
	}
	return nil
}

// refsString is "Deployment/web, StatefulSet/db".
func refsString(refs []api.WorkloadReference) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.Key()
	}
	return strings.Join(s, ", ")
}
