// Package sqlite is Baton's embedded store: one SQLite file in WAL mode,
// with every commit fsynced and concurrent appends group-committed by a
// single writer goroutine. It uses modernc.org/sqlite, so no cgo.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
	"github.com/batonflow/baton/store/internal/writequeue"

	moderncsqlite "modernc.org/sqlite" // also registers the "sqlite" driver
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("sqlite store: closed")

type config struct {
	log         *slog.Logger
	busyTimeout time.Duration
	maxBatch    int
	queueSize   int
	readConns   int
	// syncWAL replaces the fsync of the WAL file, for tests.
	syncWAL func(wal *os.File) error
}

// Option adjusts Open.
type Option func(*config)

// WithLogger sets where failures of unwaited writes are reported. The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process before failing (default 5s).
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithMaxBatch caps how many queued writes share one transaction
// (default 1024). Larger batches amortise the fsync further but make the
// callers at the head of the batch wait for the whole batch to be written.
func WithMaxBatch(n int) Option { return func(c *config) { c.maxBatch = n } }

// WithQueueSize sets how many writes may wait for the writer before callers
// block, unwaited ones included (default 8192).
func WithQueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// WithReadConns sets the size of the read connection pool (default 4).
func WithReadConns(n int) Option { return func(c *config) { c.readConns = n } }

// withWALSync replaces the writer's fsync of the WAL file, so that tests
// can hold it back or fail it.
func withWALSync(f func(wal *os.File) error) Option { return func(c *config) { c.syncWAL = f } }

// Store is a store.Store kept in one SQLite database file.
type Store struct {
	log     *slog.Logger
	writeDB *sql.DB
	readDB  *sql.DB
	w       *writer
	// wal is the WAL file, open for the syncer's fsyncs.
	wal *os.File
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates its
// schema to the newest version.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{
		log:         slog.Default(),
		busyTimeout: 5 * time.Second,
		maxBatch:    1024,
		queueSize:   8192,
		readConns:   4,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxBatch < 1 || cfg.queueSize < 1 || cfg.readConns < 1 {
		return nil, fmt.Errorf("sqlite store: batch size, queue size and read connections must be positive")
	}
	// The read pool opens its own connections to the file, so an in-memory
	// database would not be shared; a '?' would be taken for DSN options.
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlite store: %q is not a plain file path", path)
	}

	if err := restrictFiles(path); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}

	busyMillis := cfg.busyTimeout.Milliseconds()
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyMillis))
	common.Add("_pragma", "foreign_keys(1)")

	writeParams := url.Values{"_txlock": {"immediate"}}
	writeParams.Add("_pragma", "journal_mode(WAL)")
	// NORMAL commits without an fsync; the writer's syncer fsyncs the WAL
	// before any caller hears of the commit (see writer), so an
	// acknowledged append survives power loss, which is what the engine's
	// replay relies on, while the next batch is written meanwhile. NORMAL
	// still syncs around checkpoints and when the WAL is reused.
	writeParams.Add("_pragma", "synchronous(NORMAL)")
	for _, v := range common["_pragma"] {
		writeParams.Add("_pragma", v)
	}
	readParams := url.Values{}
	for _, v := range common["_pragma"] {
		readParams.Add("_pragma", v)
	}
	readParams.Add("_pragma", "query_only(1)")

	writeDB, err := sql.Open("sqlite", path+"?"+writeParams.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxIdleTime(0)
	writeDB.SetConnMaxLifetime(0)

	conn, err := writeDB.Conn(ctx)
	if err != nil {
		_ = writeDB.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	fail := func(err error) (*Store, error) {
		_ = conn.Close()
		_ = writeDB.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("journal mode is %q, WAL is required", mode))
	}
	if err := migrate(ctx, conn); err != nil {
		return fail(err)
	}
	// The WAL exists by now (the migration read and wrote through it) and
	// stays while the write connection is open: SQLite deletes it only
	// when the last connection closes.
	wal, err := os.OpenFile(path+"-wal", os.O_RDWR, 0)
	if err != nil {
		return fail(fmt.Errorf("open the WAL to sync it: %w", err))
	}
	syncWAL := func() error { return syncData(wal) }
	if cfg.syncWAL != nil {
		syncWAL = func() error { return cfg.syncWAL(wal) }
	}
	w, err := newWriter(ctx, conn, cfg.log, cfg.maxBatch, cfg.queueSize, syncWAL)
	if err != nil {
		_ = wal.Close()
		return fail(err)
	}

	readConnector, err := moderncsqlite.NewConnector(path + "?" + readParams.Encode())
	if err != nil {
		w.closeStatements()
		_ = wal.Close()
		return fail(err)
	}
	readDB := sql.OpenDB(barrierConnector{Connector: readConnector, durable: &w.durable})
	readDB.SetMaxOpenConns(cfg.readConns)
	readDB.SetMaxIdleConns(cfg.readConns)

	s := &Store{log: cfg.log, writeDB: writeDB, readDB: readDB, w: w, wal: wal}
	go w.run()
	return s, nil
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Commits is the number of transactions committed, each one fsync.
	Commits int64
	// Writes is the number of requests (creations, appends, other writes)
	// those transactions carried.
	Writes int64
}

