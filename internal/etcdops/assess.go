package etcdops

import (
	"fmt"
	"slices"
	"strings"
)

// assess decides from what was gathered whether the cluster is degraded, and fills in each member.
// Every rule adds one sentence naming the member; any sentence makes the cluster degraded:
//   - a member in the list without client URLs has not started (a learner being added, or a member
//     added with `member add` whose etcd never came up);
//   - a client URL that did not answer the health read, its status or the alarm list;
//   - a member that answered as another member, or whose status reports errors;
//   - an active alarm (NOSPACE, CORRUPT) on any member;
//   - a member that knows no leader, members that disagree about the leader, or a leader that is not
//     in the member list.
func assess(probes []probe) Health {
	var h Health
	alarms := allAlarms(probes)
	known := map[uint64]string{}
	for _, p := range probes {
		known[p.member.id] = label(p.member)
	}
	for _, p := range probes {
		m, reasons := assessMember(p, alarms)
		h.Members = append(h.Members, m)
		h.Reasons = append(h.Reasons, reasons...)
	}
	for _, a := range alarms {
		if _, ok := known[a.memberID]; !ok {
			h.Reasons = append(h.Reasons, fmt.Sprintf("etcd reports an active %s alarm for member %s, which is not in the member list", a.kind, memberID(a.memberID)))
		}
	}
	leaderID, reasons := assessLeader(probes, known)
	h.Reasons = append(h.Reasons, reasons...)
	if leaderID != 0 {
		for i, p := range probes {
			if p.member.id == leaderID {
				h.Members[i].Leader = true
				h.Leader = p.member.name
			}
		}
	}
	h.Degraded = len(h.Reasons) > 0
	return h
}

func assessMember(p probe, alarms []alarm) (Member, []string) {
	mi := p.member
	m := Member{
		ID: memberID(mi.id), Name: mi.name, PeerURLs: mi.peerURLs, ClientURLs: mi.clientURLs, Learner: mi.learner,
		Healthy: len(mi.clientURLs) > 0,
	}
	who := describe(mi)
	var reasons []string
	if len(mi.clientURLs) == 0 {
		kind := "member"
		if mi.learner {
			kind = "learner"
		}
		m.Error = "not started"
		reasons = append(reasons, fmt.Sprintf("etcd %s %s is in the member list but has not started", kind, who))
	}
	for _, u := range p.urls {
		if u.err != nil {
			m.Healthy = false
			if m.Error == "" {
				m.Error = u.err.Error()
			}
			reasons = append(reasons, fmt.Sprintf("etcd member %s (%s) did not answer: %v", label(mi), u.url, u.err))
			continue
		}
		if u.status.memberID != mi.id {
			reasons = append(reasons, fmt.Sprintf("etcd member %s (%s) answered as member %s", label(mi), u.url, memberID(u.status.memberID)))
		}
		if len(u.status.errors) > 0 {
			reasons = append(reasons, fmt.Sprintf("etcd member %s (%s) reports errors: %s", label(mi), u.url, strings.Join(u.status.errors, "; ")))
		}
		if m.Version == "" {
			s := u.status
			m.Version, m.DBSize, m.Revision, m.RaftTerm, m.RaftIndex = s.version, s.dbSize, s.revision, s.raftTerm, s.raftIndex
		}
	}
	for _, a := range alarms {
		if a.memberID == mi.id {
			m.Alarms = append(m.Alarms, a.kind)
			reasons = append(reasons, fmt.Sprintf("etcd member %s has an active %s alarm", who, a.kind))
		}
	}
	return m, reasons
}

// assessLeader returns the leader every answering member follows, or 0 with the reasons there is none.
func assessLeader(probes []probe, known map[uint64]string) (uint64, []string) {
	var reasons []string
	followers := map[uint64][]string{} // leader id → members following it
	var leaders []uint64
	for _, p := range probes {
		for _, u := range p.urls {
			if u.err != nil {
				continue
			}
			if u.status.leaderID == 0 {
				reasons = append(reasons, fmt.Sprintf("etcd member %s (%s) knows no leader", label(p.member), u.url))
				continue
			}
			if _, ok := followers[u.status.leaderID]; !ok {
				leaders = append(leaders, u.status.leaderID)
			}
			if !slices.Contains(followers[u.status.leaderID], label(p.member)) {
				followers[u.status.leaderID] = append(followers[u.status.leaderID], label(p.member))
			}
		}
	}
	switch {
	case len(leaders) == 0 && len(reasons) == 0:
		return 0, []string{"no etcd member answered, so there is no known leader"}
	case len(leaders) > 1:
		var parts []string
		for _, id := range leaders {
			parts = append(parts, fmt.Sprintf("%s follow %s", strings.Join(followers[id], " and "), leaderLabel(id, known)))
		}
		return 0, append(reasons, "etcd members disagree about the leader: "+strings.Join(parts, ", "))
	case len(leaders) == 1:
		if _, ok := known[leaders[0]]; !ok {
			return 0, append(reasons, fmt.Sprintf("etcd members follow leader %s, which is not in the member list", memberID(leaders[0])))
		}
		return leaders[0], reasons
	}
	return 0, reasons
}

// allAlarms is the union of the alarm lists every member returned (each member returns the whole
// cluster's, so an unreachable member's alarm is still seen through the others).
func allAlarms(probes []probe) []alarm {
	var out []alarm
	for _, p := range probes {
		for _, u := range p.urls {
			for _, a := range u.alarms {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// label names a member by its name, or by its id while it has none (not started).
func label(m memberInfo) string {
	if m.name != "" {
		return m.name
	}
	return memberID(m.id)
}

// describe is the label with the member's first client URL, or peer URL when it has not started.
func describe(m memberInfo) string {
	switch {
	case len(m.clientURLs) > 0:
		return fmt.Sprintf("%s (%s)", label(m), m.clientURLs[0])
	case len(m.peerURLs) > 0:
		return fmt.Sprintf("%s (peer %s)", label(m), m.peerURLs[0])
	}
	return label(m)
}

func leaderLabel(id uint64, known map[uint64]string) string {
	if name, ok := known[id]; ok {
		return name
	}
	return memberID(id)
}
