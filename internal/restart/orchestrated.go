package restart

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/decide"
)

// Quiesce records obj's replica count on obj and scales it to zero, in one patch that fails if obj
// changed since it was read: the count recorded is exactly the one that was scaled away.
func Quiesce(ctx context.Context, c client.Client, obj client.Object, rollout string, replicas int32) error {
	body := map[string]any{
		"metadata": map[string]any{
			"resourceVersion": obj.GetResourceVersion(),
			"annotations": map[string]string{
				api.AnnotationQuiescedBy:       rollout,
				api.AnnotationQuiescedReplicas: strconv.Itoa(int(replicas)),
			},
		},
		"spec": map[string]any{"replicas": 0},
	}
	return mergePatch(ctx, c, obj, body, "scaling to zero")
}

// Restore sets obj's replicas back to the recorded count and removes the quiesce annotations, in one
// patch that fails with a conflict if obj changed since it was read: the caller decided from that
// version (notably its replicas, to say what the restore overrides) and must decide again. A nil count
// only removes the annotations: nothing recorded one, and the workload keeps the replicas it has.
func Restore(ctx context.Context, c client.Client, obj client.Object, replicas *int32) error {
	body := map[string]any{
		"metadata": map[string]any{
			"resourceVersion": obj.GetResourceVersion(),
			"annotations":     map[string]any{api.AnnotationQuiescedBy: nil, api.AnnotationQuiescedReplicas: nil},
		},
	}
	if replicas != nil {
		body["spec"] = map[string]any{"replicas": *replicas}
	}
	return mergePatch(ctx, c, obj, body, "restoring replicas of")
}

// QuiescedReplicas reads the recorded replica count; nil when there is none or it is malformed.
func QuiescedReplicas(obj client.Object) *int32 {
	v, ok := obj.GetAnnotations()[api.AnnotationQuiescedReplicas]
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return nil
	}
	r := int32(n)
	return &r
}

// Rollout restarts obj for a CertRollout: the pod template gets the rollout's name and, when obj uses
// certificates, their restart value; the ledger records them. Writing it again changes nothing, so a
// rollout resumed after a crash never restarts a target twice. The patch fails with a conflict if obj
// changed since it was read: the rollout decided from that version (notably its ledger, which tells
// whether someone else already restarted it onto these certificates), and must decide again.
func Rollout(ctx context.Context, c client.Client, obj client.Object, rollout, value string, notAfter, now time.Time) error {
	templateAnnotations := map[string]string{api.AnnotationRollout: rollout}
	annotations := map[string]string{
		api.AnnotationRestartedAt:    now.UTC().Format(time.RFC3339),
		api.AnnotationRestartHistory: decide.RestartHistory(obj.GetAnnotations(), now),
	}
	if value != "" {
		templateAnnotations[api.AnnotationRestartHash] = value
		annotations[api.AnnotationCertificateHash] = value
		if !notAfter.IsZero() {
			annotations[api.AnnotationCertificateNotAfter] = notAfter.UTC().Format(time.RFC3339)
		}
		carryPrevious(annotations, obj, value)
	}
	body := map[string]any{
		"metadata": map[string]any{"resourceVersion": obj.GetResourceVersion(), "annotations": annotations},
		"spec":     map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": templateAnnotations}}},
	}
	return mergePatch(ctx, c, obj, body, "restarting")
}

// RolledBy is the rollout that last restarted obj through its pod template.
func RolledBy(obj client.Object) string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Annotations[api.AnnotationRollout]
	case *appsv1.StatefulSet:
		return o.Spec.Template.Annotations[api.AnnotationRollout]
	case *appsv1.DaemonSet:
		return o.Spec.Template.Annotations[api.AnnotationRollout]
	}
	return ""
}

func mergePatch(ctx context.Context, c client.Client, obj client.Object, body map[string]any, doing string) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("%s %s/%s: %w", doing, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}
