package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Checkpoints copy the WAL's pages back into the database file so that the
// WAL can start again from its beginning. SQLite's automatic checkpoint
// runs inside the COMMIT that crosses its threshold (1000 frames), on the
// committing connection: there it held up the single writer for the whole
// copy, a read and a write per page and two fsyncs (tens of
// milliseconds), while the batch it had just committed waited for its own
// fsync behind it and nothing new was written.
//
// The write connection therefore runs with wal_autocheckpoint=0, and a
// checkpointer goroutine with a connection of its own copies the WAL
// passively, beside the writer, a little after commits. A passive
// checkpoint needs no lock the writer holds, so the writer keeps
// inserting and committing meanwhile. It syncs the WAL before it copies
// anything and the database file after, as the automatic one does, so a
// page reaches the database file only once its frame is on disk.
//
// The WAL starts again only when a write transaction begins with every
// frame copied back, which the checkpointer alone never sees under load:
// the writer opens its next transaction while a checkpoint copies. So once
// a checkpoint has caught up with a WAL past restartFrames, the writer
// itself checkpoints the few frames committed since, between two
// transactions (no batch is open and the last one is already with the
// syncer), and its next transaction starts the WAL again.

// Defaults for how often the checkpointer runs and how long the WAL may
// grow before it starts again.
const (
	defaultCheckpointPause = 50 * time.Millisecond
	// 4096 frames of 4 KiB pages: a WAL of 16 MiB at most in normal
	// running (readers that hold old snapshots can keep it longer).
	defaultRestartFrames = 4096
)

// checkpointer copies the WAL into the database file beside the writer.
type checkpointer struct {
	db   *sql.DB
	conn *sql.Conn
	stmt *sql.Stmt
	log  *slog.Logger
	// pause is the least time between two checkpoints: each one that finds
	// frames to copy costs two fsyncs, which share the disk with the
	// syncer's.
	pause         time.Duration
	restartFrames int64
	durable       *durability
	// kick is signalled by the writer after a commit.
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// restartDue tells the writer that the WAL has grown past
	// restartFrames and has just been copied up to its end.
	restartDue atomic.Bool
	runs       atomic.Int64
}

const sqlCheckpoint = "PRAGMA wal_checkpoint(PASSIVE)"

// openCheckpointer opens the checkpointer's connection to the database at
// path (its DSN's query string already made).
func openCheckpointer(ctx context.Context, dsn string, log *slog.Logger, pause time.Duration, restartFrames int64, durable *durability) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open the checkpointer's connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open the checkpointer's connection: %w", err)
	}
	stmt, err := conn.PrepareContext(ctx, sqlCheckpoint)
	if err != nil {
		_ = conn.Close()
		_ = db.Close()
		return nil, fmt.Errorf("prepare %q: %w", sqlCheckpoint, err)
	}
	return &checkpointer{
		db:            db,
		conn:          conn,
		stmt:          stmt,
		log:           log,
		pause:         pause,
		restartFrames: restartFrames,
		durable:       durable,
		kick:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}, nil
}

// committed tells the checkpointer that the WAL has new frames.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run is the checkpointer goroutine; it returns once stop is closed.
func (c *checkpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(c.pause)
	defer pause.Stop()
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		if c.durable.failed() != nil {
			// The WAL may hold frames that never reached the disk: none
			// of them goes into the database file.
			return
		}
		frames, copied, err := checkpoint(context.Background(), c.stmt)
		c.runs.Add(1)
		if err != nil {
			c.failed(err)
			return
		}
		if frames >= c.restartFrames && copied == frames {
			c.restartDue.Store(true)
		}
		pause.Reset(c.pause)
		select {
		case <-pause.C:
		case <-c.stop:
			return
		}
	}
}

// failed stops the store after a checkpoint failed. The checkpoint syncs
// the WAL and the database file; a failed fsync may have dropped pages
// that a later one would not report, so writes stop as after the
// syncer's own failure.
func (c *checkpointer) failed(err error) {
	err = fmt.Errorf("%w: checkpoint: %w", errSyncFailed, err)
	c.log.Error("sqlite store: WAL checkpoint failed; the store refuses writes from now on", "error", err)
	c.durable.advance(0, err)
}

// close stops the goroutine, if it runs, and closes the connection.
func (c *checkpointer) close(started bool) error {
	close(c.stop)
	if started {
		<-c.done
	}
	return errors.Join(c.stmt.Close(), c.conn.Close(), c.db.Close())
}

// checkpoint runs a passive checkpoint and reports the frames in the WAL
// and how many of them are now in the database file.
func checkpoint(ctx context.Context, stmt *sql.Stmt) (frames, copied int64, err error) {
	var busy int64
	if err := stmt.QueryRowContext(ctx).Scan(&busy, &frames, &copied); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", sqlCheckpoint, err)
	}
	return frames, copied, nil
}
