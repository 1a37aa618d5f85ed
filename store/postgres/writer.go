package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
	"github.com/batonflow/baton/store/internal/writequeue"
)

// request is one caller's creation or append, queued for the writer.
type request struct {
	create   bool
	id       string
	inv      *rowcodec.InvocationRow
	events   []rowcodec.EncodedEvent
	terminal *rowcodec.Terminal
	// fence, when set, makes the write conditional on the writer still
	// owning the invocation's partition (see cluster.go).
	fence *store.Fence
	// done receives the outcome; nil when the caller does not wait.
	done chan error
}

type invState struct {
	exists  bool
	closed  bool
	lastSeq int64
}

// writer turns everything queued into one transaction of a few pipelined
// statements. PostgreSQL groups commits across connections by itself; what
// batching saves here is round trips, and it keeps appends FIFO per process,
// so an unwaited append is visible once a later waited one returns.
type writer struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	maxBatch int
	// partitions is the cluster's partition count; new invocation rows
	// record their partition.
	partitions int
	queue      *writequeue.Queue[*request]
	stopped    chan struct{}

	commits  atomic.Int64
	writes   atomic.Int64
	unwaited writequeue.Unwaited
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*request, 0, w.maxBatch)
	for first := range w.queue.Requests() {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case r, ok := <-w.queue.Requests():
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.commitBatch(batch)
		clear(batch)
	}
}

func (w *writer) commitBatch(batch []*request) {
	// Writes must complete whatever happens to the callers' contexts: a
	// waiter that gives up does not withdraw its write.
	ctx := context.Background()
	results := make([]error, len(batch))
	if err := w.writeBatch(ctx, batch, results); err != nil {
		if len(batch) == 1 {
			results[0] = err
		} else {
			// One bad request (or a lost race with another replica) must
			// not fail its neighbours: write them one by one, in order.
			w.log.Warn("postgres store: batch failed, writing its requests one by one", "requests", len(batch), "error", err)
			for i := range batch {
				one := results[i : i+1]
				if err := w.writeBatch(ctx, batch[i:i+1], one); err != nil {
					one[0] = err
				}
			}
		}
	}
	for i, r := range batch {
		err := results[i]
		if r.done == nil {
			if err != nil {
				w.log.Error("postgres store: unwaited write failed", "invocation", r.id, "error", err)
				w.unwaited.Add(err)
			}
			continue
		}
		if err == nil {
			err = w.unwaited.Take()
		}
		r.done <- err
	}
}

// plan is the batch turned into column arrays, one statement per table.
type plan struct {
	invID, invNamespace, invWorkflow, invVersion, invStatus, invParent []string
	invInput, invOutput, invError                                      [][]byte
	invStarted                                                         []time.Time
	invEnded                                                           []pgtype.Timestamptz
	invDurable                                                         []bool
	invPartition                                                       []int32

	histID  []string
	histSeq []int64
	histEv  [][]byte

	finID, finStatus  []string
	finOutput, finErr [][]byte
	finEnded          []pgtype.Timestamptz
}

func optionalTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

