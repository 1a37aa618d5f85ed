package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
	"github.com/batonflow/baton/store/internal/writequeue"
)

// maxKnownInvocations bounds the writer's memory of invocation states;
// past it the writer starts afresh and reloads states as appends come.
const maxKnownInvocations = 100_000

type requestKind uint8

const (
	kindCreate requestKind = iota
	kindAppend
	kindOp
)

// request is one caller's write, queued for the writer goroutine.
type request struct {
	kind     requestKind
	id       string
	inv      *rowcodec.InvocationRow
	events   []rowcodec.EncodedEvent
	terminal *rowcodec.Terminal
	// op runs arbitrary writes (workflows, functions) inside the batch's
	// transaction, under a savepoint so that its failure stays its own.
	op func(ctx context.Context, conn *sql.Conn) error
	// done receives the outcome; nil when the caller does not wait.
	done chan error
}

// invState is what the writer knows about an invocation: enough to validate
// and number appended events without asking SQLite on every append. The
// writer keeps these across batches because it is the database's only
// writer; PRAGMA data_version tells it when another connection committed,
// and then it forgets them.
type invState struct {
	exists  bool
	closed  bool
	lastSeq int64
}

// writer owns the only write connection. It takes everything queued,
// writes it in one transaction and commits once, so concurrent appends share
// a single fsync (group commit).
type writer struct {
	conn     *sql.Conn
	log      *slog.Logger
	maxBatch int
	queue    *writequeue.Queue[*request]
	stopped  chan struct{}

	loadState   *sql.Stmt
	insertEvent *sql.Stmt
	insertInv   *sql.Stmt
	finishInv   *sql.Stmt
	dataVersion *sql.Stmt
	known       map[string]*invState
	lastVersion int64
	results     []error
	commits     atomic.Int64
	writes      atomic.Int64
	unwaited    writequeue.Unwaited
}

