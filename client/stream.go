package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
)

// StreamEvent is one event of an invocation's live stream: a history
// entry or a status change.
type StreamEvent struct {
	// History is set for a history entry.
	History *core.Event
	// Status is set for a status change (and for the status the stream
	// starts with).
	Status *api.StreamStatus
}

// FollowInvocation follows an invocation live (GET /v1/invocations/{id}/stream):
// each is called with every history entry after seq after and every status
// change, in order, until the invocation ends (it returns nil after the
// terminal status), ctx is done or each fails. A stream the server drops
// (this reader fell behind, a proxy timed out) is resumed from the last
// entry received, so no entry is missed or repeated.
func (c *Client) FollowInvocation(ctx context.Context, id string, after int64, each func(StreamEvent) error) error {
	backoff := 100 * time.Millisecond
	for {
		ended, got, err := c.followOnce(ctx, id, &after, each)
		if ended || ctx.Err() != nil {
			return err
		}
		if err != nil && !isStreamBreak(err) {
			return err
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// streamBreak marks a stream that ended before the invocation did.
type streamBreak struct{ err error }

func (b streamBreak) Error() string { return "the stream broke: " + b.err.Error() }
func (b streamBreak) Unwrap() error { return b.err }

func isStreamBreak(err error) bool {
	var b streamBreak
	return errors.As(err, &b)
}

// followOnce reads one connection's worth of the stream. It reports
// whether the invocation ended, and whether anything was received.
func (c *Client) followOnce(ctx context.Context, id string, after *int64, each func(StreamEvent) error) (ended, got bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url([]string{"v1", "invocations", id, "stream"}, nil), nil)
	if err != nil {
		return false, false, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream, "+api.ProblemContentType)
	if *after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*after, 10))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, false, ctx.Err()
		}
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return false, false, streamBreak{fmt.Errorf("cannot reach the baton server at %s: %w", c.base, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, false, decodeProblem(resp, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var name string
	var data bytes.Buffer
	// last is the last status received: the server closes the stream
	// after a terminal one.
	var last core.Status
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() == 0 {
				name = ""
				continue
			}
			ev, err := decodeStreamEvent(name, data.Bytes())
			name = ""
			data.Reset()
			if err != nil {
				return false, got, err
			}
			if ev == nil {
				continue
			}
			got = true
			if ev.History != nil {
				*after = ev.History.Seq
			}
			if ev.Status != nil {
				last = ev.Status.Status
			}
			if err := each(*ev); err != nil {
				return true, got, err
			}
			if ev.Status != nil && ev.Status.Status != core.StatusRunning && ev.Status.Seq > 0 {
				return true, got, nil
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("event: ")):
			name = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data.Write(line[len("data: "):])
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return false, got, streamBreak{err}
	}
	if ctx.Err() != nil {
		return false, got, ctx.Err()
	}
	if last != "" && last != core.StatusRunning {
		return true, got, nil
	}
	return false, got, streamBreak{io.ErrUnexpectedEOF}
}

// decodeStreamEvent decodes one event; nil for kinds this client does not
// know (and for the server's note that it dropped the reader).
func decodeStreamEvent(name string, data []byte) (*StreamEvent, error) {
	switch name {
	case "history":
		var ev core.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, fmt.Errorf("decoding a history event: %w", err)
		}
		return &StreamEvent{History: &ev}, nil
	case "status":
		var st api.StreamStatus
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("decoding a status event: %w", err)
		}
		return &StreamEvent{Status: &st}, nil
	}
	return nil, nil
}
