package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
	"github.com/batonflow/baton/store/internal/writequeue"
)

// clusterSchema holds what replicas sharing the database coordinate with.
// The partition count is fixed here, when the database is created: the
// partition of an invocation is a hash of its id modulo that count, so it
// cannot change under running invocations. Times are the database's
// (now()), never a replica's.
const clusterSchema = `
CREATE TABLE cluster (
	partitions integer NOT NULL CHECK (partitions > 0)
);
INSERT INTO cluster (partitions) VALUES (64);

CREATE TABLE partitions (
	id          integer     PRIMARY KEY,
	owner       text        NOT NULL DEFAULT '',
	epoch       bigint      NOT NULL DEFAULT 0,
	lease_until timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO partitions (id) SELECT generate_series(0, 63);

CREATE TABLE replicas (
	id           text        PRIMARY KEY,
	heartbeat_at timestamptz NOT NULL,
	draining     boolean     NOT NULL DEFAULT false
);

ALTER TABLE invocations ADD COLUMN partition integer;
CREATE INDEX invocations_running_by_partition ON invocations (partition, started_at, id) WHERE status = 'running';

CREATE TABLE cancel_requests (
	invocation_id text        PRIMARY KEY REFERENCES invocations (id),
	partition     integer     NOT NULL,
	requested_at  timestamptz NOT NULL DEFAULT now()
);
`

// The channels replicas listen on: work names partitions with new starts
// or cancellations; changes asks every replica to tick at once (a lease
// was released, a replica left).
const (
	channelWork    = "baton_work"
	channelChanges = "baton_changes"
)

// loadPartitions reads the partition count and gives invocations written
// before the cluster schema existed their partition.
func loadPartitions(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT partitions FROM cluster`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the partition count: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT id FROM invocations WHERE partition IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("invocations without a partition: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("invocations without a partition: %w", err)
	}
	if len(ids) > 0 {
		parts := make([]int32, len(ids))
		for i, id := range ids {
			parts[i] = int32(cluster.PartitionOf(id, n))
		}
		if _, err := pool.Exec(ctx, `UPDATE invocations AS i SET partition = u.partition
			FROM unnest($1::text[], $2::integer[]) AS u (id, partition) WHERE i.id = u.id`, ids, parts); err != nil {
			return 0, fmt.Errorf("set the partitions of older invocations: %w", err)
		}
	}
	return n, nil
}

var _ store.Coordinator = (*Store)(nil)

// sqlCheckFences share-locks the partitions that a batch's fenced writes
// name, in force leases only. FOR KEY SHARE lets renewals (which update
// lease_until, not the key) through, but an acquisition's FOR UPDATE waits
// for this transaction to end, and a write that waited for an acquisition
// reads the new epoch: a stale owner can never commit.
const sqlCheckFences = `SELECT id, owner, epoch FROM partitions
	WHERE id = ANY($1) AND lease_until > now() ORDER BY id FOR KEY SHARE`

func fencedPartitions(batch []*request) []int32 {
	var out []int32
	for _, r := range batch {
		if r.fence != nil {
			out = append(out, int32(r.fence.Partition))
		}
	}
	return out
}

func readFences(br pgx.BatchResults) (map[int]store.Fence, error) {
	held := map[int]store.Fence{}
	var f store.Fence
	rows, _ := br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&f.Partition, &f.Owner, &f.Epoch}, func() error {
		held[f.Partition] = f
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres store: check fences: %w", err)
	}
	return held, nil
}

func fenceHolds(f store.Fence, held map[int]store.Fence) bool {
	h, ok := held[f.Partition]
	return ok && h.Owner == f.Owner && h.Epoch == f.Epoch
}

// Partitions implements store.Coordinator.
func (s *Store) Partitions() int { return s.partitions }

// ClusterTick implements store.Coordinator.
func (s *Store) ClusterTick(ctx context.Context, replica string, draining bool, leases []cluster.Lease, cfg cluster.Config) (cluster.Snapshot, error) {
	cfg = cfg.WithDefaults()
	ids := make([]int32, len(leases))
	epochs := make([]int64, len(leases))
	for i, l := range leases {
		ids[i], epochs[i] = int32(l.Partition), l.Epoch
	}
	var snap cluster.Snapshot
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO replicas (id, heartbeat_at, draining) VALUES ($1, now(), $2)
			ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), draining = $2`, replica, draining)
		b.Queue(`UPDATE partitions AS p SET lease_until = now() + $3::bigint * interval '1 millisecond'
			FROM unnest($1::integer[], $2::bigint[]) AS l (id, epoch)
			WHERE p.id = l.id AND p.epoch = l.epoch AND p.owner = $4 AND p.lease_until > now()`,
			ids, epochs, cfg.LeaseTTL.Milliseconds(), replica)
		// Replicas gone for long are forgotten.
		b.Queue(`DELETE FROM replicas WHERE heartbeat_at < now() - interval '1 hour'`)
		b.Queue(`SELECT now()`)
		b.Queue(`SELECT id FROM replicas WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond' AND NOT draining ORDER BY id`,
			cfg.ReplicaTTL.Milliseconds())
		b.Queue(`SELECT id, owner, epoch, lease_until FROM partitions ORDER BY id`)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		for range 3 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := br.QueryRow().Scan(&snap.Now); err != nil {
			return err
		}
		rows, _ := br.Query()
		live, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		snap.Live = live
		var r cluster.Row
		rows, _ = br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&r.Partition, &r.Owner, &r.Epoch, &r.Until}, func() error {
			snap.Rows = append(snap.Rows, r)
			return nil
		}); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return cluster.Snapshot{}, fmt.Errorf("cluster tick of %s: %w", replica, err)
	}
	return snap, nil
}

