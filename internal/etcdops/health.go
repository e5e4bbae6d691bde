package etcdops

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one etcd member as the member list, its health read and its status describe it.
type Member struct {
	ID         string // hex, as etcdctl prints it
	Name       string // empty for a member added but not started
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
	// Healthy means every client URL answered a linearizable read (a proposal went through consensus)
	// and its status.
	Healthy   bool
	Leader    bool
	Version   string
	DBSize    int64
	Revision  int64
	RaftTerm  uint64
	RaftIndex uint64
	// Alarms active on this member (NOSPACE, CORRUPT).
	Alarms []string
	// Error is the first thing that failed when probing the member.
	Error string
}

// Health is the cluster as seen from every member.
type Health struct {
	Members []Member // in member-list order
	Leader  string   // the leader's name, when every healthy member agrees on one
	// Degraded means a rollout must not start; Reasons say why, one sentence each naming the member.
	Degraded bool
	Reasons  []string
}

// CheckHealth lists the members through the first endpoint that answers, then probes every member's client URLs
// concurrently (a linearizable read of key "health" as `etcdctl endpoint health` does, the endpoint's
// status and the cluster's alarms), each request bounded by cfg.RequestTimeout, and decides whether the
// cluster is degraded. An error means the member list could not be read at all (a degraded cluster for
// any caller that must refuse to start).
func CheckHealth(ctx context.Context, cfg Config) (Health, error) {
	d, err := newDialer(cfg)
	if err != nil {
		return Health{}, err
	}
	members, err := listMembers(ctx, d)
	if err != nil {
		return Health{}, err
	}
	probes := make([]probe, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		probes[i].member = m
		wg.Go(func() { probes[i].run(ctx, d) })
	}
	wg.Wait()
	return assess(probes), nil
}

// memberInfo is a member-list entry.
type memberInfo struct {
	id         uint64
	name       string
	peerURLs   []string
	clientURLs []string
	learner    bool
}

// listMembers asks the endpoints in order until one answers (a member list through a dead endpoint
// would otherwise cost a timeout per retry).
func listMembers(ctx context.Context, d dialer) ([]memberInfo, error) {
	var errs []error
	for _, ep := range d.cfg.Endpoints {
		members, err := listMembersAt(ctx, d, ep)
		if err == nil {
			return members, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, fmt.Errorf("etcdops: listing the etcd members: %w", errors.Join(errs...))
}

func listMembersAt(ctx context.Context, d dialer, ep string) ([]memberInfo, error) {
	cli, err := d.client(ep)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	rctx, cancel := d.request(ctx)
	defer cancel()
	resp, err := cli.MemberList(rctx)
	if err != nil {
		return nil, err
	}
	out := make([]memberInfo, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, memberInfo{id: m.ID, name: m.Name, peerURLs: m.PeerURLs, clientURLs: m.ClientURLs, learner: m.IsLearner})
	}
	return out, nil
}

// probe is what was gathered about one member: the input of assess.
type probe struct {
	member memberInfo
	// urls has one entry per client URL, in order.
	urls []urlProbe
}

// urlProbe is one client URL's answers; err is the first failure, and later fields are unset after it.
type urlProbe struct {
	url    string
	err    error
	status *status
	alarms []alarm
}

type status struct {
	memberID  uint64 // the member that answered, as its header says
	leaderID  uint64 // 0 when it knows no leader
	version   string
	dbSize    int64
	revision  int64
	raftTerm  uint64
	raftIndex uint64
	errors    []string
}

type alarm struct {
	memberID uint64
	kind     string
}

func (p *probe) run(ctx context.Context, d dialer) {
	for _, url := range p.member.clientURLs {
		p.urls = append(p.urls, probeURL(ctx, d, url, p.member.learner))
	}
}

func probeURL(ctx context.Context, d dialer, url string, learner bool) urlProbe {
	out := urlProbe{url: url}
	cli, err := d.client(url)
	if err != nil {
		out.err = err
		return out
	}
	defer cli.Close()
	if out.err = readHealthKey(ctx, d, cli, learner); out.err != nil {
		return out
	}
	rctx, cancel := d.request(ctx)
	st, err := cli.Status(rctx, url)
	cancel()
	if err != nil {
		out.err = fmt.Errorf("status: %w", err)
		return out
	}
	out.status = &status{
		memberID: st.Header.GetMemberId(), leaderID: st.Leader, version: st.Version, dbSize: st.DbSize,
		revision: st.Header.GetRevision(), raftTerm: st.RaftTerm, raftIndex: st.RaftIndex, errors: st.Errors,
	}
	rctx, cancel = d.request(ctx)
	al, err := cli.AlarmList(rctx)
	cancel()
	if err != nil {
		out.err = fmt.Errorf("alarm list: %w", err)
		return out
	}
	for _, a := range al.Alarms {
		out.alarms = append(out.alarms, alarm{memberID: a.MemberID, kind: a.Alarm.String()})
	}
	return out
}

// readHealthKey is `etcdctl endpoint health`: a linearizable read goes through consensus, so an answer
// means the member is connected to a quorum. Permission denied is an answer too: the request went
// through consensus before the key's permissions were checked (etcdctl counts it healthy as well).
// A learner serves no linearizable reads, so it gets a serializable one: its own store answered.
func readHealthKey(ctx context.Context, d dialer, cli *clientv3.Client, learner bool) error {
	rctx, cancel := d.request(ctx)
	defer cancel()
	var opts []clientv3.OpOption
	if learner {
		opts = append(opts, clientv3.WithSerializable())
	}
	_, err := cli.Get(rctx, "health", opts...)
	if err == nil || errors.Is(err, rpctypes.ErrPermissionDenied) {
		return nil
	}
	return err
}
