package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Remote is a bus shared by several Baton servers (NATS JetStream): every
// event one of them accepts is forwarded to it, and each server appends
// what arrives from it to its own log.
type Remote interface {
	Publish(ctx context.Context, ev Event) error
}

// Log is the front of the durable event log: every event Baton accepts
// (posted, emitted, received from the remote bus) is appended here before
// it is acknowledged, and consumers (listen tasks, event-driven starts)
// read the log by position and wait on Changed for more.
type Log struct {
	store  store.EventLog
	remote Remote
	log    *slog.Logger

	mu sync.Mutex
	// changed is closed and replaced whenever new events are appended, so
	// that any number of waiters wake up without a subscription each.
	changed chan struct{}
	// appended hears how many events each append logged; nil when no one
	// counts (see ObserveAppends).
	appended func(n int)
}

// ObserveAppends sets f to hear, after each append, how many events it
// logged (duplicates of events logged before are not counted): the
// engine's "events in" metric.
func (l *Log) ObserveAppends(f func(n int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appended = f
}

// NewLog returns a log over st. remote may be nil (events stay within this
// server, the in-process bus).
func NewLog(st store.EventLog, remote Remote, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{store: st, remote: remote, log: logger, changed: make(chan struct{})}
}

// Store is the log's store, for consumers that keep positions in it.
func (l *Log) Store() store.EventLog { return l.store }

// Changed returns a channel that is closed when events are appended after
// the call. Engines sharing a store do not see each other's appends here,
// so waiters also poll.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Log) notify() {
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Ingest validates events, appends them durably, and forwards them to the
// remote bus; it returns once all of that is done, so an acknowledged event
// is never lost. Events seen before (same source and id) are not appended
// again but are forwarded again: a client retrying after a failed forward
// must get the event onto the bus.
func (l *Log) Ingest(ctx context.Context, evs []Event) ([]*store.LoggedEvent, error) {
	for _, ev := range evs {
		if p := Validate(ev); p != nil {
			return nil, p
		}
	}
	logged, err := l.append(ctx, evs)
	if err != nil {
		return nil, err
	}
	if l.remote != nil {
		for _, ev := range evs {
			if err := l.remote.Publish(ctx, ev); err != nil {
				return logged, problem.Communication(http.StatusServiceUnavailable,
					"event %v is logged but could not be published to the event bus: %v", ev["id"], err)
			}
		}
	}
	return logged, nil
}

// Append adds events that arrived from the remote bus: they are logged but
// not forwarded again. Invalid events are reported, not logged.
func (l *Log) Append(ctx context.Context, evs []Event) ([]*store.LoggedEvent, error) {
	return l.append(ctx, evs)
}

func (l *Log) append(ctx context.Context, evs []Event) ([]*store.LoggedEvent, error) {
	now := time.Now().UTC()
	rows := make([]*store.LoggedEvent, len(evs))
	for i, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Invalid CloudEvent", "event %v cannot be encoded as JSON: %v", ev["id"], err)
		}
		rows[i] = &store.LoggedEvent{
			ID: ev["id"].(string), Source: ev["source"].(string), Type: ev["type"].(string),
			Time: Time(ev), ReceivedAt: now, Event: data,
		}
	}
	if err := l.store.AppendEvents(ctx, rows); err != nil {
		return nil, fmt.Errorf("appending %d event(s) to the event log: %w", len(rows), err)
	}
	fresh := 0
	for _, r := range rows {
		if !r.Duplicate {
			fresh++
		}
	}
	if fresh > 0 {
		l.notify()
		l.mu.Lock()
		appended := l.appended
		l.mu.Unlock()
		if appended != nil {
			appended(fresh)
		}
	}
	return rows, nil
}

// Logged is an event read back from the log with its position.
type Logged struct {
	Seq        int64
	ReceivedAt time.Time
	Event      Event
}

// Read returns up to limit events after position after, in log order.
func (l *Log) Read(ctx context.Context, f store.EventFilter) ([]Logged, error) {
	rows, err := l.store.ListEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Logged, len(rows))
	for i, r := range rows {
		var ev Event
		if err := json.Unmarshal(r.Event, &ev); err != nil {
			return nil, fmt.Errorf("event log entry %d is not JSON: %w", r.Seq, err)
		}
		out[i] = Logged{Seq: r.Seq, ReceivedAt: r.ReceivedAt, Event: ev}
	}
	return out, nil
}

// Last is the position of the newest event.
func (l *Log) Last(ctx context.Context) (int64, error) { return l.store.LastEventSeq(ctx) }
