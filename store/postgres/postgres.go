// Package postgres is Baton's store for several engine replicas sharing one
// PostgreSQL database, over pgx's connection pool. Tables live in the
// connection's search_path; the schema is created and migrated on Open.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
	"github.com/batonflow/baton/store/internal/writequeue"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("postgres store: closed")

type config struct {
	log       *slog.Logger
	maxBatch  int
	queueSize int
	configure func(*pgxpool.Config)
}

// Option adjusts Open.
type Option func(*config)

// WithLogger sets where failures of unwaited writes are reported. The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMaxBatch caps how many queued writes share one transaction
// (default 512).
func WithMaxBatch(n int) Option { return func(c *config) { c.maxBatch = n } }

// WithQueueSize sets how many writes may wait for the writer before callers
// block, unwaited ones included (default 8192).
func WithQueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// WithPoolConfig lets the caller adjust the pool configuration parsed from
// the DSN (sizes, AfterConnect hooks, TLS) before the pool is created.
func WithPoolConfig(fn func(*pgxpool.Config)) Option { return func(c *config) { c.configure = fn } }

// Store is a store.Store kept in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	w    *writer
	// partitions is the cluster's partition count (see cluster.go).
	partitions int
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (postgres://... or key=value)
// and migrates the schema. Parameters that pgx does not know, such as
// search_path, are sent to the server as run-time settings.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{log: slog.Default(), maxBatch: 512, queueSize: 8192}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxBatch < 1 || cfg.queueSize < 1 {
		return nil, fmt.Errorf("postgres store: batch and queue sizes must be positive")
	}
	poolCfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: parse DSN: %w", err)
	}
	// A replica frozen inside a transaction (SIGSTOP, a VM pause) holds
	// its partition's share lock and would keep a takeover waiting; the
	// server ends such a session and its transaction instead.
	if _, set := poolCfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		poolCfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "5000"
	}
	if cfg.configure != nil {
		cfg.configure(poolCfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	partitions, err := loadPartitions(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	w := &writer{
		pool:     pool,
		log:      cfg.log,
		maxBatch: cfg.maxBatch,
		queue:    writequeue.New[*request](cfg.queueSize, ErrClosed),
		stopped:  make(chan struct{}),
	}
	w.partitions = partitions
	go w.run()
	return &Store{pool: pool, w: w, partitions: partitions}, nil
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Commits is the number of transactions the writer committed.
	Commits int64
	// Writes is the number of creations and appends they carried.
	Writes int64
}

// ObserveCommits implements store.CommitObserver.
func (s *Store) ObserveCommits(f func(writes int, took time.Duration)) { s.w.committed.Set(f) }

// Stats reports how well appends are being grouped.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.w.commits.Load(), Writes: s.w.writes.Load()}
}

// Close lets the writer commit everything queued, then closes the pool. It
// reports unwaited writes that failed and were not yet reported.
func (s *Store) Close() error {
	if !s.w.queue.Close() {
		return nil
	}
	<-s.w.stopped
	s.pool.Close()
	if err := s.w.unwaited.Take(); err != nil {
		return fmt.Errorf("postgres store: close: %w", err)
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
	return s.submit(ctx, &request{create: true, id: inv.ID, inv: row, events: enc, terminal: term, done: writequeue.DoneChan(wait)})
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, id string, events []core.Event, wait bool) error {
	enc, term, err := rowcodec.EncodeEvents(id, events)
	if err != nil {
		return err
	}
	return s.submit(ctx, &request{id: id, events: enc, terminal: term, done: writequeue.DoneChan(wait)})
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, id string) ([]core.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, event FROM history WHERE invocation_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	var events []core.Event
	var seq int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
		ev, err := rowcodec.DecodeEvent(seq, data)
		if err != nil {
			return fmt.Errorf("event %d: %w", seq, err)
		}
		events = append(events, ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	if len(events) == 0 {
		// An empty history is legitimate (durability: none); a missing
		// invocation is not.
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invocations WHERE id = $1)`, id).Scan(&exists); err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		if !exists {
			return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
		}
	}
	return events, nil
}

const invocationColumns = `id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent`

func scanInvocation(row rowcodec.Scanner) (*store.Invocation, error) {
	var (
		inv                    store.Invocation
		status                 string
		input, output, errJSON []byte
		endedAt                *time.Time
	)
	if err := row.Scan(&inv.ID, &inv.Namespace, &inv.Workflow, &inv.Version, &status, &input, &output, &errJSON,
		&inv.StartedAt, &endedAt, &inv.Durable, &inv.Parent); err != nil {
		return nil, err
	}
	inv.Status = core.Status(status)
	inv.StartedAt = inv.StartedAt.UTC()
	if endedAt != nil {
		inv.EndedAt = endedAt.UTC()
	}
	if err := rowcodec.DecodeInvocationValues(&inv, input, output, errJSON); err != nil {
		return nil, err
	}
	return &inv, nil
}

// GetInvocation implements store.Store.
func (s *Store) GetInvocation(ctx context.Context, id string) (*store.Invocation, error) {
	inv, err := scanInvocation(s.pool.QueryRow(ctx, `SELECT `+invocationColumns+` FROM invocations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get invocation %s: %w", id, err)
	}
	return inv, nil
}

func (s *Store) queryInvocations(ctx context.Context, query string, args ...any) ([]*store.Invocation, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return rowcodec.Collect(rows, scanInvocation)
}

// ListInvocations implements store.Store.
func (s *Store) ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = invocationWhere(f, arg)
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.Cursor != "" {
		// Microseconds are timestamptz's precision, so the cursor is exact.
		micros, id, err := rowcodec.DecodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		startedAt := time.UnixMicro(micros).UTC()
		where = append(where, "(started_at, id) < ("+arg(startedAt)+", "+arg(id)+")")
	}
	limit := rowcodec.PageLimit(f.Limit)
	query := `SELECT ` + invocationColumns + ` FROM invocations`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One row more than the page tells whether another page follows.
	query += ` ORDER BY started_at DESC, id DESC LIMIT ` + arg(limit+1)

	invs, err := s.queryInvocations(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list invocations: %w", err)
	}
	next := ""
	if len(invs) > limit {
		invs = invs[:limit]
		last := invs[limit-1]
		next = rowcodec.EncodeCursor(last.StartedAt.UnixMicro(), last.ID)
	}
	return invs, next, nil
}

// invocationWhere holds the conditions of f that listing and counting
// share: all but Status and Cursor. arg binds a value and names its
// placeholder.
func invocationWhere(f store.InvocationFilter, arg func(any) string) (where []string) {
	if f.Namespace != "" {
		where = append(where, "namespace = "+arg(f.Namespace))
	}
	if f.Workflow != "" {
		where = append(where, "workflow = "+arg(f.Workflow))
	}
	if f.Version != "" {
		where = append(where, "version = "+arg(f.Version))
	}
	if f.IDPrefix != "" {
		// starts_with rather than LIKE: an id may hold % or _.
		where = append(where, "starts_with(id, "+arg(f.IDPrefix)+")")
	}
	if !f.StartedAfter.IsZero() {
		where = append(where, "started_at >= "+arg(f.StartedAfter.UTC()))
	}
	if !f.StartedBefore.IsZero() {
		where = append(where, "started_at < "+arg(f.StartedBefore.UTC()))
	}
	return where
}

// CountInvocations implements store.InvocationCounter.
func (s *Store) CountInvocations(ctx context.Context, f store.InvocationFilter) (map[core.Status]int, error) {
	var args []any
	where := invocationWhere(f, func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	})
	query := `SELECT status, count(*) FROM invocations`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, query+` GROUP BY status`, args...)
	if err != nil {
		return nil, fmt.Errorf("count invocations: %w", err)
	}
	defer rows.Close()
	counts := map[core.Status]int{}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count invocations: %w", err)
		}
		counts[core.Status(status)] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count invocations: %w", err)
	}
	return counts, nil
}