// AcquirePartition implements store.Coordinator. The row is locked FOR
// UPDATE first: that waits for fenced writes in progress under the former
// owner (they hold FOR KEY SHARE) and makes later ones read the new epoch.
// A lock held by a frozen former owner ends the acquisition after a while
// rather than the caller's loop; the next tick tries again.
func (s *Store) AcquirePartition(ctx context.Context, replica string, row cluster.Row, ttl time.Duration) (cluster.Lease, bool, error) {
	var l cluster.Lease
	ok := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM partitions WHERE id = $1 FOR UPDATE`, row.Partition); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `UPDATE partitions SET owner = $2, epoch = epoch + 1,
				lease_until = now() + $4::bigint * interval '1 millisecond'
			WHERE id = $1 AND epoch = $3 AND (owner = '' OR lease_until <= now())
			RETURNING epoch, lease_until`, row.Partition, replica, row.Epoch, ttl.Milliseconds()).Scan(&l.Epoch, &l.Until)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		l.Partition, ok = row.Partition, true
		return nil
	})
	if err != nil {
		return cluster.Lease{}, false, fmt.Errorf("acquire partition %d: %w", row.Partition, err)
	}
	return l, ok, nil
}

// ReleasePartition implements store.Coordinator.
func (s *Store) ReleasePartition(ctx context.Context, replica string, l cluster.Lease) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM partitions WHERE id = $1 FOR UPDATE`, l.Partition); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE partitions SET owner = '', lease_until = now()
			WHERE id = $1 AND owner = $2 AND epoch = $3`, l.Partition, replica, l.Epoch); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, channelChanges)
		return err
	})
	if err != nil {
		return fmt.Errorf("release partition %d: %w", l.Partition, err)
	}
	return nil
}

// LeaveCluster implements store.Coordinator.
func (s *Store) LeaveCluster(ctx context.Context, replica string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, replica); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, channelChanges)
		return err
	})
	if err != nil {
		return fmt.Errorf("replica %s leaving: %w", replica, err)
	}
	return nil
}

// CreateInvocationFenced implements store.Coordinator.
func (s *Store) CreateInvocationFenced(ctx context.Context, f store.Fence, inv *store.Invocation, events []core.Event, wait bool) error {
	row, enc, term, err := rowcodec.EncodeCreation(inv, events)
	if err != nil {
		return err
	}
	return s.submit(ctx, &request{create: true, id: inv.ID, inv: row, events: enc, terminal: term, fence: &f, done: writequeue.DoneChan(wait)})
}

// AppendFenced implements store.Coordinator.
func (s *Store) AppendFenced(ctx context.Context, f store.Fence, id string, events []core.Event, wait bool) error {
	enc, term, err := rowcodec.EncodeEvents(id, events)
	if err != nil {
		return err
	}
	return s.submit(ctx, &request{id: id, events: enc, terminal: term, fence: &f, done: writequeue.DoneChan(wait)})
}

// RunningInPartitions implements store.Coordinator.
func (s *Store) RunningInPartitions(ctx context.Context, partitions []int) ([]*store.Invocation, error) {
	// Rows written without a partition (by a writer that predates the
	// cluster schema) are placed here from their id.
	invs, err := s.queryInvocations(ctx, `SELECT `+invocationColumns+` FROM invocations
		WHERE status = $1 AND (partition = ANY($2) OR partition IS NULL) AND durable ORDER BY started_at, id`,
		string(core.StatusRunning), int32s(partitions))
	if err != nil {
		return nil, fmt.Errorf("running invocations of partitions: %w", err)
	}
	kept := invs[:0]
	for _, inv := range invs {
		if slices.Contains(partitions, cluster.PartitionOf(inv.ID, s.partitions)) {
			kept = append(kept, inv)
		}
	}
	return kept, nil
}

// RequestCancel implements store.Coordinator.
func (s *Store) RequestCancel(ctx context.Context, id, reason string) error {
	var status string
	err := s.pool.QueryRow(ctx, `WITH inv AS (SELECT id, status FROM invocations WHERE id = $1),
		req AS (INSERT INTO cancel_requests (invocation_id, partition, reason)
			SELECT id, $3, $4 FROM inv WHERE status = $2
			ON CONFLICT (invocation_id) DO NOTHING)
		SELECT status FROM inv`, id, string(core.StatusRunning), int32(cluster.PartitionOf(id, s.partitions)), reason).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("request the cancellation of %s: %w", id, err)
	}
	if core.Status(status) != core.StatusRunning {
		return fmt.Errorf("invocation %s has already %s: %w", id, status, store.ErrConflict)
	}
	return nil
}

// CancelRequests implements store.Coordinator.
func (s *Store) CancelRequests(ctx context.Context, partitions []int) ([]store.CancelRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT invocation_id, reason FROM cancel_requests
		WHERE partition = ANY($1) ORDER BY requested_at, invocation_id`, int32s(partitions))
	if err != nil {
		return nil, fmt.Errorf("cancel requests: %w", err)
	}
	reqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CancelRequest, error) {
		var r store.CancelRequest
		err := row.Scan(&r.Invocation, &r.Reason)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel requests: %w", err)
	}
	return reqs, nil
}

