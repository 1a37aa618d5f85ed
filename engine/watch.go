package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/core"
)

// ErrFollowerBehind ends a FollowHistory whose reader fell further behind
// the invocation than its buffer holds: rather than keep an unbounded
// backlog for a slow reader, the engine drops it, and the reader resumes
// from the last seq it saw.
var ErrFollowerBehind = errors.New("the follower fell behind the invocation and was dropped; resume from the last seq received")

// DefaultWatchBuffer is how many history events a follower may have
// waiting before it is dropped (Options.WatchBuffer when zero).
const DefaultWatchBuffer = 1024

// watchPoll is how often a follower reads the store for an invocation this
// engine does not run (another replica's, or one not resumed yet).
const watchPoll = 150 * time.Millisecond

// watchHub hands the history events of live invocations to their
// followers as they are recorded.
type watchHub struct {
	// n counts followers, so that recording costs one atomic load while
	// nobody follows anything.
	n    atomic.Int64
	mu   sync.Mutex
	subs map[string]map[*follower]struct{}
	size int
}

type follower struct {
	ch chan core.Event
	// behind is set (and ch closed) when ch overflowed.
	behind bool
}

func newWatchHub(size int) *watchHub {
	if size <= 0 {
		size = DefaultWatchBuffer
	}
	return &watchHub{subs: make(map[string]map[*follower]struct{}), size: size}
}

func (h *watchHub) subscribe(id string) *follower {
	f := &follower{ch: make(chan core.Event, h.size)}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[id]
	if set == nil {
		set = make(map[*follower]struct{})
		h.subs[id] = set
	}
	set[f] = struct{}{}
	h.n.Add(1)
	return f
}

func (h *watchHub) unsubscribe(id string, f *follower) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(id, f)
}

func (h *watchHub) removeLocked(id string, f *follower) {
	set := h.subs[id]
	if _, ok := set[f]; !ok {
		return
	}
	delete(set, f)
	if len(set) == 0 {
		delete(h.subs, id)
	}
	h.n.Add(-1)
}

// publish hands recorded events to the invocation's followers without
// ever blocking: a follower whose buffer is full is dropped.
func (h *watchHub) publish(id string, events []core.Event) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range h.subs[id] {
		for _, ev := range events {
			select {
			case f.ch <- ev:
				continue
			default:
			}
			f.behind = true
			close(f.ch)
			h.removeLocked(id, f)
			break
		}
	}
}

// FollowHistory calls each with every event of an invocation's history
// after seq after, first those recorded already, then each as it is
// recorded, until the history ends with a terminal event (it returns nil
// after handing that one over), ctx is done, each fails, or the caller
// falls behind (ErrFollowerBehind). Events come in seq order, each once.
//
// Events of invocations this engine runs arrive the moment they are
// recorded. Those of invocations it does not run (another replica's, with
// a shared store) are read from the store every watchPoll.
func (e *Engine) FollowHistory(ctx context.Context, id string, after int64, each func(core.Event) error) error {
	f := e.watch.subscribe(id)
	defer e.watch.unsubscribe(id, f)
	e.flushUnwaited(ctx, id)
	history, err := e.History(ctx, id)
	if err != nil {
		return err
	}
	last := after
	deliver := func(events []core.Event) (ended bool, err error) {
		for _, ev := range events {
			if ev.Seq <= last {
				continue
			}
			last = ev.Seq
			if err := each(ev); err != nil {
				return false, err
			}
		}
		n := len(events)
		return n > 0 && events[n-1].Terminal() && events[n-1].Seq <= last, nil
	}
	if ended, err := deliver(history); ended || err != nil {
		return err
	}
	var poll *time.Ticker
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		var tick <-chan time.Time
		if !e.runsHere(id) {
			if poll == nil {
				poll = time.NewTicker(watchPoll)
			}
			tick = poll.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-f.ch:
			if !ok {
				return ErrFollowerBehind
			}
			if ev.Seq > last+1 {
				// Recorded before this follower subscribed but after
				// the history was read cannot happen; a gap means
				// events were recorded elsewhere: read them.
				if history, err = e.History(ctx, id); err != nil {
					return err
				}
				if ended, err := deliver(history); ended || err != nil {
					return err
				}
			}
			if ended, err := deliver([]core.Event{ev}); ended || err != nil {
				return err
			}
		case <-tick:
			if history, err = e.History(ctx, id); err != nil {
				return err
			}
			if ended, err := deliver(history); ended || err != nil {
				return err
			}
		}
	}
}

// flushUnwaited makes the records an invocation running here wrote
// without waiting (dispatches, TaskEnded records) readable in the store: a
// follower that subscribed after they were handed out reads them there, not
// a moment later when the next commit happens to come.
func (e *Engine) flushUnwaited(ctx context.Context, id string) {
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in == nil || !in.inv.Durable {
		return
	}
	// An empty waited append commits whatever was queued before it.
	if err := e.store.Append(ctx, id, nil, true); err != nil && !errors.Is(err, context.Canceled) {
		e.log.Debug("flushing a history for a follower", "invocation", id, "err", err)
	}
}

// runsHere reports whether the invocation is live in this engine, so that
// its events reach followers without polling.
func (e *Engine) runsHere(id string) bool {
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in == nil {
		return false
	}
	select {
	case <-in.halted:
		return false
	default:
		return true
	}
}