const (
	sqlLoadState = `SELECT status, coalesce((SELECT max(seq) FROM history WHERE invocation_id = ?1), 0)
		FROM invocations WHERE id = ?1`
	sqlInsertEvent = `INSERT INTO history (invocation_id, seq, event) VALUES (?, ?, ?)`
	sqlInsertInv   = `INSERT INTO invocations
		(id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlFinishInv = `UPDATE invocations SET status = ?, output = ?, error = ?, ended_at = ? WHERE id = ?`
)

func newWriter(ctx context.Context, conn *sql.Conn, log *slog.Logger, maxBatch, queueSize int) (*writer, error) {
	w := &writer{
		conn:     conn,
		log:      log,
		maxBatch: maxBatch,
		queue:    writequeue.New[*request](queueSize, ErrClosed),
		stopped:  make(chan struct{}),
		known:    make(map[string]*invState),
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.loadState, sqlLoadState},
		{&w.insertEvent, sqlInsertEvent},
		{&w.insertInv, sqlInsertInv},
		{&w.finishInv, sqlFinishInv},
		{&w.dataVersion, "PRAGMA data_version"},
	} {
		stmt, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			w.closeStatements()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = stmt
	}
	return w, nil
}

func (w *writer) closeStatements() {
	for _, s := range []*sql.Stmt{w.loadState, w.insertEvent, w.insertInv, w.finishInv, w.dataVersion} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// run is the writer goroutine. It returns once the queue is closed and
// drained.
func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*request, 0, w.maxBatch)
	for first := range w.queue.Requests() {
		batch = w.fillNow(append(batch[:0], first))
		if !anyWaiter(batch) {
			batch = w.linger(batch)
		}
		w.commitBatch(batch)
		clear(batch)
	}
}

// unwaitedLinger is how long a batch of unwaited writes alone waits for a
// waited write to share its commit. An engine records that a call was
// dispatched without waiting and, a moment later, waits for its result:
// committing the first alone would make the second wait for that fsync
// and then pay its own.
const unwaitedLinger = 2 * time.Millisecond

func anyWaiter(batch []*request) bool {
	for _, r := range batch {
		if r.done != nil {
			return true
		}
	}
	return false
}

// linger adds to a batch of unwaited writes what arrives within
// unwaitedLinger, stopping early at the first waited write.
func (w *writer) linger(batch []*request) []*request {
	timer := time.NewTimer(unwaitedLinger)
	defer timer.Stop()
	for len(batch) < w.maxBatch {
		select {
		case r, ok := <-w.queue.Requests():
			if !ok {
				return batch
			}
			batch = append(batch, r)
			if r.done != nil {
				return w.fillNow(batch)
			}
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// fillNow adds whatever is queued already, without waiting.
func (w *writer) fillNow(batch []*request) []*request {
	for len(batch) < w.maxBatch {
		select {
		case r, ok := <-w.queue.Requests():
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch writes a batch in one transaction and reports to its callers.
// Errors that concern one request (unknown invocation, conflicting seq) are
// detected before that request writes anything, so they fail only that
// request; an error from SQLite itself fails the whole batch.
func (w *writer) commitBatch(batch []*request) {
	// Writes must complete whatever happens to the callers' contexts: a
	// waiter that gives up does not withdraw its write.
	ctx := context.Background()
	w.results = w.results[:0]
	for range batch {
		w.results = append(w.results, nil)
	}
	if err := w.writeBatch(ctx, batch); err != nil {
		if _, rbErr := w.conn.ExecContext(ctx, "ROLLBACK"); rbErr != nil {
			w.log.Error("sqlite store: rollback failed", "error", rbErr)
		}
		err = fmt.Errorf("sqlite store: write batch: %w", err)
		for i := range w.results {
			w.results[i] = err
		}
		// The batch changed states that the rollback undid.
		clear(w.known)
	}
	if len(w.known) > maxKnownInvocations {
		clear(w.known)
	}

	for i, r := range batch {
		err := w.results[i]
		if r.done == nil {
			if err != nil {
				w.log.Error("sqlite store: unwaited write failed", "invocation", r.id, "error", err)
				w.unwaited.Add(err)
			}
			continue
		}
		if err == nil && r.kind != kindOp {
			err = w.unwaited.Take()
		}
		r.done <- err
	}
}

func (w *writer) writeBatch(ctx context.Context, batch []*request) error {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Holding the write lock now, nobody can commit until we do: if someone
	// did since our last look, what we know may be stale.
	var version int64
	if err := w.dataVersion.QueryRowContext(ctx).Scan(&version); err != nil {
		return fmt.Errorf("read data_version: %w", err)
	}
	if version != w.lastVersion {
		clear(w.known)
		w.lastVersion = version
	}
	for i, r := range batch {
		var err error
		switch r.kind {
		case kindCreate:
			w.results[i], err = w.create(ctx, r)
		case kindAppend:
			w.results[i], err = w.appendEvents(ctx, r)
		case kindOp:
			w.results[i], err = w.runOp(ctx, r)
		}
		if err != nil {
			return err
		}
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.commits.Add(1)
	w.writes.Add(int64(len(batch)))
	return nil
}

// state returns what the writer knows of an invocation, asking SQLite the
// first time.
func (w *writer) state(ctx context.Context, id string) (*invState, error) {
	if st, ok := w.known[id]; ok {
		return st, nil
	}
	st := &invState{}
	var status string
	err := w.loadState.QueryRowContext(ctx, id).Scan(&status, &st.lastSeq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("load invocation %s: %w", id, err)
	default:
		st.exists = true
		st.closed = core.Status(status) != core.StatusRunning
	}
	w.known[id] = st
	return st, nil
}

func (w *writer) create(ctx context.Context, r *request) (reqErr, dbErr error) {
	st, err := w.state(ctx, r.id)
	if err != nil {
		return nil, err
	}
	if st.exists {
		return fmt.Errorf("invocation %s already exists: %w", r.id, store.ErrConflict), nil
	}
	if err := rowcodec.CheckSeqs(r.id, 0, r.events); err != nil {
		return err, nil
	}
	inv := r.inv
	status, endedAt := inv.Status, int64(0)
	var output, errJSON []byte
	if t := r.terminal; t != nil {
		status, output, errJSON, endedAt = t.Status, t.Output, t.Error, rowcodec.Nanos(t.EndedAt)
	}
	if _, err := w.insertInv.ExecContext(ctx, r.id, inv.Namespace, inv.Workflow, inv.Version, string(status),
		inv.Input, output, errJSON, rowcodec.Nanos(inv.StartedAt), endedAt, inv.Durable, inv.Parent); err != nil {
		return nil, fmt.Errorf("insert invocation %s: %w", r.id, err)
	}
	if err := w.writeEvents(ctx, r.id, 0, r.events); err != nil {
		return nil, err
	}
	*st = invState{exists: true, closed: status != core.StatusRunning, lastSeq: int64(len(r.events))}
	return nil, nil
}

func (w *writer) appendEvents(ctx context.Context, r *request) (reqErr, dbErr error) {
	st, err := w.state(ctx, r.id)
	if err != nil {
		return nil, err
	}
	reopen := r.terminal != nil && r.terminal.Reopen
	switch {
	case !st.exists:
		return fmt.Errorf("invocation %s: %w", r.id, store.ErrNotFound), nil
	case st.closed && len(r.events) > 0 && !reopen:
		return fmt.Errorf("invocation %s has ended, its history is closed: %w", r.id, store.ErrConflict), nil
	case reopen && !st.closed:
		return fmt.Errorf("invocation %s has not ended; only an ended invocation is redriven: %w", r.id, store.ErrConflict), nil
	}
	if err := rowcodec.CheckSeqs(r.id, st.lastSeq, r.events); err != nil {
		return err, nil
	}
	if err := w.writeEvents(ctx, r.id, st.lastSeq, r.events); err != nil {
		return nil, err
	}
	if t := r.terminal; t != nil {
		if _, err := w.finishInv.ExecContext(ctx, string(t.Status), t.Output, t.Error, rowcodec.Nanos(t.EndedAt), r.id); err != nil {
			return nil, fmt.Errorf("finish invocation %s: %w", r.id, err)
		}
		// Ended invocations take no more appends; the few that try are
		// refused after a lookup, and memory stays bounded by the running
		// ones.
		delete(w.known, r.id)
	}
	st.lastSeq += int64(len(r.events))
	return nil, nil
}

func (w *writer) writeEvents(ctx context.Context, id string, lastSeq int64, events []rowcodec.EncodedEvent) error {
	for i, ev := range events {
		seq := lastSeq + int64(i) + 1
		if _, err := w.insertEvent.ExecContext(ctx, id, seq, ev.Data); err != nil {
			return fmt.Errorf("insert event %d of %s: %w", seq, id, err)
		}
	}
	return nil
}

func (w *writer) runOp(ctx context.Context, r *request) (reqErr, dbErr error) {
	if _, err := w.conn.ExecContext(ctx, "SAVEPOINT op"); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	opErr := r.op(ctx, w.conn)
	if opErr != nil {
		if _, err := w.conn.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
			return nil, fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if _, err := w.conn.ExecContext(ctx, "RELEASE op"); err != nil {
		return nil, fmt.Errorf("release savepoint: %w", err)
	}
	return opErr, nil
}
