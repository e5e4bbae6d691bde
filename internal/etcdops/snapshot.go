package etcdops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/certrollout/certrollout/internal/durable"
)

// SnapshotInfo describes a snapshot written by Snapshot.
type SnapshotInfo struct {
	Path   string
	SHA256 string // of the whole file, hex
	Size   int64
	// Revision is the member's revision just before the snapshot was taken: the snapshot holds at
	// least this revision (the stream itself carries none).
	Revision int64
	Member   string // the member that served it
	TakenAt  time.Time
}

// snapshotName matches the files Snapshot writes and retention removes; nothing else in the folder is
// ever touched.
var snapshotName = regexp.MustCompile(`^etcd-snapshot-[0-9]{8}T[0-9]{6}Z\.db$`)

const snapshotTimeLayout = "20060102T150405Z"

// SnapshotFileName is the name of a snapshot taken at now; names sort by time.
func SnapshotFileName(now time.Time) string {
	return "etcd-snapshot-" + now.UTC().Format(snapshotTimeLayout) + ".db"
}

// Snapshot is `etcdctl snapshot save` into dir: it streams a snapshot from the first endpoint whose
// member answers a linearizable read and its status, checks the SHA-256 etcd appends to the stream,
// writes it durably (internal/durable: a hidden temporary file, fsynced, linked to SnapshotFileName(now),
// never replacing a file, and dir fsynced). Then it keeps the newest keep snapshots (keep < 1 keeps all)
// and returns the paths it removed. The file keeps etcd's trailing checksum, as etcdctl's does, so
// `etcdutl snapshot restore` verifies it. On failure no file has the final name. dir is created 0700,
// files are 0600. The stream is bounded by ctx only.
func Snapshot(ctx context.Context, cfg Config, dir string, keep int, now time.Time) (SnapshotInfo, []string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("etcdops: creating the snapshot folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("etcdops: %w", err)
	}
	defer root.Close()
	return SnapshotIn(ctx, cfg, root, ".", keep, now)
}

// SnapshotIn is Snapshot into the folder rel (slash-separated, created 0700) under root: every file is
// opened through root, so neither rel nor a symbolic link in it can lead the snapshot out of root.
func SnapshotIn(ctx context.Context, cfg Config, root *os.Root, rel string, keep int, now time.Time) (SnapshotInfo, []string, error) {
	d, err := newDialer(cfg)
	if err != nil {
		return SnapshotInfo{}, nil, err
	}
	rel = path.Clean(rel)
	if err := root.MkdirAll(rel, 0o700); err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("etcdops: creating the snapshot folder: %w", err)
	}
	cli, info, err := pickSnapshotSource(ctx, d)
	if err != nil {
		return SnapshotInfo{}, nil, err
	}
	defer cli.Close()
	info.TakenAt = now
	name := path.Join(rel, SnapshotFileName(now))
	info.Path = filepath.Join(root.Name(), filepath.FromSlash(name))
	if err := durable.Write(root, name, 0o600, true, func(w io.Writer) error { return stream(ctx, cli, w, &info) }); err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("etcdops: snapshot from %s: %w", info.Member, err)
	}
	removed, err := prune(root, rel, keep, path.Base(name))
	if err != nil {
		return info, removed, err
	}
	return info, removed, nil
}

