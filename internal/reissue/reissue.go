// Package reissue asks cert-manager to issue a Certificate again, as cmctl renew does: it sets the
// Certificate's Issuing condition to True. The CLI (certrollout renew) and the controller (the CA
// cascade) share it, so both write the condition the same careful way.
package reissue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/certmanager"
)

// ReasonFailed is the reason cert-manager gives Issuing=False when an issuance failed; it backs off (an
// hour at first) before it tries again.
const ReasonFailed = "Failed"

// Issuing reports whether crt's Issuing condition is True: an issuance is under way, whoever asked.
func Issuing(crt *certmanager.Certificate) bool {
	c := crt.Condition(certmanager.ConditionIssuing)
	return c != nil && c.Status == string(metav1.ConditionTrue)
}

// Failed reports cert-manager's sign of a failed issuance, Issuing=False with reason Failed, and its
// message.
func Failed(crt *certmanager.Certificate) (string, bool) {
	c := crt.Condition(certmanager.ConditionIssuing)
	if c != nil && c.Status == string(metav1.ConditionFalse) && c.Reason == ReasonFailed {
		return c.Message, true
	}
	return "", false
}

// Trigger sets Issuing=True with reason and message on crt's status. It is a JSON patch that touches
// only that one condition (replacing an Issuing=False left by a failed issuance, or adding it), under the
// resourceVersion it was computed from: cert-manager writes the other conditions concurrently, and
// neither a merge patch (which replaces the whole list) nor an update of our reduced Certificate type
// (which would drop fields it does not know) may clobber them. A conflict re-reads and tries again; when
// the re-read shows Issuing=True, someone else triggered it meanwhile and that issuance serves (crt then
// holds what was read). crt must have been read from the API server or a cache.
func Trigger(ctx context.Context, c client.Client, crt *certmanager.Certificate, reason, message string, now time.Time) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cond := map[string]any{
			"type": certmanager.ConditionIssuing, "status": string(metav1.ConditionTrue), "reason": reason,
			"message": message, "lastTransitionTime": now.UTC().Format(time.RFC3339), "observedGeneration": crt.Generation,
		}
		ops := []map[string]any{{"op": "replace", "path": "/metadata/resourceVersion", "value": crt.ResourceVersion}}
		idx := -1
		for i, cnd := range crt.Status.Conditions {
			if cnd.Type == certmanager.ConditionIssuing {
				idx = i
			}
		}
		var patch client.Patch
		if len(crt.Status.Conditions) == 0 {
			// No conditions yet (cert-manager has not looked at it): there is no list to append to, and
			// status itself may be absent. A merge patch creates both and, naming only conditions,
			// leaves any other status field alone.
			body, err := json.Marshal(map[string]any{
				"metadata": map[string]any{"resourceVersion": crt.ResourceVersion},
				"status":   map[string]any{"conditions": []any{cond}},
			})
			if err != nil {
				return err
			}
			patch = client.RawPatch(types.MergePatchType, body)
		} else {
			if idx >= 0 {
				ops = append(ops, map[string]any{"op": "replace", "path": fmt.Sprintf("/status/conditions/%d", idx), "value": cond})
			} else {
				ops = append(ops, map[string]any{"op": "add", "path": "/status/conditions/-", "value": cond})
			}
			body, err := json.Marshal(ops)
			if err != nil {
				return err
			}
			patch = client.RawPatch(types.JSONPatchType, body)
		}
		err := c.Status().Patch(ctx, crt, patch)
		if apierrors.IsConflict(err) {
			if gerr := c.Get(ctx, client.ObjectKeyFromObject(crt), crt); gerr != nil {
				return gerr
			}
			if Issuing(crt) {
				return nil // someone else triggered it meanwhile: that issuance is ours too
			}
		}
		return err
	})
}
