package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonflow/baton/store/sqlite/sqlitetest"
)

func testNATS(t *testing.T) string {
	t.Helper()
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

// startServerWith starts `baton server` with extra flags.
func startServerWith(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	return startServerArgs(t, nil, append([]string{"--data", dataDir}, extra...)...)
}

// TestListenSurvivesSIGKILLWithEventOverNATS kills a server while an
// invocation listens, publishes the awaited event to NATS while the
// server is down, and checks that the restarted server completes the
// invocation with that event: its durable consumer kept the event, and
// the listen's start position survived in the store.
func TestListenSurvivesSIGKILLWithEventOverNATS(t *testing.T) {
	natsURL := testNATS(t)
	var b [5]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	typ := "test." + id + ".order.placed"
	dir := t.TempDir()
	flags := []string{"--events", natsURL, "--events-consumer", "baton-test-" + id}

	srv := startServerWith(t, dir, flags...)
	defer func() {
		nc, err := nats.Connect(natsURL)
		if err == nil {
			js, _ := jetstream.New(nc)
			_ = js.DeleteConsumer(context.Background(), "BATON_EVENTS", "baton-test-"+id)
			nc.Close()
		}
	}()
	doc := `
document: {dsl: '1.0.0', namespace: shop, name: await, version: '1.0.0'}
do:
  - waitOrder:
      listen:
        to:
          one:
            with: {type: ` + typ + `}
            correlate:
              order: {from: .data.orderId, expect: '${ .orderId }'}
      output:
        as: .[0]
`
	if code := srv.do(t, http.MethodPost, "/v1/workflows", doc, nil); code != http.StatusCreated {
		t.Fatalf("apply: %d\n%s", code, srv.logs.String())
	}
	var started struct{ ID string }
	if code := srv.do(t, http.MethodPost, "/v1/workflows/shop/await/invocations", `{"orderId": "A1"}`, &started); code != http.StatusAccepted {
		t.Fatalf("invoke: %d", code)
	}
	// Kill the server once the listen has recorded where it starts reading.
	sqlitetest.WaitListenStarted(t, dir, started.ID, "/do/0/waitOrder")
	srv.kill(t)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []map[string]any{
		{"specversion": "1.0", "id": "other", "source": "/orders", "type": typ, "data": map[string]any{"orderId": "B2"}},
		{"specversion": "1.0", "id": "mine", "source": "/orders", "type": typ, "data": map[string]any{"orderId": "A1", "total": 9}},
	} {
		data, _ := json.Marshal(ev)
		if _, err := js.Publish(context.Background(), "baton.events."+typ, data); err != nil {
			t.Fatalf("publishing while the server is down: %v", err)
		}
	}

	srv = startServerWith(t, dir, flags...)
	defer srv.stop()
	var inv struct {
		Status string
		Output map[string]any
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		srv.do(t, http.MethodGet, "/v1/invocations/"+started.ID, "", &inv)
		if inv.Status != "running" && inv.Status != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation still %s after the restart; logs:\n%s", inv.Status, srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if inv.Status != "completed" || inv.Output["orderId"] != "A1" || inv.Output["total"] != 9.0 {
		t.Fatalf("invocation %s with output %v, want completed with order A1's data", inv.Status, inv.Output)
	}
}
