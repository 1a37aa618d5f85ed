package engine_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/events/natsbus"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite/sqlitetest"
)

func uniqueName(t testing.TB) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// natsURL returns the test NATS server, skipping (failing under CI) when
// it is not reachable.
func natsURL(t testing.TB) string {
	url := os.Getenv("BATON_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS at %s is required under CI: %v", url, err)
		}
		t.Skipf("NATS at %s is not reachable: %v", url, err)
	}
	nc.Close()
	return url
}

func eventEngine(t testing.TB, st store.Store, log *events.Log, opts ...func(*engine.Options)) *engine.Engine {
	return newEngine(t, st, append([]func(*engine.Options){func(o *engine.Options) { o.EventLog = log }}, opts...)...)
}

func waitEnded(t testing.TB, e *engine.Engine, id string) *store.Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	inv, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatalf("invocation %s did not end: %v", id, err)
	}
	return inv
}

func postEvent(t testing.TB, url string, ev map[string]any) {
	t.Helper()
	body, _ := json.Marshal(ev)
	resp, err := http.Post(url+"/v1/events", events.ContentTypeStructured, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		t.Fatalf("POST /v1/events: %d %v", resp.StatusCode, p)
	}
}

const orderShipDoc = `
document: {dsl: '1.0.0', namespace: shop, name: fulfil, version: '1.0.0'}
do:
  - waitOrder:
      listen:
        to:
          one:
            with:
              type: TYPE.order.placed
            correlate:
              order:
                from: .data.orderId
                expect: ${ .orderId }
      output:
        as: .[0]
  - ship:
      emit:
        event:
          with:
            source: /shop
            type: TYPE.shipment.created
            data:
              orderId: ${ .orderId }
              total: ${ .total }
`

