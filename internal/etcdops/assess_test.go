package etcdops

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// probeOpt shapes a gathered probe for the table below.
type probeOpt func(*probe)

func gathered(id uint64, name string, opts ...probeOpt) probe {
	url := "https://127.0.0." + name[len(name)-1:] + ":2379"
	p := probe{
		member: memberInfo{id: id, name: name, clientURLs: []string{url}, peerURLs: []string{"https://127.0.0.1:2380"}},
		urls:   []urlProbe{{url: url, status: &status{memberID: id, leaderID: 1, version: "3.6.16", revision: 7}}},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func unreachable(err error) probeOpt {
	return func(p *probe) { p.urls[0].status, p.urls[0].err = nil, err }
}

func follows(leader uint64) probeOpt {
	return func(p *probe) { p.urls[0].status.leaderID = leader }
}

func withAlarm(member uint64, kind string) probeOpt {
	return func(p *probe) { p.urls[0].alarms = append(p.urls[0].alarms, alarm{memberID: member, kind: kind}) }
}

func notStarted(learner bool) probeOpt {
	return func(p *probe) {
		p.member.name, p.member.clientURLs, p.member.learner, p.urls = "", nil, learner, nil
	}
}

func TestAssess(t *testing.T) {
	cases := map[string]struct {
		probes   []probe
		degraded bool
		leader   string
		reasons  []string // substrings, one per expected reason, in order
	}{
		"is not degraded when every member answers and follows the same leader": {
			probes: []probe{gathered(1, "cp-1"), gathered(2, "cp-2"), gathered(3, "cp-3")},
			leader: "cp-1",
		},
		"is degraded naming the member and its URL when a member did not answer": {
			probes:   []probe{gathered(1, "cp-1"), gathered(2, "cp-2"), gathered(3, "cp-3", unreachable(context.DeadlineExceeded))},
			degraded: true, leader: "cp-1",
			reasons: []string{"etcd member cp-3 (https://127.0.0.3:2379) did not answer: context deadline exceeded"},
		},
		"is degraded by an alarm, seen through another member when the alarmed one is down": {
			probes: []probe{
				gathered(1, "cp-1", withAlarm(2, "NOSPACE")), gathered(2, "cp-2", unreachable(errors.New("connection refused"))),
				gathered(3, "cp-3", withAlarm(2, "NOSPACE")),
			},
			degraded: true, leader: "cp-1",
			reasons: []string{"cp-2 (https://127.0.0.2:2379) did not answer: connection refused", "etcd member cp-2 (https://127.0.0.2:2379) has an active NOSPACE alarm"},
		},
		"is degraded when members disagree about the leader": {
			probes:   []probe{gathered(1, "cp-1"), gathered(2, "cp-2"), gathered(3, "cp-3", follows(3))},
			degraded: true,
			reasons:  []string{"etcd members disagree about the leader: cp-1 and cp-2 follow cp-1, cp-3 follow cp-3"},
		},
		"is degraded when a member knows no leader": {
			probes:   []probe{gathered(1, "cp-1"), gathered(2, "cp-2", follows(0)), gathered(3, "cp-3")},
			degraded: true, leader: "cp-1",
			reasons: []string{"etcd member cp-2 (https://127.0.0.2:2379) knows no leader"},
		},
		"is degraded by a member added but never started": {
			probes:   []probe{gathered(1, "cp-1"), gathered(2, "cp-2"), gathered(0x3e, "cp-3", notStarted(false))},
			degraded: true, leader: "cp-1",
			reasons: []string{"etcd member 3e (peer https://127.0.0.1:2380) is in the member list but has not started"},
		},
		"is degraded by a learner that has not started": {
			probes:   []probe{gathered(1, "cp-1"), gathered(2, "cp-2"), gathered(0x3e, "cp-3", notStarted(true))},
			degraded: true, leader: "cp-1",
			reasons: []string{"etcd learner 3e (peer https://127.0.0.1:2380) is in the member list but has not started"},
		},
		"is degraded with no leader when no member answered": {
			probes:   []probe{gathered(1, "cp-1", unreachable(context.DeadlineExceeded)), gathered(2, "cp-2", unreachable(context.DeadlineExceeded))},
			degraded: true,
			reasons:  []string{"cp-1", "cp-2", "no etcd member answered, so there is no known leader"},
		},
		"is degraded when members follow a leader not in the member list": {
			probes:   []probe{gathered(1, "cp-1", follows(9)), gathered(2, "cp-2", follows(9))},
			degraded: true,
			reasons:  []string{"etcd members follow leader 9, which is not in the member list"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := assess(tc.probes)
			if h.Degraded != tc.degraded || h.Leader != tc.leader {
				t.Errorf("degraded %v leader %q, want %v %q; reasons %q", h.Degraded, h.Leader, tc.degraded, tc.leader, h.Reasons)
			}
			if len(h.Reasons) != len(tc.reasons) {
				t.Fatalf("reasons %q, want %d matching %q", h.Reasons, len(tc.reasons), tc.reasons)
			}
			for i, want := range tc.reasons {
				if !strings.Contains(h.Reasons[i], want) {
					t.Errorf("reason %d is %q, want it to contain %q", i, h.Reasons[i], want)
				}
			}
			if len(h.Members) != len(tc.probes) {
				t.Fatalf("%d members for %d probes", len(h.Members), len(tc.probes))
			}
			for i, m := range h.Members {
				wantHealthy := tc.probes[i].member.clientURLs != nil && tc.probes[i].urls[0].err == nil
				if m.Healthy != wantHealthy || m.Leader != (m.Name != "" && m.Name == tc.leader) {
					t.Errorf("member %s: healthy %v leader %v", m.Name, m.Healthy, m.Leader)
				}
			}
		})
	}
}