// pickSnapshotSource connects to the first endpoint that answers a linearizable read and its status,
// and fills in the member's name and revision.
func pickSnapshotSource(ctx context.Context, d dialer) (*clientv3.Client, SnapshotInfo, error) {
	var errs []error
	for _, ep := range d.cfg.Endpoints {
		cli, info, err := snapshotSource(ctx, d, ep)
		if err == nil {
			return cli, info, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, SnapshotInfo{}, fmt.Errorf("etcdops: no etcd endpoint to take a snapshot from: %w", errors.Join(errs...))
}

func snapshotSource(ctx context.Context, d dialer, ep string) (*clientv3.Client, SnapshotInfo, error) {
	cli, err := d.client(ep)
	if err != nil {
		return nil, SnapshotInfo{}, err
	}
	info, err := describeSource(ctx, d, cli, ep)
	if err != nil {
		cli.Close()
		return nil, SnapshotInfo{}, err
	}
	return cli, info, nil
}

func describeSource(ctx context.Context, d dialer, cli *clientv3.Client, ep string) (SnapshotInfo, error) {
	if err := readHealthKey(ctx, d, cli, false); err != nil {
		return SnapshotInfo{}, err
	}
	rctx, cancel := d.request(ctx)
	defer cancel()
	st, err := cli.Status(rctx, ep)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("status: %w", err)
	}
	if len(st.Errors) > 0 {
		return SnapshotInfo{}, fmt.Errorf("the member reports errors: %v", st.Errors)
	}
	info := SnapshotInfo{Revision: st.Header.GetRevision(), Member: memberID(st.Header.GetMemberId())}
	members, err := cli.MemberList(rctx)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("member list: %w", err)
	}
	for _, m := range members.Members {
		if m.ID == st.Header.GetMemberId() && m.Name != "" {
			info.Member = m.Name
		}
	}
	return info, nil
}

func stream(ctx context.Context, cli *clientv3.Client, w io.Writer, info *SnapshotInfo) error {
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	file := sha256.New()
	check := newTrailerCheck()
	n, err := io.Copy(io.MultiWriter(w, file, check), rc)
	if err != nil {
		return err
	}
	if err := check.verify(); err != nil {
		return err
	}
	info.Size = n
	info.SHA256 = hex.EncodeToString(file.Sum(nil))
	return nil
}

// trailerCheck verifies the SHA-256 etcd appends after the database: it hashes everything but the last
// sha256.Size bytes it was given, which it holds back.
type trailerCheck struct {
	h    hash.Hash
	tail []byte
}

func newTrailerCheck() *trailerCheck {
	return &trailerCheck{h: sha256.New(), tail: make([]byte, 0, sha256.Size)}
}

func (t *trailerCheck) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= sha256.Size {
		t.h.Write(t.tail)
		t.h.Write(p[:len(p)-sha256.Size])
		t.tail = append(t.tail[:0], p[len(p)-sha256.Size:]...)
		return n, nil
	}
	buf := append(slices.Clone(t.tail), p...)
	if over := len(buf) - sha256.Size; over > 0 {
		t.h.Write(buf[:over])
		buf = buf[over:]
	}
	t.tail = append(t.tail[:0], buf...)
	return n, nil
}

func (t *trailerCheck) verify() error {
	if len(t.tail) < sha256.Size {
		return errors.New("the stream is too short to hold etcd's checksum")
	}
	if !bytes.Equal(t.h.Sum(nil), t.tail) {
		return errors.New("the stream does not match the SHA-256 etcd appended to it")
	}
	return nil
}

// prune removes all but the newest keep snapshots (by name, which sorts by time) from rel under root.
// It never removes taken, the snapshot just written, even when a clock behind older names makes it sort
// first.
func prune(root *os.Root, rel string, keep int, taken string) ([]string, error) {
	if keep < 1 {
		return nil, nil
	}
	d, err := root.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("etcdops: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("etcdops: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && snapshotName.MatchString(e.Name()) && e.Name() != taken {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var removed []string
	// The one just taken counts among those kept.
	for _, name := range names[:max(0, len(names)-(keep-1))] {
		if err := root.Remove(path.Join(rel, name)); err != nil {
			return removed, fmt.Errorf("etcdops: removing an old snapshot: %w", err)
		}
		removed = append(removed, filepath.Join(root.Name(), filepath.FromSlash(rel), name))
	}
	if len(removed) > 0 {
		if err := durable.SyncDir(root, rel); err != nil {
			return removed, fmt.Errorf("etcdops: %w", err)
		}
	}
	return removed, nil
}
