package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
)

// sseEvent is one server-sent event as a client sees it.
type sseEvent struct {
	id, event, data string
}

// sseReader reads server-sent events from a response body.
type sseReader struct {
	sc *bufio.Scanner
}

// next returns the next event (a comment as an event named ":"), or false
// at the end of the stream.
func (r *sseReader) next() (sseEvent, bool) {
	var ev sseEvent
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
			return sseEvent{event: ":", data: line}, true
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[len("data: "):]
		}
	}
	return ev, false
}

func openStream(t *testing.T, url, lastID string) (*http.Response, *sseReader) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return resp, &sseReader{sc: bufio.NewScanner(resp.Body)}
}

// TestInvocationStream follows a run live over SSE: the first status, each
// history entry as it is recorded (ids are seqs; a task without I/O shows
// as TaskEnded), the terminal status, then the end of the stream; a
// reconnection with Last-Event-ID gets only what came after.
func TestInvocationStream(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok": true}`)
	}))
	defer backend.Close()
	eng, srv := startRealEngine(t, engine.Options{}, api.WithStreamHeartbeat(20*time.Millisecond))
	doc := `document: {dsl: '1.0.0', namespace: default, name: blocked, version: '1.0.0'}
do:
  - before:
      set: {n: 1}
  - fetch:
      call: http
      with: {method: get, endpoint: '` + backend.URL + `'}
  - after:
      set: {done: true}
`
	if _, err := eng.ApplyWorkflow(ctx, "blocked.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := eng.Invoke(ctx, "default", "blocked", "", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL + "/v1/invocations/" + inv.ID + "/stream"
	resp, sse := openStream(t, url, "")
	first, ok := sse.next()
	var status api.StreamStatus
	if !ok || first.event != "status" || json.Unmarshal([]byte(first.data), &status) != nil || status.Status != core.StatusRunning {
		t.Fatalf("first event %+v, want the running status", first)
	}
	// Read until the call is dispatched; only then let it answer, so that
	// what follows is live.
	var seen []core.EventType
	lastSeq := int64(0)
	readHistory := func(ev sseEvent) core.Event {
		t.Helper()
		var h core.Event
		if err := json.Unmarshal([]byte(ev.data), &h); err != nil {
			t.Fatalf("history event %q: %v", ev.data, err)
		}
		if ev.id != strconv.FormatInt(h.Seq, 10) || h.Seq != lastSeq+1 {
			t.Fatalf("history event id %q seq %d after seq %d", ev.id, h.Seq, lastSeq)
		}
		lastSeq = h.Seq
		seen = append(seen, h.Type)
		return h
	}
	for {
		ev, ok := sse.next()
		if !ok {
			t.Fatalf("stream ended early after %v", seen)
		}
		if ev.event == ":" {
			continue
		}
		if ev.event != "history" {
			t.Fatalf("unexpected %s event while running: %s", ev.event, ev.data)
		}
		if h := readHistory(ev); h.Type == core.TaskStarted {
			break
		}
	}
	// The stream stays open while the call runs, with heartbeats.
	if ev, ok := sse.next(); !ok || ev.event != ":" {
		t.Fatalf("while the call runs: %+v %v, want a heartbeat", ev, ok)
	}
	close(release)
	var end api.StreamStatus
	for {
		ev, ok := sse.next()
		if !ok {
			break
		}
		switch ev.event {
		case "history":
			readHistory(ev)
		case ":":
		case "status":
			if err := json.Unmarshal([]byte(ev.data), &end); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected %s event: %s", ev.event, ev.data)
		}
	}
	resp.Body.Close()
	want := []core.EventType{core.InvocationStarted, core.TaskEnded, core.TaskStarted, core.TaskCompleted, core.TaskEnded, core.InvocationCompleted}
	if strings.Join(typeNames(seen), ",") != strings.Join(typeNames(want), ",") {
		t.Errorf("history events %v, want %v", seen, want)
	}
	if end.Status != core.StatusCompleted || end.Seq != lastSeq {
		t.Errorf("last status %+v, want completed at seq %d", end, lastSeq)
	}

	// Resuming after seq 3 replays the rest and ends again.
	resp, sse = openStream(t, url, "3")
	defer resp.Body.Close()
	var ids []string
	for {
		ev, ok := sse.next()
		if !ok {
			break
		}
		if ev.event == "history" {
			ids = append(ids, ev.id)
		}
	}
	if want := []string{"4", "5", "6"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("resumed ids %v, want %v", ids, want)
	}

	// A bad Last-Event-ID is a problem document, an unknown id a 404.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Last-Event-ID", "x")
	bad, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest || bad.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("bad Last-Event-ID: %d %s", bad.StatusCode, bad.Header.Get("Content-Type"))
	}
	missing, err := http.Get(srv.URL + "/v1/invocations/nope/stream")
	if err != nil {
		t.Fatal(err)
	}
	missing.Body.Close()
	if missing.StatusCode != http.StatusNotFound {
		t.Errorf("unknown invocation: %d", missing.StatusCode)
	}
}

func typeNames(ts []core.EventType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}
