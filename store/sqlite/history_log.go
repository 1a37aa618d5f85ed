package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// historyLogSchema is migration 9: histories kept in append order, one row
// per append.
//
// The first schema keyed history by (invocation_id, seq). With many
// invocations in flight each commit then added a row to a different leaf
// page per invocation (random text ids spread them over the whole tree),
// so a group commit of 40 steps wrote some 40 pages to the WAL for a few
// KB of events, and every row paid a foreign-key probe into invocations.
// history_log instead grows at its end (its rowid is the append order),
// holds every event of one append in one row (an unwaited append shares
// the row of the next append to its invocation in the same transaction:
// see heldRow), and is found through a small index on an integer key
// given to each invocation in creation order: the invocations in flight
// have neighbouring keys, so their index entries share a few pages. The
// existence the foreign key checked is the writer's own check (it refuses
// appends to unknown invocations).
//
// Histories written before this migration stay in history and are read
// from there; an invocation that was running then continues in
// history_log, after its last seq.
const historyLogSchema = `
ALTER TABLE invocations ADD COLUMN ikey INTEGER;
UPDATE invocations SET ikey = rowid;
CREATE UNIQUE INDEX invocations_by_key ON invocations (ikey);

CREATE TABLE history_log (
	pos    INTEGER PRIMARY KEY,
	ikey   INTEGER NOT NULL,
	seq    INTEGER NOT NULL, -- the row's first event's
	n      INTEGER NOT NULL, -- how many events the row holds
	events BLOB    NOT NULL  -- each event's JSON after its length (uvarint)
);
CREATE UNIQUE INDEX history_log_by_invocation ON history_log (ikey, seq);
`

// appendFramed appends events to buf in history_log's format.
func appendFramed(buf []byte, events []rowcodec.EncodedEvent) []byte {
	for _, ev := range events {
		buf = binary.AppendUvarint(buf, uint64(len(ev.Data)))
		buf = append(buf, ev.Data...)
	}
	return buf
}

// splitFramed calls f with each event's JSON in a history_log row.
func splitFramed(b []byte, n int64, f func(i int64, data []byte) error) error {
	for i := int64(0); i < n; i++ {
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return fmt.Errorf("event %d of %d: truncated", i+1, n)
		}
		if err := f(i, b[k:k+int(size)]); err != nil {
			return err
		}
		b = b[k+int(size):]
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the last of %d events", len(b), n)
	}
	return nil
}

// sqlHistory reads a history from both layouts: rows from before
// migration 9 (format 0, one event each) come first, their seqs being the
// lower ones.
const sqlHistory = `SELECT 0, seq, 1, event FROM history WHERE invocation_id = ?1
	UNION ALL
	SELECT 1, h.seq, h.n, h.events FROM history_log h
		WHERE h.ikey = (SELECT ikey FROM invocations WHERE id = ?1)
	ORDER BY 2`

func (s *Store) history(ctx context.Context, id string) ([]core.Event, error) {
	rows, err := s.readDB.QueryContext(ctx, sqlHistory, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []core.Event
	for rows.Next() {
		var format int
		var seq, n int64
		var data []byte
		if err := rows.Scan(&format, &seq, &n, &data); err != nil {
			return nil, err
		}
		if format == 0 {
			ev, err := rowcodec.DecodeEvent(seq, data)
			if err != nil {
				return nil, fmt.Errorf("event %d: %w", seq, err)
			}
			events = append(events, ev)
			continue
		}
		err := splitFramed(data, n, func(i int64, data []byte) error {
			ev, err := rowcodec.DecodeEvent(seq+i, data)
			if err != nil {
				return fmt.Errorf("event %d: %w", seq+i, err)
			}
			events = append(events, ev)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("history row at seq %d: %w", seq, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

// timerEvent is what PendingTimers needs of an event: the fields the old
// layout's query took with json_extract.
type timerEvent struct {
	Type   core.EventType `json:"type"`
	Timer  string         `json:"timer"`
	FireAt string         `json:"fireAt"`
}

// timerMarker is in every timer event's JSON; events without it are not
// decoded.
var timerMarker = []byte(`"Timer`)

// pendingTimers folds the timer events of running durable invocations,
// from both layouts, each invocation's in history order.
func (s *Store) pendingTimers(ctx context.Context) (map[string]time.Time, error) {
	var fold rowcodec.PendingTimers
	// The old layout's events are JSON text stored as BLOBs, which
	// SQLite's JSON functions would take for JSONB without the cast.
	old, err := s.readDB.QueryContext(ctx, `SELECT h.invocation_id,
			json_extract(CAST(h.event AS TEXT), '$.type'),
			coalesce(json_extract(CAST(h.event AS TEXT), '$.timer'), ''),
			coalesce(json_extract(CAST(h.event AS TEXT), '$.fireAt'), '')
		FROM invocations i JOIN history h ON h.invocation_id = i.id
		WHERE i.status = ? AND i.durable
			AND json_extract(CAST(h.event AS TEXT), '$.type') IN (?, ?)
		ORDER BY h.invocation_id, h.seq`,
		string(core.StatusRunning), string(core.TimerScheduled), string(core.TimerFired))
	if err != nil {
		return nil, err
	}
	err = foldTimerRows(old, func(rows *sql.Rows) error {
		var id, typ, timer, fireAt string
		if err := rows.Scan(&id, &typ, &timer, &fireAt); err != nil {
			return err
		}
		at, _ := time.Parse(time.RFC3339Nano, fireAt)
		fold.Add(id, core.EventType(typ), timer, at)
		return nil
	})
	if err != nil {
		return nil, err
	}
	logRows, err := s.readDB.QueryContext(ctx, `SELECT i.id, h.seq, h.n, h.events
		FROM invocations i JOIN history_log h ON h.ikey = i.ikey
		WHERE i.status = ? AND i.durable
		ORDER BY h.ikey, h.seq`, string(core.StatusRunning))
	if err != nil {
		return nil, err
	}
	err = foldTimerRows(logRows, func(rows *sql.Rows) error {
		var id string
		var seq, n int64
		var data []byte
		if err := rows.Scan(&id, &seq, &n, &data); err != nil {
			return err
		}
		if !bytes.Contains(data, timerMarker) {
			return nil
		}
		return splitFramed(data, n, func(i int64, data []byte) error {
			if !bytes.Contains(data, timerMarker) {
				return nil
			}
			var ev timerEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				return fmt.Errorf("invocation %s, event %d: %w", id, seq+i, err)
			}
			if ev.Type != core.TimerScheduled && ev.Type != core.TimerFired {
				return nil
			}
			at, _ := time.Parse(time.RFC3339Nano, ev.FireAt)
			fold.Add(id, ev.Type, ev.Timer, at)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return fold.Earliest(), nil
}

func foldTimerRows(rows *sql.Rows, f func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// maxInvocationKey is the highest invocation key given so far.
func maxInvocationKey(ctx context.Context, q *sql.Stmt) (int64, error) {
	var key sql.NullInt64
	if err := q.QueryRowContext(ctx).Scan(&key); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read the highest invocation key: %w", err)
	}
	return key.Int64, nil
}
