package engine

import (
	"encoding/json"
	"time"

	"github.com/batonflow/baton/store"
)

// messageEvent is the input of a run a NATS or MQTT trigger starts: the
// message as a CloudEvent, so that the workflow sees where it came from
// (a trigger on `sensors/+/temperature` must tell which sensor spoke) the
// way listen and schedule.on present events:
//
//	{"specversion": "1.0", "id": ID, "source": "/v1/triggers/NAME",
//	 "type": "dev.batonflow.trigger.mqtt", "subject": TOPIC, "time": T,
//	 "datacontenttype": "application/json", "data": PAYLOAD}
//
// subject is the NATS subject or MQTT topic the message was published on;
// data is the JSON payload, or the payload as text (datacontenttype
// text/plain) when it is not JSON. id is the message's id when it has one
// (Nats-Msg-Id, ce-id), else the run's id.
func messageEvent(t *store.Trigger, runID, msgID, topic string, payload []byte, now time.Time) map[string]any {
	var data any
	contentType := "application/json"
	if err := json.Unmarshal(payload, &data); err != nil {
		data, contentType = string(payload), "text/plain"
	}
	id := msgID
	if id == "" {
		id = runID
	}
	return map[string]any{
		"specversion":     "1.0",
		"id":              id,
		"source":          "/v1/triggers/" + t.Name,
		"type":            "dev.batonflow.trigger." + t.Kind,
		"subject":         topic,
		"time":            now.UTC().Format(time.RFC3339Nano),
		"datacontenttype": contentType,
		"data":            data,
	}
}
