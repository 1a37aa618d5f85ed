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
	// key is the invocation's key in history_log.
	key int64
}

// writer owns the only write connection. It writes queued requests into
// one transaction and commits once, so concurrent appends share a single
// fsync (group commit).
//
// The fsync runs beside the writer. The write connection commits with
// synchronous=NORMAL, which writes the transaction to the WAL without
// syncing it, and hands the batch to the syncer goroutine, which fsyncs
// the WAL and only then answers the batch's callers. While the syncer
// waits for the disk, the writer opens the next transaction and inserts
// into it whatever arrives, and commits it as soon as the fsync is done:
// one fsync at a time, as before, but the rows of the next batch are
// written during it instead of after it. SQLite's WAL keeps a committed
// prefix of transactions whatever a crash cuts off (frames carry
// cumulative checksums), and an fsync covers every frame written before
// it, so an answered write survives any crash, as with synchronous=FULL.
// Readers could see a transaction before its fsync; the read pool's
// connections therefore hold back every result until what they may have
// seen is on disk (see durability).
type writer struct {
	conn     *sql.Conn
	log      *slog.Logger
	maxBatch int
	queue    *writequeue.Queue[*request]
	stopped  chan struct{}
	// ctx is what the writer's statements run under: not the callers'
	// contexts, because writes must complete whatever happens to those (a
	// waiter that gives up does not withdraw its write).
	ctx context.Context

	// syncWAL makes every WAL frame written so far durable.
	syncWAL func() error
	// toSync carries finished batches, in commit order, to the syncer;
	// sent counts them and synced counts those the syncer is done with,
	// signalling each step on syncedNote.
	toSync     chan *batch
	sent       int64
	synced     atomic.Int64
	syncedNote chan struct{}
	syncerDone chan struct{}
	durable    durability

	// begin and commit are prepared like the rest: every batch runs them,
	// at one invocation in flight every step.
	beginStmt   *sql.Stmt
	commit      *sql.Stmt
	loadState   *sql.Stmt
	insertRow   *sql.Stmt
	insertInv   *sql.Stmt
	finishInv   *sql.Stmt
	dataVersion *sql.Stmt
	maxKey      *sql.Stmt
	known       map[string]*invState
	lastVersion int64
	// lastKey is the highest invocation key given; read again whenever
	// another connection may have created invocations.
	lastKey int64
	// frame is reused to lay out each append's row.
	frame []byte
	// held are the unwaited appends of the open transaction not yet
	// written, by invocation and in arrival order (see heldRow).
	held      map[string]*heldRow
	heldOrder []*heldRow
	linger    *time.Timer
	commits   atomic.Int64
	writes    atomic.Int64
	unwaited  writequeue.Unwaited
	committed writequeue.CommitHook
}