// ObserveCommits implements store.CommitObserver.
func (s *Store) ObserveCommits(f func(writes int, took time.Duration)) { s.w.committed.Set(f) }

// Stats reports how well writes are being grouped: Writes/Commits is the
// mean batch size.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.w.commits.Load(), Writes: s.w.writes.Load()}
}

// Close lets the writer commit everything queued, then closes the database.
// It reports unwaited writes that failed and were not yet reported.
func (s *Store) Close() error {
	if !s.w.queue.Close() {
		return nil
	}
	<-s.w.stopped
	errs := []error{s.w.unwaited.Take()}
	s.w.closeStatements()
	errs = append(errs, s.w.conn.Close(), s.writeDB.Close(), s.readDB.Close(), s.wal.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite store: close: %w", err)
	}
	return nil
}

// submit queues a write and, when the request carries a done channel, waits
// for the commit that includes it.
func (s *Store) submit(ctx context.Context, r *request) error {
	return s.w.queue.Submit(ctx, r, r.done)
}

// CreateInvocation implements store.Store.
func (s *Store) CreateInvocation(ctx context.Context, inv *store.Invocation, events []core.Event, wait bool) error {
	row, enc, term, err := rowcodec.EncodeCreation(inv, events)
	if err != nil {
		return err
	}
	return s.submit(ctx, &request{kind: kindCreate, id: inv.ID, inv: row, events: enc, terminal: term, done: writequeue.DoneChan(wait)})
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, id string, events []core.Event, wait bool) error {
	enc, term, err := rowcodec.EncodeEvents(id, events)
	if err != nil {
		return err
	}
	return s.submit(ctx, &request{kind: kindAppend, id: id, events: enc, terminal: term, done: writequeue.DoneChan(wait)})
}

