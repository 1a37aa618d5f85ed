package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
)

// The read pool's connections pass every query's rows through a barrier:
// the first row, or the end of an empty result, is handed out only once
// every transaction the writer had published by then is durable (see
// durability). The writer's commits become visible before the syncer's
// fsync, so without it a reader could act on a write that a crash then
// takes back.

// barrierConnector opens read connections whose rows wait for durability.
type barrierConnector struct {
	driver.Connector
	durable *durability
}

// sqliteConn is what every connection of modernc.org/sqlite implements;
// the wrapper forwards all of it so that database/sql keeps using the
// context-aware paths.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

func (c barrierConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite store: driver connection %T lacks the context-aware interfaces", conn)
	}
	return &barrierConn{sqliteConn: sc, durable: c.durable}, nil
}

type barrierConn struct {
	sqliteConn
	durable *durability
}

// Unwrap returns the driver's own connection.
func (c *barrierConn) Unwrap() driver.Conn { return c.sqliteConn }

func (c *barrierConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.sqliteConn.QueryContext(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return &barrierRows{Rows: rows, ctx: ctx, durable: c.durable}, nil
}

func (c *barrierConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *barrierConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sst, ok := st.(sqliteStmt)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("sqlite store: driver statement %T lacks the context-aware interfaces", st)
	}
	return &barrierStmt{sqliteStmt: sst, durable: c.durable}, nil
}

type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type barrierStmt struct {
	sqliteStmt
	durable *durability
}

func (s *barrierStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.sqliteStmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	return &barrierRows{Rows: rows, ctx: ctx, durable: s.durable}, nil
}

// barrierRows waits, at its first Next, for the durability of what the
// query's snapshot may hold. The driver has begun the snapshot by then
// (the statement has stepped), so the transactions published at that
// point include every one it can see.
type barrierRows struct {
	driver.Rows
	ctx     context.Context
	durable *durability
	passed  bool
}

func (r *barrierRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if !r.passed && (err == nil || err == io.EOF) {
		if werr := r.durable.wait(r.ctx); werr != nil {
			return fmt.Errorf("sqlite store: read held back until its data is durable: %w", werr)
		}
		r.passed = true
	}
	return err
}
