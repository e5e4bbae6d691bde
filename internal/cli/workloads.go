package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/policy"
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

// workloadKinds maps what kubectl accepts for each kind (singular, plural, short name, any case) to it.
var workloadKinds = map[string]string{
	"deployment": policy.KindDeployment, "deployments": policy.KindDeployment, "deploy": policy.KindDeployment,
	"statefulset": policy.KindStatefulSet, "statefulsets": policy.KindStatefulSet, "sts": policy.KindStatefulSet,
	"daemonset": policy.KindDaemonSet, "daemonsets": policy.KindDaemonSet, "ds": policy.KindDaemonSet,
	"cronjob": policy.KindCronJob, "cronjobs": policy.KindCronJob, "cj": policy.KindCronJob,
	"pod": policy.KindPod, "pods": policy.KindPod, "po": policy.KindPod,
}

// ParseWorkloadArg reads "deployment/web", "deploy/web", "sts/db", "Deployment/web", and the forms with
// a group kubectl also accepts ("deployments.apps/web", "deployments.v1.apps/web", "cronjobs.batch/x").
func ParseWorkloadArg(s string) (WorkloadArg, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return WorkloadArg{}, fmt.Errorf("%q is not KIND/NAME (for example deployment/web, sts/db, ds/agent)", s)
	}
	resource := strings.ToLower(kind)
	for _, group := range []string{".apps", ".batch", ".core", ".v1"} {
		resource = strings.TrimSuffix(resource, group)
	}
	k, known := workloadKinds[resource]
	if !known {
		return WorkloadArg{}, fmt.Errorf("%q: unknown kind %q; certrollout knows deployment, statefulset, daemonset, cronjob and pod", s, kind)
	}
	return WorkloadArg{Kind: k, Name: name}, nil
}

// parseRestartable reads a KIND/NAME argument (ParseWorkloadArg) and keeps the kinds a CertRollout can
// restart.
func parseRestartable(arg string) (api.WorkloadReference, error) {
	w, err := ParseWorkloadArg(arg)
	if err != nil {
		return api.WorkloadReference{}, err
	}
	switch w.Kind {
	case policy.KindDeployment, policy.KindStatefulSet, policy.KindDaemonSet:
		return w.Reference(), nil
	}
	return api.WorkloadReference{}, fmt.Errorf("cannot restart %s: certrollout restarts Deployments, StatefulSets and DaemonSets (a CronJob's next Jobs read the Secret afresh; delete a bare Pod to restart it)", w)
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
			return []string{"deployment/", "statefulset/", "daemonset/", "cronjob/", "pod/"}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		w, err := ParseWorkloadArg(kind + "/x")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		lists := map[string]func() client.ObjectList{
			policy.KindDeployment:  func() client.ObjectList { return &appsv1.DeploymentList{} },
			policy.KindStatefulSet: func() client.ObjectList { return &appsv1.StatefulSetList{} },
			policy.KindDaemonSet:   func() client.ObjectList { return &appsv1.DaemonSetList{} },
			policy.KindCronJob:     func() client.ObjectList { return &batchv1.CronJobList{} },
			policy.KindPod:         func() client.ObjectList { return &corev1.PodList{} },
		}
		names, directive := completeNames(k, lists[w.Kind])(cmd, nil, prefix)
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