// exec runs a write that is not an append through the writer, so that the
// write connection has a single owner.
func (s *Store) exec(ctx context.Context, op func(ctx context.Context, conn *sql.Conn) error) error {
	return s.submit(ctx, &request{kind: kindOp, op: op, done: make(chan error, 1)})
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, id string) ([]core.Event, error) {
	events, err := s.history(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	if len(events) == 0 {
		// An empty history is legitimate (durability: none); a missing
		// invocation is not.
		var one int
		err := s.readDB.QueryRowContext(ctx, `SELECT 1 FROM invocations WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
	}
	return events, nil
}

const invocationColumns = `id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent`

func scanInvocation(sc rowcodec.Scanner) (*store.Invocation, error) {
	var (
		inv                    store.Invocation
		status                 string
		input, output, errJSON []byte
		startedAt, endedAt     int64
		durable                bool
	)
	if err := sc.Scan(&inv.ID, &inv.Namespace, &inv.Workflow, &inv.Version, &status, &input, &output, &errJSON,
		&startedAt, &endedAt, &durable, &inv.Parent); err != nil {
		return nil, err
	}
	inv.Status = core.Status(status)
	inv.StartedAt, inv.EndedAt, inv.Durable = rowcodec.FromNanos(startedAt), rowcodec.FromNanos(endedAt), durable
	if err := rowcodec.DecodeInvocationValues(&inv, input, output, errJSON); err != nil {
		return nil, err
	}
	return &inv, nil
}

// GetInvocation implements store.Store.
func (s *Store) GetInvocation(ctx context.Context, id string) (*store.Invocation, error) {
	row := s.readDB.QueryRowContext(ctx, `SELECT `+invocationColumns+` FROM invocations WHERE id = ?`, id)
	inv, err := scanInvocation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get invocation %s: %w", id, err)
	}
	return inv, nil
}

// ListInvocations implements store.Store.
func (s *Store) ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error) {
	var (
		where []string
		args  []any
	)
	where, args = invocationWhere(f)
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Cursor != "" {
		startedAt, id, err := rowcodec.DecodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		where, args = append(where, "(started_at, id) < (?, ?)"), append(args, startedAt, id)
	}
	limit := rowcodec.PageLimit(f.Limit)
	query := `SELECT ` + invocationColumns + ` FROM invocations`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One row more than the page tells whether another page follows.
	query += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1)

	invs, err := s.queryInvocations(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list invocations: %w", err)
	}
	next := ""
	if len(invs) > limit {
		invs = invs[:limit]
		last := invs[limit-1]
		next = rowcodec.EncodeCursor(rowcodec.Nanos(last.StartedAt), last.ID)
	}
	return invs, next, nil
}

// invocationWhere holds the conditions of f that listing and counting
// share: all but Status and Cursor.
func invocationWhere(f store.InvocationFilter) (where []string, args []any) {
	if f.Namespace != "" {
		where, args = append(where, "namespace = ?"), append(args, f.Namespace)
	}
	if f.Workflow != "" {
		where, args = append(where, "workflow = ?"), append(args, f.Workflow)
	}
	if f.Version != "" {
		where, args = append(where, "version = ?"), append(args, f.Version)
	}
	if f.IDPrefix != "" {
		// substr rather than LIKE: an id may hold % or _.
		where, args = append(where, "substr(id, 1, ?) = ?"), append(args, len(f.IDPrefix), f.IDPrefix)
	}
	if !f.StartedAfter.IsZero() {
		where, args = append(where, "started_at >= ?"), append(args, rowcodec.Nanos(f.StartedAfter))
	}
	if !f.StartedBefore.IsZero() {
		where, args = append(where, "started_at < ?"), append(args, rowcodec.Nanos(f.StartedBefore))
	}
	return where, args
}

// CountInvocations implements store.InvocationCounter.
func (s *Store) CountInvocations(ctx context.Context, f store.InvocationFilter) (map[core.Status]int, error) {
	where, args := invocationWhere(f)
	query := `SELECT status, count(*) FROM invocations`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.readDB.QueryContext(ctx, query+` GROUP BY status`, args...)
	if err != nil {
		return nil, fmt.Errorf("count invocations: %w", err)
	}
	defer rows.Close()
	counts := map[core.Status]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count invocations: %w", err)
		}
		counts[core.Status(status)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count invocations: %w", err)
	}
	return counts, nil
}

func (s *Store) queryInvocations(ctx context.Context, query string, args ...any) ([]*store.Invocation, error) {
	rows, err := s.readDB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return rowcodec.Collect(rows, scanInvocation)
}

// RunningInvocations implements store.Store.
func (s *Store) RunningInvocations(ctx context.Context) ([]*store.Invocation, error) {
	invs, err := s.queryInvocations(ctx, `SELECT `+invocationColumns+` FROM invocations
		WHERE status = ? AND durable ORDER BY started_at, id`, string(core.StatusRunning))
	if err != nil {
		return nil, fmt.Errorf("running invocations: %w", err)
	}
	return invs, nil
}

// PutWorkflow implements store.Store.
func (s *Store) PutWorkflow(ctx context.Context, wf *store.Workflow) error {
	if wf.Name == "" || wf.Version == "" {
		return rowcodec.BadRequest("workflow name and version must not be empty")
	}
	createdAt := wf.CreatedAt
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	source := wf.Source
	if source == nil {
		source = []byte{}
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var format string
		var existing []byte
		err := conn.QueryRowContext(ctx, `SELECT format, source FROM workflows WHERE namespace = ? AND name = ? AND version = ?`,
			wf.Namespace, wf.Name, wf.Version).Scan(&format, &existing)
		switch {
		case err == nil:
			if format == wf.Format && bytes.Equal(existing, source) {
				return nil
			}
			return fmt.Errorf("workflow %s/%s version %s exists with other content: %w", wf.Namespace, wf.Name, wf.Version, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("put workflow %s/%s@%s: %w", wf.Namespace, wf.Name, wf.Version, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO workflows (namespace, name, version, format, source, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			wf.Namespace, wf.Name, wf.Version, wf.Format, source, rowcodec.Nanos(createdAt)); err != nil {
			return fmt.Errorf("put workflow %s/%s@%s: %w", wf.Namespace, wf.Name, wf.Version, err)
		}
		return nil
	})
}

const workflowColumns = `namespace, name, version, format, source, created_at`

func scanWorkflow(sc rowcodec.Scanner) (*store.Workflow, error) {
	var wf store.Workflow
	var createdAt int64
	if err := sc.Scan(&wf.Namespace, &wf.Name, &wf.Version, &wf.Format, &wf.Source, &createdAt); err != nil {
		return nil, err
	}
	wf.CreatedAt = rowcodec.FromNanos(createdAt)
	return &wf, nil
}

// GetWorkflow implements store.Store.
func (s *Store) GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error) {
	var row *sql.Row
	if version == "" {
		row = s.readDB.QueryRowContext(ctx, `SELECT `+workflowColumns+` FROM workflows
			WHERE namespace = ? AND name = ? ORDER BY ord DESC LIMIT 1`, namespace, name)
	} else {
		row = s.readDB.QueryRowContext(ctx, `SELECT `+workflowColumns+` FROM workflows
			WHERE namespace = ? AND name = ? AND version = ?`, namespace, name, version)
	}
	wf, err := scanWorkflow(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("workflow %s/%s@%s: %w", namespace, name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get workflow %s/%s@%s: %w", namespace, name, version, err)
	}
	return wf, nil
}

// ListWorkflows implements store.Store.
func (s *Store) ListWorkflows(ctx context.Context) ([]*store.Workflow, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT `+workflowColumns+` FROM workflows ORDER BY namespace, name, ord`)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	defer rows.Close()
	wfs, err := rowcodec.Collect(rows, scanWorkflow)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return wfs, nil
}

// DeleteWorkflow implements store.Store.
func (s *Store) DeleteWorkflow(ctx context.Context, namespace, name, version string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		query, args := `DELETE FROM workflows WHERE namespace = ? AND name = ?`, []any{namespace, name}
		if version != "" {
			query, args = query+` AND version = ?`, append(args, version)
		}
		return execChanging(ctx, conn, fmt.Sprintf("delete workflow %s/%s@%s", namespace, name, version),
			fmt.Sprintf("workflow %s/%s@%s", namespace, name, version), store.ErrNotFound, query, args...)
	})
}

