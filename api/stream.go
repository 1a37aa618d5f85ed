package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/batonflow/baton/core"
)

// historyFollower is an engine that hands over an invocation's history
// events as they are recorded (engine.Engine.FollowHistory).
type historyFollower interface {
	FollowHistory(ctx context.Context, id string, after int64, each func(core.Event) error) error
}

// DefaultStreamHeartbeat is how often an idle stream sends a comment, so
// that proxies keep it open and a client notices a dead connection.
const DefaultStreamHeartbeat = 15 * time.Second

// streamWriteTimeout drops a client that does not take an event in this
// long; the engine's buffer for it stays bounded either way.
const streamWriteTimeout = 10 * time.Second

// WithStreamHeartbeat sets how often an idle invocation stream sends a
// heartbeat comment (DefaultStreamHeartbeat otherwise).
func WithStreamHeartbeat(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.streamHeartbeat = d
		}
	}
}

// StreamStatus is the data of a stream's `status` event.
type StreamStatus struct {
	ID     string      `json:"id"`
	Status core.Status `json:"status"`
	// Seq is the history event that set the status (0 for the status the
	// stream starts with, when the history was read already).
	Seq int64 `json:"seq,omitempty"`
	// Output and Error are those of an ended invocation.
	Output any `json:"output,omitempty"`
	Error  any `json:"error,omitempty"`
}

// streamInvocation is GET /v1/invocations/{id}/stream: server-sent events,
// one `history` event per history entry (its id the entry's seq, so that
// a reconnecting EventSource resumes with Last-Event-ID) and a `status`
// event when the stream starts and on every status change; the stream
// ends after the terminal status. A client that falls behind is cut off
// and resumes from its Last-Event-ID.
func (s *server) streamInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, ok := s.engine.(historyFollower)
	if !ok {
		s.writeProblem(w, r, notImplemented("this engine does not stream histories"))
		return
	}
	after, prob := parseAfter(r.URL.Query(), "a history seq")
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			s.writeProblem(w, r, badRequest("Last-Event-ID %q: expected a history seq (a non-negative integer)", last))
			return
		}
		after = n
	}
	inv, err := s.engine.GetInvocation(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.shutdown, cancel)
	defer stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	sse := &sseWriter{w: w, rc: http.NewResponseController(w)}
	status := inv.Status
	if err := sse.send("", "status", StreamStatus{ID: id, Status: status}); err != nil {
		return
	}

	heartbeat := s.streamHeartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultStreamHeartbeat
	}
	var beats sync.WaitGroup
	beats.Add(1)
	go func() {
		defer beats.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if sse.comment("heartbeat") != nil {
					cancel()
					return
				}
			}
		}
	}()
	err = f.FollowHistory(ctx, id, after, func(ev core.Event) error {
		if err := sse.send(strconv.FormatInt(ev.Seq, 10), "history", ev); err != nil {
			return err
		}
		next := status
		switch {
		case ev.Type == core.InvocationStarted || ev.Type == core.InvocationRedriven:
			next = core.StatusRunning
		case ev.Terminal():
			next = terminalStatus(ev.Type)
		}
		if next == status && !ev.Terminal() {
			return nil
		}
		status = next
		st := StreamStatus{ID: id, Status: status, Seq: ev.Seq}
		if ev.Terminal() {
			st.Output = ev.Output
			if ev.Error != nil {
				st.Error = ev.Error
			}
		}
		return sse.send("", "status", st)
	})
	cancel()
	beats.Wait()
	if err != nil && r.Context().Err() == nil && ctx.Err() == nil {
		// Dropped for falling behind, or the history could not be read:
		// the client reconnects with its Last-Event-ID.
		s.logger.DebugContext(r.Context(), "invocation stream ended", "id", id, "error", err)
		_ = sse.send("", "error", map[string]string{"detail": err.Error()})
	}
}

func terminalStatus(t core.EventType) core.Status {
	switch t {
	case core.InvocationCompleted:
		return core.StatusCompleted
	case core.InvocationCancelled:
		return core.StatusCancelled
	}
	return core.StatusFaulted
}

// sseWriter writes server-sent events from the handler and its heartbeat
// goroutine, one at a time, each flushed at once and bounded in time.
type sseWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseWriter) send(id, event string, data any) error {
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding a %s event: %w", event, err)
	}
	msg := make([]byte, 0, len(body)+48)
	if id != "" {
		msg = append(msg, "id: "...)
		msg = append(msg, id...)
		msg = append(msg, '\n')
	}
	msg = append(msg, "event: "...)
	msg = append(msg, event...)
	msg = append(msg, "\ndata: "...)
	msg = append(msg, body...) // JSON from Marshal holds no newline
	msg = append(msg, "\n\n"...)
	return s.write(msg)
}

func (s *sseWriter) comment(text string) error { return s.write([]byte(": " + text + "\n\n")) }

func (s *sseWriter) write(msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A deadline the connection cannot take (HTTP/2 without it) leaves
	// the write unbounded; the engine's buffer stays bounded regardless.
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := s.w.Write(msg); err != nil {
		return err
	}
	return s.rc.Flush()
}
