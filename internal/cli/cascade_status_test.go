package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

func rev32(n int32) *int32 { return &n }

// cascadeSnapshots are the statuses of a CA cascade as the controller writes them: the trusting
// workloads roll, then two leaves are re-issued one at a time and the third fails.
func cascadeSnapshots() [][]api.CertRollout {
	ro := api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca-3f2a9c", CreationTimestamp: metav1.Time{Time: t0}},
		Spec: api.CertRolloutSpec{
			Trigger: api.RolloutTrigger{Type: api.TriggerCARotated, Message: "Issuer ca rotated its CA certificate"},
			Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}, CAFingerprint: strings.Repeat("3f2a9c", 10) + "0a1b", MaxConcurrent: 1},
		},
	}
	trust := func(front api.TrustState) []api.TrustingWorkload {
		return []api.TrustingWorkload{
			{Kind: "Deployment", Namespace: "edge", Name: "proxy", State: api.TrustNotWaitedFor, Message: "NotEnabled: certrollout.io/enabled is not \"true\""},
			{Kind: "Deployment", Namespace: "shop", Name: "front", State: front},
		}
	}
	leaf := func(name string, state api.LeafState, prev, cur int32, start, end time.Duration, msg string) api.LeafStatus {
		l := api.LeafStatus{Namespace: "shop", Name: name, State: state, Message: msg}
		if state != api.LeafPending {
			l.PreviousRevision, l.StartedAt = rev32(prev), at(start)
		}
		if state == api.LeafIssued {
			l.Revision = rev32(cur)
		}
		if state == api.LeafIssued || state == api.LeafFailed {
			l.FinishedAt = at(end)
		}
		return l
	}
	step := func(st api.CertRolloutStatus) []api.CertRollout {
		r := ro
		r.Status = st
		return []api.CertRollout{r}
	}
	failedMsg := "1 of 3 leaf Certificate(s) failed to re-issue: shop/db"
	return [][]api.CertRollout{
		{ro},
		step(api.CertRolloutStatus{Phase: api.PhaseRefreshingTrust, Progress: "0/3 re-issued", StartTime: at(time.Second), TrustedBy: trust(api.TrustPending),
			Message:      "waiting for 1 trusting workload(s) to roll onto the new CA certificate: Deployment shop/front",
			Certificates: []api.LeafStatus{leaf("api", api.LeafPending, 0, 0, 0, 0, ""), leaf("db", api.LeafPending, 0, 0, 0, 0, ""), leaf("web", api.LeafPending, 0, 0, 0, 0, "")}}),
		step(api.CertRolloutStatus{Phase: api.PhaseReissuing, Progress: "0/3 re-issued", StartTime: at(time.Second), TrustedBy: trust(api.TrustCurrent), Message: "re-issuing: 0/3 re-issued",
			Certificates: []api.LeafStatus{leaf("api", api.LeafIssuing, 4, 0, 12*time.Second, 0, ""), leaf("db", api.LeafPending, 0, 0, 0, 0, ""), leaf("web", api.LeafPending, 0, 0, 0, 0, "")}}),
		step(api.CertRolloutStatus{Phase: api.PhaseReissuing, Progress: "1/3 re-issued", StartTime: at(time.Second), TrustedBy: trust(api.TrustCurrent), Message: "re-issuing: 1/3 re-issued",
			Certificates: []api.LeafStatus{leaf("api", api.LeafIssued, 4, 5, 12*time.Second, 14*time.Second, ""), leaf("db", api.LeafIssuing, 1, 0, 14*time.Second, 0, ""), leaf("web", api.LeafPending, 0, 0, 0, 0, "")}}),
		step(api.CertRolloutStatus{Phase: api.PhaseFailed, Progress: "2/3 re-issued, 1 failed", StartTime: at(time.Second), CompletionTime: at(19 * time.Second), TrustedBy: trust(api.TrustCurrent),
			Message: failedMsg,
			Certificates: []api.LeafStatus{leaf("api", api.LeafIssued, 4, 5, 12*time.Second, 14*time.Second, ""),
				leaf("db", api.LeafFailed, 1, 0, 14*time.Second, 16*time.Second, "cert-manager failed to issue it: the issuer refused the request"),
				leaf("web", api.LeafIssued, 2, 3, 16*time.Second, 19*time.Second, "")},
			Conditions: []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: "LeavesFailed", Message: failedMsg, LastTransitionTime: *at(19 * time.Second)}}}),
	}
}

func TestStatusShowsACascadesTrustingWorkloadsAndLeaves(t *testing.T) {
	snaps := cascadeSnapshots()
	running, done := snaps[3][0], snaps[len(snaps)-1][0]
	now := t0.Add(time.Minute)
	for name, print := range map[string]func(*bytes.Buffer) error{
		"describe-cascade":         func(b *bytes.Buffer) error { return describeRollout(b, &done, now) },
		"describe-cascade-running": func(b *bytes.Buffer) error { return describeRollout(b, &running, t0.Add(15*time.Second)) },
		"json-cascade": func(b *bytes.Buffer) error {
			o := &StatusOptions{Now: func() time.Time { return now }, OutputFlag: OutputFlag{Output: OutputJSON}}
			return o.printDetails(b, []api.CertRollout{done})
		},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := print(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, "status-"+name, b.String())
		})
	}
}