// DoneCancel implements store.Coordinator.
func (s *Store) DoneCancel(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM cancel_requests WHERE invocation_id = $1`, id); err != nil {
		return fmt.Errorf("forget the cancel request of %s: %w", id, err)
	}
	return nil
}

// NotifyPartitions implements store.Coordinator.
func (s *Store) NotifyPartitions(ctx context.Context, partitions []int) error {
	if len(partitions) == 0 {
		return nil
	}
	parts := make([]string, len(partitions))
	for i, p := range partitions {
		parts[i] = strconv.Itoa(p)
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channelWork, strings.Join(parts, ",")); err != nil {
		return fmt.Errorf("notify partitions: %w", err)
	}
	return nil
}

// ListenCluster implements store.Coordinator. It holds one connection of
// the pool for as long as it listens; after a lost connection it
// reconnects and reports a nil notification, since notifications sent
// meanwhile are gone.
func (s *Store) ListenCluster(ctx context.Context, fn func(partitions []int)) error {
	for {
		err := s.listen(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		s.w.log.Warn("postgres store: cluster notifications interrupted; reconnecting", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		fn(nil)
	}
}

func (s *Store) listen(ctx context.Context, fn func([]int)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is in LISTEN state; it must not go back to the pool.
	defer func() { _ = conn.Hijack().Close(context.Background()) }()
	for _, ch := range []string{channelWork, channelChanges} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == channelChanges {
			fn(nil)
			continue
		}
		var parts []int
		for _, f := range strings.Split(n.Payload, ",") {
			if p, err := strconv.Atoi(f); err == nil {
				parts = append(parts, p)
			}
		}
		if len(parts) > 0 {
			fn(parts)
		}
	}
}

func int32s(xs []int) []int32 {
	out := make([]int32, len(xs))
	for i, x := range xs {
		out[i] = int32(x)
	}
	return out
}
