// Package restart is the only code that changes workloads. It turns a policy decision into one write:
// a merge patch that records the ledger and, for a restart, sets the certificate-derived restart value
// on the pod template (never a timestamp, so writing it twice changes nothing), or the deletion of a bare
// pod that allows it.
package restart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/decide"
)

// Record writes the ledger: the workload's pods run on d.Set.
func Record(ctx context.Context, c client.Client, obj client.Object, d decide.Decision, now time.Time) error {
	a := ledger(d, time.Time{})
	switch d.Reason {
	case api.ReasonReloadedByItself:
		// The probes that found the pods serving the set are its verification.
		a[api.AnnotationVerification] = decide.Verification{Hash: d.Set.Hash, Verified: true, How: decide.HowReloadedByItself, Message: d.Message, At: now}.Annotation()
	case api.ReasonReloaded:
		a[api.AnnotationVerification] = decide.Verification{Hash: d.Set.Hash, Verified: true, How: decide.HowReloaded, Message: d.Message, At: now}.Annotation()
	}
	return patch(ctx, c, obj, a, nil)
}

// Annotate writes annotations on the workload (a merge patch: others are kept).
func Annotate(ctx context.Context, c client.Client, obj client.Object, annotations map[string]string) error {
	return patch(ctx, c, obj, annotations, nil)
}

// Restart rolls the workload's pods onto d.Set: for Deployments, StatefulSets and DaemonSets by setting
// the restart value on the pod template (with the ledger, in the same patch); a bare pod is deleted.
func Restart(ctx context.Context, c client.Client, kind string, obj client.Object, d decide.Decision, now time.Time) error {
	switch kind {
	case api.KindDeployment, api.KindStatefulSet, api.KindDaemonSet:
		template := map[string]any{"metadata": map[string]any{"annotations": map[string]string{api.AnnotationRestartHash: d.Set.Hash}}}
		a := ledger(d, now)
		carryPrevious(a, obj, d.Set.Hash)
		if d.Verify {
			a[api.AnnotationVerification] = decide.Verification{Hash: d.Set.Hash, How: decide.HowRestarted, Pending: true,
				Message: "restarted; its new pods are probed once they run", At: now}.Annotation()
		}
		a[api.AnnotationRestartHistory] = decide.RestartHistory(obj.GetAnnotations(), now)
		return patch(ctx, c, obj, a, map[string]any{"template": template})
	case api.KindPod:
		uid := obj.GetUID()
		if err := c.Delete(ctx, obj, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
			return fmt.Errorf("deleting Pod %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
		}
		return nil
	default:
		return fmt.Errorf("cannot restart a %s", kind)
	}
}

func ledger(d decide.Decision, restartedAt time.Time) map[string]string {
	a := map[string]string{api.AnnotationCertificateHash: d.Set.Hash}
	if !d.Set.NotAfter.IsZero() {
		a[api.AnnotationCertificateNotAfter] = d.Set.NotAfter.UTC().Format(time.RFC3339)
	}
	if !restartedAt.IsZero() {
		a[api.AnnotationRestartedAt] = restartedAt.UTC().Format(time.RFC3339)
	}
	return a
}

// carryPrevious keeps, in a restart's annotations, the expiry of the set the pods ran on until now
// (AnnotationPreviousNotAfter): the old pods a rolling restart has not replaced yet still run on it, and
// the running-certificate metric reports it until they are gone. A restart onto the set the ledger already
// records keeps the previous value it has.
func carryPrevious(annotations map[string]string, obj client.Object, hash string) {
	old := obj.GetAnnotations()
	if old[api.AnnotationCertificateHash] == "" || old[api.AnnotationCertificateHash] == hash {
		return
	}
	if v := old[api.AnnotationCertificateNotAfter]; v != "" {
		annotations[api.AnnotationPreviousNotAfter] = v
	}
}

func patch(ctx context.Context, c client.Client, obj client.Object, annotations map[string]string, spec map[string]any) error {
	body := map[string]any{"metadata": map[string]any{"annotations": annotations}}
	if spec != nil {
		body["spec"] = spec
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("patching %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}