const (
	// The last seq is history_log's when it has rows, which follow any
	// the invocation has in the layout before migration 9.
	sqlLoadState = `SELECT status, ikey, coalesce(
			(SELECT seq + n - 1 FROM history_log WHERE ikey = invocations.ikey ORDER BY seq DESC LIMIT 1),
			(SELECT max(seq) FROM history WHERE invocation_id = ?1),
			0)
		FROM invocations WHERE id = ?1`
	sqlInsertRow = `INSERT INTO history_log (ikey, seq, n, events) VALUES (?, ?, ?, ?)`
	sqlInsertInv = `INSERT INTO invocations
		(id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent, ikey)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlMaxKey    = `SELECT max(ikey) FROM invocations`
	sqlFinishInv = `UPDATE invocations SET status = ?, output = ?, error = ?, ended_at = ? WHERE id = ?`
)

// syncDepth bounds the finished batches waiting for the syncer. One
// committed batch at a time is with it; the others are batches that
// failed, which need no fsync but are answered in order.
const syncDepth = 64

func newWriter(ctx context.Context, conn *sql.Conn, log *slog.Logger, maxBatch, queueSize int, syncWAL func() error) (*writer, error) {
	w := &writer{
		conn:       conn,
		log:        log,
		maxBatch:   maxBatch,
		queue:      writequeue.New[*request](queueSize, ErrClosed),
		stopped:    make(chan struct{}),
		syncWAL:    syncWAL,
		toSync:     make(chan *batch, syncDepth),
		syncedNote: make(chan struct{}, 1),
		syncerDone: make(chan struct{}),
		ctx:        context.WithoutCancel(ctx),
		known:      make(map[string]*invState),
		held:       make(map[string]*heldRow),
		linger:     time.NewTimer(time.Hour),
	}
	w.linger.Stop()
	w.durable.advanced = make(chan struct{})
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.beginStmt, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.loadState, sqlLoadState},
		{&w.insertRow, sqlInsertRow},
		{&w.insertInv, sqlInsertInv},
		{&w.finishInv, sqlFinishInv},
		{&w.dataVersion, "PRAGMA data_version"},
		{&w.maxKey, sqlMaxKey},
	} {
		stmt, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			w.closeStatements()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = stmt
	}
	var err error
	if w.lastKey, err = maxInvocationKey(ctx, w.maxKey); err != nil {
		w.closeStatements()
		return nil, err
	}
	return w, nil
}

func (w *writer) closeStatements() {
	for _, s := range []*sql.Stmt{w.beginStmt, w.commit, w.loadState, w.insertRow, w.insertInv, w.finishInv, w.dataVersion, w.maxKey} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// run is the writer goroutine. It returns once the queue is closed and
// drained and the syncer has answered everything.
func (w *writer) run() {
	defer close(w.stopped)
	go w.syncer()
	requests := w.queue.Requests()
	var (
		open     *batch // the transaction being filled
		lingered bool   // open holds only unwaited writes and has waited for more long enough
	)
	for requests != nil || open != nil || w.sent > w.synced.Load() {
		if open != nil && open.err != nil {
			// A failed transaction needs no fsync: answer it now.
			w.ship(open)
			open, lingered = nil, false
			w.linger.Stop()
			continue
		}
		idle := w.sent == w.synced.Load()
		if open != nil && idle && (open.waited || lingered || requests == nil || len(open.reqs) >= w.maxBatch) {
			requests = w.fillNow(open, requests)
			w.commitBatch(open)
			w.ship(open)
			open, lingered = nil, false
			w.linger.Stop()
			continue
		}
		in := requests
		if open != nil && len(open.reqs) >= w.maxBatch {
			in = nil // full: wait for the syncer
		}
		var lingerC <-chan time.Time
		if open != nil && !open.waited && !lingered {
			lingerC = w.linger.C
		}
		select {
		case r, ok := <-in:
			if !ok {
				requests = nil
				continue
			}
			if open == nil {
				open = w.begin()
				if r.done == nil {
					w.linger.Reset(unwaitedLinger)
				}
			}
			w.add(open, r)
			// Whatever else is queued goes in on the same wake-up.
			requests = w.fillNow(open, requests)
		case <-w.syncedNote:
		case <-lingerC:
			lingered = true
		}
	}
	close(w.toSync)
	<-w.syncerDone
}

// unwaitedLinger is how long a batch of unwaited writes alone waits for a
// waited write to share its commit. An engine records that a call was
// dispatched without waiting and, a moment later, waits for its result:
// committing the first alone would make the second wait for that fsync
// and then pay its own.
const unwaitedLinger = 2 * time.Millisecond

// fillNow adds to the open batch whatever is queued already, without
// waiting; it returns nil once the queue is closed and drained.
func (w *writer) fillNow(open *batch, requests <-chan *request) <-chan *request {
	for len(open.reqs) < w.maxBatch && open.err == nil {
		select {
		case r, ok := <-requests:
			if !ok {
				return nil
			}
			w.add(open, r)
		default:
			return requests
		}
	}
	return requests
}

// ship hands a finished batch to the syncer.
func (w *writer) ship(b *batch) {
	if len(w.known) > maxKnownInvocations {
		clear(w.known)
	}
	w.sent++
	w.toSync <- b
}

// batch is one transaction's requests and their outcomes.
type batch struct {
	reqs    []*request
	results []error
	// err failed the transaction as a whole: it was rolled back (or never
	// began) and every request in it fails.
	err error
	// committed is set once COMMIT succeeded: the syncer must fsync.
	committed bool
	// waited is set when a caller waits for the batch.
	waited bool
	// visible is the batch's number in durability.visible.
	visible uint64
	began   time.Time
}

// begin opens a transaction for a new batch.
func (w *writer) begin() *batch {
	b := &batch{began: time.Now()}
	// After a failed fsync nothing more is written: it could not be
	// promised durable.
	if b.err = w.durable.failed(); b.err != nil {
		return b
	}
	if _, err := w.beginStmt.ExecContext(w.ctx); err != nil {
		// No transaction to roll back.
		b.err = fmt.Errorf("begin: %w", err)
		return b
	}
	// Holding the write lock now, nobody can commit until we do: if someone
	// did since our last look, what we know may be stale.
	var version int64
	if err := w.dataVersion.QueryRowContext(w.ctx).Scan(&version); err != nil {
		w.fail(b, fmt.Errorf("read data_version: %w", err))
		return b
	}
	if version != w.lastVersion {
		clear(w.known)
		w.lastVersion = version
		key, err := maxInvocationKey(w.ctx, w.maxKey)
		if err != nil {
			w.fail(b, err)
			return b
		}
		w.lastKey = max(w.lastKey, key)
	}
	return b
}

// add writes one request into the open transaction. Errors that concern
// the request alone (unknown invocation, conflicting seq) are detected
// before it writes anything, so they fail only it; an error from SQLite
// itself fails the whole batch.
func (w *writer) add(b *batch, r *request) {
	b.reqs = append(b.reqs, r)
	b.results = append(b.results, nil)
	if r.done != nil {
		b.waited = true
	}
	if b.err != nil {
		return
	}
	var reqErr, err error
	switch r.kind {
	case kindCreate:
		reqErr, err = w.create(w.ctx, r)
	case kindAppend:
		reqErr, err = w.appendEvents(w.ctx, r)
	case kindOp:
		// An op may read history_log: it finds every append queued
		// before it.
		if err = w.writeHeld(w.ctx); err == nil {
			reqErr, err = w.runOp(w.ctx, r)
		}
	}
	b.results[len(b.results)-1] = reqErr
	if err != nil {
		w.fail(b, err)
	}
}

// fail rolls back the batch's transaction.
func (w *writer) fail(b *batch, err error) {
	if _, rbErr := w.conn.ExecContext(w.ctx, "ROLLBACK"); rbErr != nil {
		w.log.Error("sqlite store: rollback failed", "error", rbErr)
	}
	b.err = err
	// The batch changed states that the rollback undid.
	clear(w.known)
	w.dropHeld()
}

// commitBatch commits the open transaction without waiting for its fsync.
func (w *writer) commitBatch(b *batch) {
	if b.err != nil {
		return
	}
	if err := w.writeHeld(w.ctx); err != nil {
		w.fail(b, err)
		return
	}
	// From here on readers may see the batch.
	b.visible = w.durable.publish()
	if _, err := w.commit.ExecContext(w.ctx); err != nil {
		w.fail(b, fmt.Errorf("commit: %w", err))
		return
	}
	b.committed = true
	w.commits.Add(1)
	w.writes.Add(int64(len(b.reqs)))
}

// syncer is the goroutine that makes finished batches durable and answers
// their callers, in order.
func (w *writer) syncer() {
	defer close(w.syncerDone)
	for b := range w.toSync {
		var syncErr error
		if b.committed {
			syncErr = w.durable.failed()
			if syncErr == nil {
				if err := w.syncWAL(); err != nil {
					// What the failed fsync covered may or may not be on
					// disk, and the kernel may have dropped the pages it
					// could not write: nothing committed from now on can
					// be promised durable.
					syncErr = fmt.Errorf("%w: %w", errSyncFailed, err)
					w.log.Error("sqlite store: WAL fsync failed; the store refuses writes from now on", "error", err)
				}
			}
		}
		w.durable.advance(b.visible, syncErr)
		// Let the writer commit the next batch before the callers of
		// this one are woken.
		w.synced.Add(1)
		select {
		case w.syncedNote <- struct{}{}:
		default:
		}
		w.answer(b, syncErr)
	}
}

// answer reports a batch's outcome to its callers.
func (w *writer) answer(b *batch, syncErr error) {
	w.committed.Committed(len(b.reqs), b.began)
	batchErr := b.err
	if batchErr == nil && syncErr != nil {
		batchErr = syncErr
	}
	if batchErr != nil {
		batchErr = fmt.Errorf("sqlite store: write batch: %w", batchErr)
	}
	for i, r := range b.reqs {
		err := b.results[i]
		if batchErr != nil {
			err = batchErr
		}
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

// state returns what the writer knows of an invocation, asking SQLite the
// first time.
func (w *writer) state(ctx context.Context, id string) (*invState, error) {
	if st, ok := w.known[id]; ok {
		return st, nil
	}
	st := &invState{}
	var status string
	err := w.loadState.QueryRowContext(ctx, id).Scan(&status, &st.key, &st.lastSeq)
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
	// A key is never given twice, even when its batch rolls back.
	w.lastKey++
	key := w.lastKey
	if _, err := w.insertInv.ExecContext(ctx, r.id, inv.Namespace, inv.Workflow, inv.Version, string(status),
		inv.Input, output, errJSON, rowcodec.Nanos(inv.StartedAt), endedAt, inv.Durable, inv.Parent, key); err != nil {
		return nil, fmt.Errorf("insert invocation %s: %w", r.id, err)
	}
	if err := w.writeEvents(ctx, r.id, key, 0, r.events); err != nil {
		return nil, err
	}
	*st = invState{exists: true, closed: status != core.StatusRunning, lastSeq: int64(len(r.events)), key: key}
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
	after, events := st.lastSeq, r.events
	if h := w.held[r.id]; h != nil {
		// The same invocation's unwaited append, earlier in this
		// transaction, shares this one's row.
		w.unhold(h)
		after, events = h.after, append(h.events, r.events...)
	}
	if r.done == nil && r.terminal == nil && len(events) > 0 {
		w.hold(r.id, st.key, after, events)
		st.lastSeq += int64(len(r.events))
		return nil, nil
	}
	if err := w.writeEvents(ctx, r.id, st.key, after, events); err != nil {
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

// heldRow is an unwaited append, already checked and numbered, whose row
// waits for the next append to the same invocation in the same
// transaction. The engine records a call's dispatch without waiting and,
// a moment later, waits for its result: held, the two take one row (one
// insert, one index entry) instead of two. Whatever is still held is
// written before the transaction commits and before an op runs, so the
// transaction holds exactly what it held before, in fewer rows.
type heldRow struct {
	id  string
	key int64
	// after is the invocation's last seq before the row's first event.
	after  int64
	events []rowcodec.EncodedEvent
	// gone is set once the row has been taken into a later one.
	gone bool
}

func (w *writer) hold(id string, key, after int64, events []rowcodec.EncodedEvent) {
	h := &heldRow{id: id, key: key, after: after, events: append([]rowcodec.EncodedEvent(nil), events...)}
	w.held[id] = h
	w.heldOrder = append(w.heldOrder, h)
}

func (w *writer) unhold(h *heldRow) {
	h.gone = true
	delete(w.held, h.id)
}

// writeHeld writes every held row, in the order the appends came.
func (w *writer) writeHeld(ctx context.Context) error {
	defer w.dropHeld()
	for _, h := range w.heldOrder {
		if h.gone {
			continue
		}
		if err := w.writeEvents(ctx, h.id, h.key, h.after, h.events); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) dropHeld() {
	clear(w.held)
	clear(w.heldOrder)
	w.heldOrder = w.heldOrder[:0]
}

// writeEvents writes one append's events as one history_log row.
func (w *writer) writeEvents(ctx context.Context, id string, key, lastSeq int64, events []rowcodec.EncodedEvent) error {
	if len(events) == 0 {
		return nil
	}
	w.frame = appendFramed(w.frame[:0], events)
	if _, err := w.insertRow.ExecContext(ctx, key, lastSeq+1, len(events), w.frame); err != nil {
		return fmt.Errorf("insert events %d to %d of %s: %w", lastSeq+1, lastSeq+int64(len(events)), id, err)
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