// PutFunction implements store.Store. Like workflow versions, function
// versions are immutable: the same spec again succeeds, another one
// conflicts.
func (s *Store) PutFunction(ctx context.Context, fn *store.Function) error {
	if fn.Name == "" || fn.Version == "" {
		return rowcodec.BadRequest("function name and version must not be empty")
	}
	ns := functionNamespace(fn.Namespace)
	createdAt := fn.CreatedAt
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	spec := fn.Spec
	if spec == nil {
		spec = []byte{}
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var existing []byte
		err := conn.QueryRowContext(ctx, `SELECT spec FROM functions WHERE namespace = ? AND name = ? AND version = ?`,
			ns, fn.Name, fn.Version).Scan(&existing)
		switch {
		case err == nil:
			if bytes.Equal(existing, spec) {
				return nil
			}
			return fmt.Errorf("function %s/%s version %s exists with another spec: %w", ns, fn.Name, fn.Version, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("put function %s/%s@%s: %w", ns, fn.Name, fn.Version, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO functions (namespace, name, version, spec, created_at) VALUES (?, ?, ?, ?, ?)`,
			ns, fn.Name, fn.Version, spec, rowcodec.Nanos(createdAt)); err != nil {
			return fmt.Errorf("put function %s/%s@%s: %w", ns, fn.Name, fn.Version, err)
		}
		return nil
	})
}

// functionNamespace is the namespace a function is stored under.
func functionNamespace(ns string) string {
	if ns == "" {
		return store.FunctionNamespace
	}
	return ns
}

const functionColumns = `namespace, name, version, spec, created_at`

func scanFunction(sc rowcodec.Scanner) (*store.Function, error) {
	var fn store.Function
	var createdAt int64
	if err := sc.Scan(&fn.Namespace, &fn.Name, &fn.Version, &fn.Spec, &createdAt); err != nil {
		return nil, err
	}
	fn.CreatedAt = rowcodec.FromNanos(createdAt)
	return &fn, nil
}

// GetFunction implements store.Store.
func (s *Store) GetFunction(ctx context.Context, namespace, name, version string) (*store.Function, error) {
	ns := functionNamespace(namespace)
	var row *sql.Row
	if version == "" {
		row = s.readDB.QueryRowContext(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = ? AND name = ? ORDER BY ord DESC LIMIT 1`, ns, name)
	} else {
		row = s.readDB.QueryRowContext(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = ? AND name = ? AND version = ?`, ns, name, version)
	}
	fn, err := scanFunction(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("function %s/%s@%s: %w", ns, name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get function %s/%s@%s: %w", ns, name, version, err)
	}
	return fn, nil
}

// ListFunctions implements store.Store.
func (s *Store) ListFunctions(ctx context.Context, namespace string) ([]*store.Function, error) {
	var rows *sql.Rows
	var err error
	if namespace == "" {
		rows, err = s.readDB.QueryContext(ctx, `SELECT `+functionColumns+` FROM functions ORDER BY namespace, name, ord`)
	} else {
		rows, err = s.readDB.QueryContext(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = ? ORDER BY name, ord`, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	defer rows.Close()
	fns, err := rowcodec.Collect(rows, scanFunction)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	return fns, nil
}

// DeleteFunction implements store.Store.
func (s *Store) DeleteFunction(ctx context.Context, namespace, name, version string) error {
	ns := functionNamespace(namespace)
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		query, args := `DELETE FROM functions WHERE namespace = ? AND name = ?`, []any{ns, name}
		if version != "" {
			query, args = query+` AND version = ?`, append(args, version)
		}
		return execChanging(ctx, conn, fmt.Sprintf("delete function %s/%s@%s", ns, name, version),
			fmt.Sprintf("function %s/%s@%s", ns, name, version), store.ErrNotFound, query, args...)
	})
}

// execChanging runs a statement that must change a row (a delete by key,
// an insert that must not meet an existing one): none, wrapped with
// subject, when it changed nothing. op names the statement in other
// errors.
func execChanging(ctx context.Context, conn *sql.Conn, op, subject string, none error, query string, args ...any) error {
	res, err := conn.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", subject, none)
	}
	return nil
}

// PendingTimers implements store.PendingTimers.
func (s *Store) PendingTimers(ctx context.Context) (map[string]time.Time, error) {
	timers, err := s.pendingTimers(ctx)
	if err != nil {
		return nil, fmt.Errorf("pending timers: %w", err)
	}
	return timers, nil
}