// RunningInvocations implements store.Store. With several replicas it
// returns the running invocations of all of them.
func (s *Store) RunningInvocations(ctx context.Context) ([]*store.Invocation, error) {
	invs, err := s.queryInvocations(ctx, `SELECT `+invocationColumns+` FROM invocations
		WHERE status = $1 AND durable ORDER BY started_at, id`, string(core.StatusRunning))
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
	// Insert-or-compare in one statement, so that two replicas storing the
	// same version at once cannot both think they created it differently.
	var inserted bool
	var format string
	var existing []byte
	err := s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO workflows (namespace, name, version, format, source, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (namespace, name, version) DO NOTHING
			RETURNING format, source)
		SELECT true, format, source FROM ins
		UNION ALL
		SELECT false, format, source FROM workflows WHERE namespace = $1 AND name = $2 AND version = $3
		LIMIT 1`,
		wf.Namespace, wf.Name, wf.Version, wf.Format, source, createdAt).Scan(&inserted, &format, &existing)
	if err != nil {
		return fmt.Errorf("put workflow %s/%s@%s: %w", wf.Namespace, wf.Name, wf.Version, err)
	}
	if !inserted && (format != wf.Format || !bytes.Equal(existing, source)) {
		return fmt.Errorf("workflow %s/%s version %s exists with other content: %w", wf.Namespace, wf.Name, wf.Version, store.ErrConflict)
	}
	return nil
}

const workflowColumns = `namespace, name, version, format, source, created_at`

func scanWorkflow(row rowcodec.Scanner) (*store.Workflow, error) {
	var wf store.Workflow
	if err := row.Scan(&wf.Namespace, &wf.Name, &wf.Version, &wf.Format, &wf.Source, &wf.CreatedAt); err != nil {
		return nil, err
	}
	wf.CreatedAt = wf.CreatedAt.UTC()
	return &wf, nil
}

// GetWorkflow implements store.Store.
func (s *Store) GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error) {
	var row pgx.Row
	if version == "" {
		row = s.pool.QueryRow(ctx, `SELECT `+workflowColumns+` FROM workflows
			WHERE namespace = $1 AND name = $2 ORDER BY ord DESC LIMIT 1`, namespace, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+workflowColumns+` FROM workflows
			WHERE namespace = $1 AND name = $2 AND version = $3`, namespace, name, version)
	}
	wf, err := scanWorkflow(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("workflow %s/%s@%s: %w", namespace, name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get workflow %s/%s@%s: %w", namespace, name, version, err)
	}
	return wf, nil
}

// ListWorkflows implements store.Store.
func (s *Store) ListWorkflows(ctx context.Context) ([]*store.Workflow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+workflowColumns+` FROM workflows ORDER BY namespace, name, ord`)
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

// inserted is the outcome of an INSERT ... ON CONFLICT DO NOTHING of one
// row: a row already there under its key is store.ErrConflict.
func inserted(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s exists: %w", what, store.ErrConflict)
	}
	return nil
}

func deleted(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// DeleteWorkflow implements store.Store.
func (s *Store) DeleteWorkflow(ctx context.Context, namespace, name, version string) error {
	what := fmt.Sprintf("workflow %s/%s@%s", namespace, name, version)
	if version == "" {
		tag, err := s.pool.Exec(ctx, `DELETE FROM workflows WHERE namespace = $1 AND name = $2`, namespace, name)
		return deleted(tag, err, what)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM workflows WHERE namespace = $1 AND name = $2 AND version = $3`, namespace, name, version)
	return deleted(tag, err, what)
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
	var inserted bool
	var existing []byte
	err := s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO functions (namespace, name, version, spec, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (namespace, name, version) DO NOTHING
			RETURNING spec)
		SELECT true, spec FROM ins
		UNION ALL
		SELECT false, spec FROM functions WHERE namespace = $1 AND name = $2 AND version = $3
		LIMIT 1`,
		ns, fn.Name, fn.Version, spec, createdAt).Scan(&inserted, &existing)
	if err != nil {
		return fmt.Errorf("put function %s/%s@%s: %w", ns, fn.Name, fn.Version, err)
	}
	if !inserted && !bytes.Equal(existing, spec) {
		return fmt.Errorf("function %s/%s version %s exists with another spec: %w", ns, fn.Name, fn.Version, store.ErrConflict)
	}
	return nil
}

// functionNamespace is the namespace a function is stored under.
func functionNamespace(ns string) string {
	if ns == "" {
		return store.FunctionNamespace
	}
	return ns
}

const functionColumns = `namespace, name, version, spec, created_at`

func scanFunction(row rowcodec.Scanner) (*store.Function, error) {
	var fn store.Function
	if err := row.Scan(&fn.Namespace, &fn.Name, &fn.Version, &fn.Spec, &fn.CreatedAt); err != nil {
		return nil, err
	}
	fn.CreatedAt = fn.CreatedAt.UTC()
	return &fn, nil
}

// GetFunction implements store.Store.
func (s *Store) GetFunction(ctx context.Context, namespace, name, version string) (*store.Function, error) {
	ns := functionNamespace(namespace)
	var row pgx.Row
	if version == "" {
		row = s.pool.QueryRow(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = $1 AND name = $2 ORDER BY ord DESC LIMIT 1`, ns, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = $1 AND name = $2 AND version = $3`, ns, name, version)
	}
	fn, err := scanFunction(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("function %s/%s@%s: %w", ns, name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get function %s/%s@%s: %w", ns, name, version, err)
	}
	return fn, nil
}

// ListFunctions implements store.Store.
func (s *Store) ListFunctions(ctx context.Context, namespace string) ([]*store.Function, error) {
	var rows pgx.Rows
	var err error
	if namespace == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+functionColumns+` FROM functions ORDER BY namespace, name, ord`)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+functionColumns+` FROM functions WHERE namespace = $1 ORDER BY name, ord`, namespace)
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
	what := fmt.Sprintf("function %s/%s@%s", ns, name, version)
	if version == "" {
		tag, err := s.pool.Exec(ctx, `DELETE FROM functions WHERE namespace = $1 AND name = $2`, ns, name)
		return deleted(tag, err, what)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM functions WHERE namespace = $1 AND name = $2 AND version = $3`, ns, name, version)
	return deleted(tag, err, what)
}

// PendingTimers implements store.PendingTimers. With several replicas it
// covers the running invocations of all of them.
func (s *Store) PendingTimers(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT h.invocation_id, h.event->>'type', coalesce(h.event->>'timer', ''),
			coalesce(h.event->>'fireAt', '')
		FROM invocations i JOIN history h ON h.invocation_id = i.id
		WHERE i.status = $1 AND i.durable AND h.event->>'type' IN ($2, $3)
		ORDER BY h.invocation_id, h.seq`,
		string(core.StatusRunning), string(core.TimerScheduled), string(core.TimerFired))
	if err != nil {
		return nil, fmt.Errorf("pending timers: %w", err)
	}
	defer rows.Close()
	return rowcodec.ReadPendingTimers(rows)
}
