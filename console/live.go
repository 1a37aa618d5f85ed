package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// Live views are server-sent event streams that say "changed" (with a
// version of what changed) whenever what a page shows has changed; the
// page then fetches its live fragment again. The change comes from a
// probe of the store every poll interval: a fingerprint of what the page
// shows, so a stream costs one small query per interval and nothing is
// sent while nothing changes.

// maxLive bounds how long one stream stays open; the browser reconnects.
const maxLive = 10 * time.Minute

// stream sends a "change" event each time probe's fingerprint changes,
// until probe says the view is final or the client goes away.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, probe func(ctx context.Context) (fingerprint string, final bool, err error)) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Retry soon after the stream ends.
	fmt.Fprint(w, "retry: 1000\n")
	ctx, cancel := context.WithTimeout(r.Context(), maxLive)
	defer cancel()
	last := ""
	ticker := time.NewTicker(c.poll)
	defer ticker.Stop()
	for first := true; ; first = false {
		fp, final, err := probe(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(w, "event: failed\ndata: %q\n\n", err.Error())
				_ = rc.Flush()
			}
			return
		}
		if first {
			// The stream opens once the state it compares with is read:
			// whatever happens after this comment is a change.
			fmt.Fprint(w, ": live\n\n")
			_ = rc.Flush()
		}
		if fp != last {
			if !first {
				fmt.Fprintf(w, "event: change\ndata: %s\n\n", fp)
				if err := rc.Flush(); err != nil {
					return
				}
			}
			last = fp
		}
		if final {
			fmt.Fprint(w, "event: final\ndata: {}\n\n")
			_ = rc.Flush()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// historyFollower is an engine that hands over a run's history events as
// they are recorded (*engine.Engine's FollowHistory).
type historyFollower interface {
	FollowHistory(ctx context.Context, id string, after int64, each func(core.Event) error) error
}

// liveRun streams a run's changes: its status and how much history it has.
// With an engine that follows histories, each recorded event is a change
// at once; otherwise the store is polled.
func (c *Console) liveRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	inv, err := c.invocation(r.Context(), r, id)
	if err != nil || inv == nil {
		http.Error(w, "run not found", http.StatusNotFound)
		return
	}
	if follower, ok := c.engine.(historyFollower); ok {
		c.follow(w, r, follower, id)
		return
	}
	c.stream(w, r, func(ctx context.Context) (string, bool, error) {
		inv, err := c.engine.GetInvocation(ctx, id)
		if err != nil {
			return "", false, err
		}
		history, err := c.engine.History(ctx, id)
		if err != nil {
			return "", false, err
		}
		fp := fmt.Sprintf(`{"status":%q,"events":%d}`, inv.Status, len(history))
		return fp, inv.Status != core.StatusRunning, nil
	})
}

// liveRuns streams changes of a runs list's first page and counts.
func (c *Console) liveRuns(w http.ResponseWriter, r *http.Request) {
	f := runFilterFrom(r.URL.Query())
	f.Cursor = ""
	sf, _ := f.storeFilter(runsPageSize)
	if sf.Namespace != "" && !canSee(r, sf.Namespace) {
		http.Error(w, "not allowed", http.StatusForbidden)
		return
	}
	c.stream(w, r, func(ctx context.Context) (string, bool, error) {
		invs, _, err := c.engine.ListInvocations(ctx, sf)
		if err != nil {
			return "", false, err
		}
		h := sha256.New()
		for _, inv := range invs {
			if canSee(r, inv.Namespace) {
				fmt.Fprintf(h, "%s %s\n", inv.ID, inv.Status)
			}
		}
		if counter, ok := c.engine.(invocationCounter); ok {
			if counts, err := counter.CountInvocations(ctx, store.InvocationFilter{
				Namespace: sf.Namespace, Workflow: sf.Workflow, Version: sf.Version, IDPrefix: sf.IDPrefix,
				StartedAfter: sf.StartedAfter, StartedBefore: sf.StartedBefore,
			}); err == nil {
				for _, st := range statuses {
					fmt.Fprintf(h, "%s=%d\n", st, counts[st])
				}
			}
		}
		return fmt.Sprintf(`{"version":%q}`, hex.EncodeToString(h.Sum(nil))[:16]), false, nil
	})
}

// follow streams a run's changes as its history events are recorded. The
// events already recorded are the page's state and not sent; a burst of
// events is sent as it comes, and the page fetches its fragment again
// once per burst.
func (c *Console) follow(w http.ResponseWriter, r *http.Request, f historyFollower, id string) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n: live\n\n")
	_ = rc.Flush()
	ctx, cancel := context.WithTimeout(r.Context(), maxLive)
	defer cancel()
	history, err := c.engine.History(ctx, id)
	if err != nil {
		fmt.Fprintf(w, "event: failed\ndata: %q\n\n", err.Error())
		return
	}
	// The page says which events it shows (?after=SEQ): those recorded
	// between its rendering and this stream are changes too.
	var after int64
	if n := len(history); n > 0 {
		after = history[n-1].Seq
	}
	if shown, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64); err == nil && shown >= 0 && shown < after {
		fmt.Fprintf(w, "event: change\ndata: {\"seq\":%d}\n\n", after)
		_ = rc.Flush()
	}
	if n := len(history); n > 0 && history[n-1].Terminal() {
		fmt.Fprint(w, "event: final\ndata: {}\n\n")
		_ = rc.Flush()
		return
	}
	err = f.FollowHistory(ctx, id, after, func(ev core.Event) error {
		fmt.Fprintf(w, "event: change\ndata: {\"seq\":%d,\"type\":%q}\n\n", ev.Seq, ev.Type)
		return rc.Flush()
	})
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(w, "event: failed\ndata: %q\n\n", err.Error())
			_ = rc.Flush()
		}
		return
	}
	fmt.Fprint(w, "event: final\ndata: {}\n\n")
	_ = rc.Flush()
}