const (
	sqlLockInvocations   = `SELECT id, status FROM invocations WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	sqlLastSeqs          = `SELECT invocation_id, max(seq) FROM history WHERE invocation_id = ANY($1) GROUP BY invocation_id`
	sqlInsertInvocations = `INSERT INTO invocations
		(id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent, partition)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::json[], $7::json[], $8::json[],
			$9::timestamptz[], $10::timestamptz[], $11::boolean[], $12::text[], $13::integer[])
		ON CONFLICT (id) DO NOTHING`
	sqlInsertHistory = `INSERT INTO history (invocation_id, seq, event)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::json[])`
	sqlFinish = `UPDATE invocations AS i
		SET status = u.status, output = u.output, error = u.error, ended_at = u.ended_at
		FROM unnest($1::text[], $2::text[], $3::json[], $4::json[], $5::timestamptz[]) AS u (id, status, output, error, ended_at)
		WHERE i.id = u.id`
)

// writeBatch writes batch in one transaction, setting results[i] for
// requests that fail on their own (unknown invocation, seq conflict). It
// returns an error when the transaction as a whole failed.
func (w *writer) writeBatch(ctx context.Context, batch []*request, results []error) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()

	ids := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		if !seen[r.id] {
			seen[r.id] = true
			ids = append(ids, r.id)
		}
	}
	// Locking the rows orders this batch after any other replica's append
	// to the same invocations, so seqs stay contiguous across replicas. The
	// last seqs are read by a second statement: under READ COMMITTED it
	// takes a new snapshot, one that sees what the lock waited for.
	states := make(map[string]*invState, len(ids))
	lookup := &pgx.Batch{}
	fences := fencedPartitions(batch)
	if len(fences) > 0 {
		lookup.Queue(sqlCheckFences, fences)
	}
	lookup.Queue(sqlLockInvocations, ids)
	lookup.Queue(sqlLastSeqs, ids)
	br := tx.SendBatch(ctx, lookup)
	var id, status string
	var lastSeq int64
	var held map[int]store.Fence
	if len(fences) > 0 {
		if held, err = readFences(br); err != nil {
			_ = br.Close()
			return err
		}
	}
	// A failed query hands back rows that carry its error, which
	// ForEachRow reports.
	rows, _ := br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id, &status}, func() error {
		states[id] = &invState{exists: true, closed: core.Status(status) != core.StatusRunning}
		return nil
	}); err != nil {
		_ = br.Close()
		return fmt.Errorf("postgres store: lock invocations: %w", err)
	}
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id, &lastSeq}, func() error {
		if st := states[id]; st != nil {
			st.lastSeq = lastSeq
		}
		return nil
	}); err != nil {
		_ = br.Close()
		return fmt.Errorf("postgres store: read last seqs: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres store: lock invocations: %w", err)
	}

	var p plan
	for i, r := range batch {
		st := states[r.id]
		if st == nil {
			st = &invState{}
			states[r.id] = st
		}
		if r.fence != nil && !fenceHolds(*r.fence, held) {
			results[i] = fmt.Errorf("invocation %s, partition %d, epoch %d: %w", r.id, r.fence.Partition, r.fence.Epoch, store.ErrFenced)
			continue
		}
		results[i] = p.add(r, st, w.partitions)
	}

	b := &pgx.Batch{}
	if len(p.invID) > 0 {
		b.Queue(sqlInsertInvocations, p.invID, p.invNamespace, p.invWorkflow, p.invVersion, p.invStatus,
			p.invInput, p.invOutput, p.invError, p.invStarted, p.invEnded, p.invDurable, p.invParent, p.invPartition)
	}
	if len(p.histID) > 0 {
		b.Queue(sqlInsertHistory, p.histID, p.histSeq, p.histEv)
	}
	if len(p.finID) > 0 {
		b.Queue(sqlFinish, p.finID, p.finStatus, p.finOutput, p.finErr, p.finEnded)
	}
	if b.Len() > 0 {
		br := tx.SendBatch(ctx, b)
		if len(p.invID) > 0 {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return fmt.Errorf("postgres store: insert invocations: %w", err)
			}
			if tag.RowsAffected() != int64(len(p.invID)) {
				// Another replica created one of these ids after our
				// lookup; the history rows planned for it are not ours to
				// write.
				_ = br.Close()
				return fmt.Errorf("postgres store: invocation created concurrently: %w", store.ErrConflict)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("postgres store: write batch: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres store: commit: %w", err)
	}
	w.commits.Add(1)
	w.writes.Add(int64(len(batch)))
	return nil
}

// add validates one request against what the batch knows of its invocation
// and, when it is valid, plans its rows. Invalid requests plan nothing.
func (p *plan) add(r *request, st *invState, partitions int) error {
	switch {
	case r.create && st.exists:
		return fmt.Errorf("invocation %s already exists: %w", r.id, store.ErrConflict)
	case !r.create && !st.exists:
		return fmt.Errorf("invocation %s: %w", r.id, store.ErrNotFound)
	case !r.create && st.closed && len(r.events) > 0 && (r.terminal == nil || !r.terminal.Reopen):
		return fmt.Errorf("invocation %s has ended, its history is closed: %w", r.id, store.ErrConflict)
	case r.terminal != nil && r.terminal.Reopen && !st.closed:
		return fmt.Errorf("invocation %s has not ended; only an ended invocation is redriven: %w", r.id, store.ErrConflict)
	}
	if err := rowcodec.CheckSeqs(r.id, st.lastSeq, r.events); err != nil {
		return err
	}

	if r.create {
		inv := r.inv
		status := inv.Status
		var output, errJSON []byte
		var ended time.Time
		if t := r.terminal; t != nil {
			status, output, errJSON, ended = t.Status, t.Output, t.Error, t.EndedAt
		}
		p.invID = append(p.invID, r.id)
		p.invNamespace = append(p.invNamespace, inv.Namespace)
		p.invWorkflow = append(p.invWorkflow, inv.Workflow)
		p.invVersion = append(p.invVersion, inv.Version)
		p.invStatus = append(p.invStatus, string(status))
		p.invInput = append(p.invInput, inv.Input)
		p.invOutput = append(p.invOutput, output)
		p.invError = append(p.invError, errJSON)
		p.invStarted = append(p.invStarted, inv.StartedAt)
		p.invEnded = append(p.invEnded, optionalTime(ended))
		p.invDurable = append(p.invDurable, inv.Durable)
		p.invParent = append(p.invParent, inv.Parent)
		p.invPartition = append(p.invPartition, int32(cluster.PartitionOf(r.id, partitions)))
		st.exists, st.closed = true, status != core.StatusRunning
	} else if t := r.terminal; t != nil {
		p.finID = append(p.finID, r.id)
		p.finStatus = append(p.finStatus, string(t.Status))
		p.finOutput = append(p.finOutput, t.Output)
		p.finErr = append(p.finErr, t.Error)
		p.finEnded = append(p.finEnded, optionalTime(t.EndedAt))
		st.closed = t.Status != core.StatusRunning
	}
	for i, ev := range r.events {
		p.histID = append(p.histID, r.id)
		p.histSeq = append(p.histSeq, st.lastSeq+int64(i)+1)
		p.histEv = append(p.histEv, ev.Data)
	}
	st.lastSeq += int64(len(r.events))
	return nil
}