// TestListenThenEmitOverHTTPAndNATS is the check: a workflow
// listens for an order event, which is posted over HTTP, and emits a
// shipment event, which a plain NATS subscriber receives.
func TestListenThenEmitOverHTTPAndNATS(t *testing.T) {
	url := natsURL(t)
	ctx := context.Background()
	id := uniqueName(t)
	bus, err := natsbus.Connect(ctx, url, natsbus.Options{
		Stream: "BATON_TEST_" + strings.ToUpper(id), SubjectPrefix: "batontest." + id, Consumer: "engine-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	js, _ := bus.Conn().JetStream()
	defer js.DeleteStream("BATON_TEST_" + strings.ToUpper(id))

	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	log := events.NewLog(st.(store.EventLog), bus, nil)
	e := eventEngine(t, st, log, func(o *engine.Options) { o.Events = bus.Lifecycle() })
	defer e.Close()
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	consumed := make(chan struct{})
	ready := make(chan error, 1)
	go func() {
		defer close(consumed)
		_ = bus.Consume(consumeCtx, func(ctx context.Context, evs []events.Event) error {
			_, err := log.Append(ctx, evs)
			return err
		}, ready)
	}()
	defer func() { stopConsuming(); <-consumed }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}

	sub, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	shipments, err := sub.SubscribeSync("batontest." + id + ".shop." + id + ".shipment.created")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(api.NewHandler(e))
	defer srv.Close()
	doc := strings.ReplaceAll(orderShipDoc, "TYPE", "shop."+id)
	if _, err := e.ApplyWorkflow(ctx, "fulfil.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	// An order placed before the listen starts is not consumed.
	postEvent(t, srv.URL, map[string]any{"specversion": "1.0", "id": "early", "source": "/orders", "type": "shop." + id + ".order.placed", "data": map[string]any{"orderId": "A1", "total": 1}})
	inv, err := e.Invoke(ctx, "shop", "fulfil", "", map[string]any{"orderId": "A1"})
	if err != nil {
		t.Fatal(err)
	}
	sqlitetest.WaitListenStarted(t, dir, inv.ID, "/do/0/waitOrder")
	// Another order's event does not match the correlation.
	postEvent(t, srv.URL, map[string]any{"specversion": "1.0", "id": "o-2", "source": "/orders", "type": "shop." + id + ".order.placed", "data": map[string]any{"orderId": "B2", "total": 2}})
	postEvent(t, srv.URL, map[string]any{"specversion": "1.0", "id": "o-1", "source": "/orders", "type": "shop." + id + ".order.placed", "data": map[string]any{"orderId": "A1", "total": 42}})

	done := waitEnded(t, e, inv.ID)
	if done.Status != core.StatusCompleted {
		t.Fatalf("invocation %s: %v", done.Status, done.Error)
	}
	msg, err := shipments.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no shipment event on NATS: %v", err)
	}
	var shipment map[string]any
	if err := json.Unmarshal(msg.Data, &shipment); err != nil {
		t.Fatal(err)
	}
	data, _ := shipment["data"].(map[string]any)
	if shipment["type"] != "shop."+id+".shipment.created" || shipment["specversion"] != "1.0" || data["orderId"] != "A1" || data["total"] != 42.0 {
		t.Fatalf("shipment event %v", shipment)
	}
}

// TestListenSurvivesRestart checks that a listen re-issued by a restarted
// engine consumes the events logged while it was down.
func TestListenSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	log := events.NewLog(st.(store.EventLog), nil, nil)
	e := eventEngine(t, st, log)
	doc := `
document: {dsl: '1.0.0', namespace: shop, name: collect, version: '1.0.0'}
do:
  - gather:
      listen:
        to:
          all:
            - with: {type: paid}
            - with: {type: packed}
        read: envelope
`
	if _, err := e.ApplyWorkflow(ctx, "c.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "shop", "collect", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sqlitetest.WaitListenStarted(t, dir, inv.ID, "/do/0/gather")
	if _, err := e.IngestEvents(ctx, []events.Event{{"specversion": "1.0", "id": "1", "source": "/s", "type": "paid"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	e.Close()
	// While the engine is down: the second event, and the first again
	// (redelivered), which must not count twice.
	if _, err := log.Ingest(ctx, []events.Event{
		{"specversion": "1.0", "id": "1", "source": "/s", "type": "paid"},
		{"specversion": "1.0", "id": "2", "source": "/s", "type": "packed"},
	}); err != nil {
		t.Fatal(err)
	}
	e2 := eventEngine(t, st, log)
	defer st.Close()
	defer e2.Close()
	done := waitEnded(t, e2, inv.ID)
	if done.Status != core.StatusCompleted {
		t.Fatalf("invocation %s: %v", done.Status, done.Error)
	}
	out, _ := done.Output.([]any)
	if len(out) != 2 || out[0].(map[string]any)["id"] != "1" || out[1].(map[string]any)["id"] != "2" {
		t.Fatalf("output %v, want the paid then the packed envelope", done.Output)
	}
}

const onDoc = `
document: {dsl: '1.0.0', namespace: shop, name: onorder, version: '1.0.0'}
schedule:
  on:
    one:
      with:
        type: order.placed
do:
  - note:
      set: {order: '${ $workflow.input[0].data.orderId }'}
`

func startsOf(t testing.TB, st store.Store) map[string]string {
	t.Helper()
	invs, _, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "shop", Workflow: "onorder", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, inv := range invs {
		in, _ := inv.Input.([]any)
		if len(in) != 1 {
			t.Fatalf("input %v, want one event", inv.Input)
		}
		out[inv.ID] = in[0].(map[string]any)["id"].(string)
	}
	return out
}

func waitStarts(t testing.TB, st store.Store, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := startsOf(t, st)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScheduleOnStartsOncePerEvent checks exactly-once starts: each
// matching event starts one run, a redelivered event none, and a cursor
// that went back (an engine that crashed after starting runs but before
// recording it) starts nothing again.
func TestScheduleOnStartsOncePerEvent(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	el := st.(store.EventLog)
	log := events.NewLog(el, nil, nil)
	e := eventEngine(t, st, log)
	if _, err := log.Ingest(ctx, []events.Event{{"specversion": "1.0", "id": "before", "source": "/o", "type": "order.placed", "data": map[string]any{"orderId": "0"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ApplyWorkflow(ctx, "on.yaml", []byte(onDoc)); err != nil {
		t.Fatal(err)
	}
	ingest := func(ids ...string) {
		var evs []events.Event
		for _, id := range ids {
			evs = append(evs, events.Event{"specversion": "1.0", "id": id, "source": "/o", "type": "order.placed", "data": map[string]any{"orderId": id}})
			evs = append(evs, events.Event{"specversion": "1.0", "id": id + "-other", "source": "/o", "type": "order.cancelled"})
		}
		if _, err := log.Ingest(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	ingest("a", "b")
	ingest("a") // redelivered
	ingest("c")
	got := waitStarts(t, st, 3)
	time.Sleep(200 * time.Millisecond)
	got = startsOf(t, st)
	want := map[string]bool{"a": true, "b": true, "c": true}
	if len(got) != 3 {
		t.Fatalf("runs %v, want one per event a, b, c", got)
	}
	for _, ev := range got {
		if !want[ev] {
			t.Fatalf("run started by event %q: %v", ev, got)
		}
	}
	e.Close()

	cursor := "on/shop/onorder/1.0.0"
	pos, err := el.EventCursor(ctx, cursor, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Back to where the workflow was applied: just after "before".
	first, err := el.ListEvents(ctx, store.EventFilter{Source: "/o", Limit: 1})
	if err != nil || len(first) != 1 || first[0].ID != "before" {
		t.Fatalf("first event %v %v", first, err)
	}
	if ok, err := el.AdvanceEventCursor(ctx, cursor, pos, first[0].Seq); err != nil || !ok {
		t.Fatalf("rewinding the cursor: %v %v", ok, err)
	}
	e2 := eventEngine(t, st, log)
	defer e2.Close()
	ingest("d")
	got = waitStarts(t, st, 4)
	time.Sleep(200 * time.Millisecond)
	got = startsOf(t, st)
	if len(got) != 4 {
		t.Fatalf("after a rewind and a new event: runs %v, want a, b, c, d once each", got)
	}
}

func TestHTTPTriggerAndCron(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := eventEngine(t, st, events.NewLog(st.(store.EventLog), nil, nil))
	defer e.Close()
	doc := `
document: {dsl: '1.0.0', namespace: shop, name: hooked, version: '1.0.0'}
do:
  - echo:
      set: ${ . }
`
	if _, err := e.ApplyWorkflow(ctx, "h.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTrigger(ctx, &store.Trigger{Name: "orders", Namespace: "shop", Workflow: "hooked", Kind: engine.TriggerHTTP, Spec: "orders"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*store.Trigger{
		{Name: "Bad Name", Namespace: "shop", Workflow: "hooked", Kind: "http", Spec: "x"},
		{Name: "nowf", Namespace: "shop", Workflow: "missing", Kind: "http", Spec: "y"},
		{Name: "badcron", Namespace: "shop", Workflow: "hooked", Kind: "cron", Spec: "61 * * * *"},
		{Name: "nonats", Namespace: "shop", Workflow: "hooked", Kind: "nats", Spec: "a.b"},
		{Name: "taken", Namespace: "shop", Workflow: "hooked", Kind: "http", Spec: "orders"},
	} {
		if _, err := e.CreateTrigger(ctx, bad); err == nil {
			t.Errorf("trigger %+v accepted", bad)
		}
	}
	srv := httptest.NewServer(api.NewHandler(e))
	defer srv.Close()
	var lastLocation, lastReplayed string
	postBody := func(key, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/hooks/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lastLocation, lastReplayed = resp.Header.Get("Location"), resp.Header.Get("Idempotent-Replayed")
		var answer struct{ ID, Detail string }
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		if answer.ID == "" {
			answer.ID = answer.Detail
		}
		return resp.StatusCode, answer.ID
	}
	post := func(key string) (int, string) { return postBody(key, `{"n": 7}`) }
	code, id := post("k1")
	if code != http.StatusAccepted {
		t.Fatalf("hook: %d", code)
	}
	if inv := waitEnded(t, e, id); inv.Status != core.StatusCompleted || inv.Output.(map[string]any)["n"] != 7.0 {
		t.Fatalf("hook run %s output %v", inv.Status, inv.Output)
	}
	// The same request again is answered as the first was: the same
	// invocation, not a second one (IETF Idempotency-Key draft).
	if code, again := post("k1"); code != http.StatusAccepted || again != id ||
		lastLocation != "/v1/invocations/"+id || lastReplayed != "true" {
		t.Fatalf("the same request again: %d, id %q (first %q), Location %q, Idempotent-Replayed %q",
			code, again, id, lastLocation, lastReplayed)
	}
	// The key reused with another body is refused, naming the invocation
	// the key started.
	if code, detail := postBody("k1", `{"n": 8}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(detail, id) || lastLocation != "/v1/invocations/"+id {
		t.Fatalf("the key with another body: %d, %q, Location %q", code, detail, lastLocation)
	}
	if code, _ := post(""); code != http.StatusAccepted {
		t.Fatalf("hook without key: %d", code)
	}
	resp, err := http.Post(srv.URL+"/v1/hooks/nothing", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown hook: %d", resp.StatusCode)
	}

	// A cron trigger whose slot is due runs once, and moves to the next slot.
	tr, err := e.CreateTrigger(ctx, &store.Trigger{Name: "minutely", Namespace: "shop", Workflow: "hooked", Kind: engine.TriggerCron, Spec: "* * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	el := st.(store.EventLog)
	due := time.Now().UTC().Add(-time.Minute).Truncate(time.Minute)
	moved := *tr
	moved.NextRun = due
	if ok, err := el.AdvanceTrigger(ctx, &moved, tr.NextRun); err != nil || !ok {
		t.Fatalf("making the slot due: %v %v", ok, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cur, err := el.GetTrigger(ctx, "minutely")
		if err != nil {
			t.Fatal(err)
		}
		if cur.LastInvocation != "" {
			if !cur.LastRun.Equal(due) || !cur.NextRun.After(time.Now()) {
				t.Fatalf("after the slot: last %v next %v", cur.LastRun, cur.NextRun)
			}
			if inv := waitEnded(t, e, cur.LastInvocation); inv.Status != core.StatusCompleted {
				t.Fatalf("cron run %s", inv.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the due cron slot did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
