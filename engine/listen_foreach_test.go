package engine_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite/sqlitetest"
)

// TestListenForeachSurvivesRestart streams events through a listen with
// foreach, restarts the engine in the middle, and checks that each event
// was processed exactly once and in order.
func TestListenForeachSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var hits counter
	target := httptest.NewServer(&hits)
	defer target.Close()
	doc := `
document: {dsl: '1.0.0', namespace: test, name: each, version: '1.0.0'}
do:
  - readings:
      listen:
        to:
          any:
            - with: {type: sensor.reading}
          until:
            one:
              with: {type: sensor.closed}
      foreach:
        item: reading
        do:
          - record:
              call: http
              with:
                method: post
                endpoint: '` + target.URL + `/record'
                body: '${ $reading }'
          - value:
              set: '${ $reading.value }'
`
	ingest := func(log *events.Log, id, typ string, value float64) {
		t.Helper()
		ev := events.Event{"specversion": "1.0", "id": id, "source": "/sensor", "type": typ, "data": map[string]any{"value": value}}
		if _, err := log.Ingest(ctx, []events.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	st := openStore(t, dir)
	log := events.NewLog(st.(store.EventLog), nil, nil)
	e := eventEngine(t, st, log)
	if _, err := e.ApplyWorkflow(ctx, "each.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "test", "each", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Waiting for the calls' results to be recorded, not just for the calls
	// to arrive, keeps this about finished tasks: a call the engine stops
	// in flight is sent again with the same idempotency key, by design.
	waitRecorded := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			h, err := e.History(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			recorded := 0
			for _, ev := range h {
				if ev.Type == core.TaskCompleted && strings.Contains(ev.Task, "/record{") {
					recorded++
				}
			}
			if recorded >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d events processed", n)
			}
		}
	}
	// Feed the listen once it has recorded where it starts.
	sqlitetest.WaitListenStarted(t, dir, inv.ID, "")
	ingest(log, "r1", "sensor.reading", 1)
	ingest(log, "r2", "sensor.reading", 2)
	waitRecorded(2)
	e.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	log = events.NewLog(st.(store.EventLog), nil, nil)
	ingest(log, "r3", "sensor.reading", 3)
	e = eventEngine(t, st, log)
	defer e.Close()
	ingest(log, "end", "sensor.closed", 0)
	done := waitEnded(t, e, inv.ID)
	if done.Status != core.StatusCompleted {
		t.Fatalf("invocation %s: %v", done.Status, done.Error)
	}
	if want := []any{1.0, 2.0, 3.0}; !reflect.DeepEqual(done.Output, want) {
		t.Errorf("output %v, want %v", done.Output, want)
	}
	keys, total := hits.snapshot()
	if total != 3 || len(keys) != 3 {
		t.Errorf("events processed %d times with %d keys, want 3 and 3", total, len(keys))
	}
}
