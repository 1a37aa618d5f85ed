package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
)

func TestMessageEventShape(t *testing.T) {
	tr := &store.Trigger{Name: "sensors", Kind: TriggerMQTT}
	now := time.Date(2026, 3, 2, 10, 0, 0, 123e6, time.UTC)
	got := messageEvent(tr, "run-1", "", "sensors/kitchen/temperature", []byte(`{"celsius": 21.5}`), now)
	want := map[string]any{
		"specversion": "1.0", "id": "run-1", "source": "/v1/triggers/sensors",
		"type": "dev.batonflow.trigger.mqtt", "subject": "sensors/kitchen/temperature",
		"time": "2026-03-02T10:00:00.123Z", "datacontenttype": "application/json",
		"data": map[string]any{"celsius": 21.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON payload: %v\nwant %v", got, want)
	}
	// A payload that is not JSON is text; a message id is the event's id.
	got = messageEvent(&store.Trigger{Name: "n", Kind: TriggerNATS}, "run-2", "msg-9", "a.b", []byte("hello"), now)
	if got["data"] != "hello" || got["datacontenttype"] != "text/plain" || got["id"] != "msg-9" || got["subject"] != "a.b" ||
		got["type"] != "dev.batonflow.trigger.nats" {
		t.Errorf("text payload: %v", got)
	}
}
