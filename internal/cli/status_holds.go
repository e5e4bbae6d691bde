package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// sortHolds orders holds by namespace, then name.
func sortHolds(hs []api.MaintenanceHold) {
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].Namespace != hs[j].Namespace {
			return hs[i].Namespace < hs[j].Namespace
		}
		return hs[i].Name < hs[j].Name
	})
}

// holdStatus is a hold as `status -o json|yaml` reports it.
func holdStatus(h *api.MaintenanceHold, _ time.Time) HoldStatus {
	out := HoldStatus{Namespace: h.Namespace, Name: h.Name, Phase: string(h.Status.Phase), Message: h.Status.Message,
		Ready: apimeta.IsStatusConditionTrue(h.Status.Conditions, api.ConditionReady), Workloads: []HeldWorkload{},
		HeldAt: timePtr(h.Status.HeldAt), ReleasedAt: timePtr(h.Status.ReleasedAt), ExpiresAt: timePtr(h.Spec.ExpiresAt)}
	for _, w := range h.Status.Workloads {
		out.Workloads = append(out.Workloads, HeldWorkload{Kind: w.Kind, Name: w.Name, State: string(w.State),
			OriginalReplicas: w.OriginalReplicas, Enforced: w.Enforced, Message: w.Message})
	}
	return out
}

// holdTableView is the holds' table under `certrollout status`: HOLD PHASE WORKLOADS EXPIRES AGE
// (NAMESPACE first under -A; wide adds MESSAGE).
type holdTableView struct {
	headers []string
	rows    [][]string
}

func newHoldTableView(hs []api.MaintenanceHold, now time.Time, allNamespaces, wide bool) holdTableView {
	v := holdTableView{headers: []string{"HOLD", "PHASE", "WORKLOADS", "EXPIRES", "AGE"}}
	if allNamespaces {
		v.headers = append([]string{"NAMESPACE"}, v.headers...)
	}
	if wide {
		v.headers = append(v.headers, "MESSAGE")
	}
	for i := range hs {
		h := &hs[i]
		expires := "-"
		if e := h.Spec.ExpiresAt; e != nil && h.Status.Phase != api.HoldPhaseReleased {
			expires = "in " + age(now, e.Time)
			if !now.Before(e.Time) {
				expires = "now"
			}
		}
		row := []string{h.Name, orDash(string(h.Status.Phase)), heldColumn(h), expires, age(h.CreationTimestamp.Time, now)}
		if allNamespaces {
			row = append([]string{h.Namespace}, row...)
		}
		if wide {
			row = append(row, h.Status.Message)
		}
		v.rows = append(v.rows, row)
	}
	return v
}

// heldColumn reads "StatefulSet/provider (3→0)" per workload, with the count it gets back.
func heldColumn(h *api.MaintenanceHold) string {
	var parts []string
	for _, w := range h.Status.Workloads {
		p := workloadKey(w.Kind, w.Name)
		if w.OriginalReplicas != nil {
			p += fmt.Sprintf(" (%d→0)", *w.OriginalReplicas)
			if w.State == api.HeldRestored {
				p = workloadKey(w.Kind, w.Name) + fmt.Sprintf(" (restored %d)", *w.OriginalReplicas)
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return describeTargets(h.Spec.Targets)
	}
	return strings.Join(parts, ", ")
}

func (v holdTableView) render(w io.Writer) error {
	t := newTable(w, v.headers...)
	for _, r := range v.rows {
		t.row(r...)
	}
	return t.flush()
}
