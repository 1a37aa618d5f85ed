package engine_test

import (
	"context"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/events/mqttsource"
	"github.com/batonflow/baton/events/natsbus"
	"github.com/batonflow/baton/store"
)

func mqttURL(t testing.TB) string {
	url := os.Getenv("BATON_TEST_MQTT")
	if url == "" {
		url = "tcp://127.0.0.1:1883"
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("baton-probe-" + uniqueName(t)).SetConnectTimeout(2 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MQTT broker at %s is required under CI: %v", url, tok.Error())
		}
		t.Skipf("MQTT broker at %s is not reachable: %v", url, tok.Error())
	}
	c.Disconnect(100)
	return url
}

const triggeredDoc = `
document: {dsl: '1.0.0', namespace: iot, name: ingest, version: '1.0.0'}
do:
  - echo:
      set: ${ . }
`

func waitInvocations(t *testing.T, st store.Store, n int) []*store.Invocation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		invs, _, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "iot", Workflow: "ingest"})
		if err != nil {
			t.Fatal(err)
		}
		if len(invs) >= n || time.Now().After(deadline) {
			return invs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMessageTriggers starts a workflow from an MQTT message and from a
// NATS message, each message's JSON payload becoming the input.
func TestMessageTriggers(t *testing.T) {
	mURL := mqttURL(t)
	nURL := natsURL(t)
	ctx := context.Background()
	id := uniqueName(t)
	src, err := mqttsource.Connect(ctx, mURL, "baton-test-"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bus, err := natsbus.Connect(ctx, nURL, natsbus.Options{Consumer: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	mqttSubs, natsSubs := watchSubscriptions(src), watchSubscriptions(bus)
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := eventEngine(t, st, events.NewLog(st.(store.EventLog), nil, nil), func(o *engine.Options) {
		o.TriggerSources = map[string]engine.TriggerSource{engine.TriggerMQTT: mqttSubs, engine.TriggerNATS: natsSubs}
	})
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "i.yaml", []byte(triggeredDoc)); err != nil {
		t.Fatal(err)
	}
	topic := "baton-test/" + id + "/temperature"
	subject := "baton-test." + id + ".readings"
	if _, err := e.CreateTrigger(ctx, &store.Trigger{Name: "m-" + id, Namespace: "iot", Workflow: "ingest", Kind: engine.TriggerMQTT, Spec: "baton-test/" + id + "/+"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTrigger(ctx, &store.Trigger{Name: "n-" + id, Namespace: "iot", Workflow: "ingest", Kind: engine.TriggerNATS, Spec: subject}); err != nil {
		t.Fatal(err)
	}
	// Subscriptions are made by the engine's next pass: publish once both
	// are in place.
	mqttSubs.wait(t, mqttSubs.subscribed, "baton-test/"+id+"/+")
	natsSubs.wait(t, natsSubs.subscribed, subject)

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mURL).SetClientID("baton-pub-" + id))
	if tok := pub.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish(topic, 1, false, `{"celsius": 21.5}`); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if err := bus.Conn().Publish(subject, []byte(`{"celsius": 19}`)); err != nil {
		t.Fatal(err)
	}
	invs := waitInvocations(t, st, 2)
	if len(invs) != 2 {
		t.Fatalf("%d invocations, want one per message", len(invs))
	}
	// Each input is the message as a CloudEvent: the payload in data, the
	// topic or subject it was published on in subject.
	seen := map[string]float64{}
	for _, inv := range invs {
		done := waitEnded(t, e, inv.ID)
		out, _ := done.Output.(map[string]any)
		if done.Status != core.StatusCompleted || out == nil {
			t.Fatalf("run %s output %v", done.Status, done.Output)
		}
		data, _ := out["data"].(map[string]any)
		subject, _ := out["subject"].(string)
		if out["specversion"] != "1.0" || data == nil || out["datacontenttype"] != "application/json" {
			t.Fatalf("input %v is not a CloudEvent carrying the payload", out)
		}
		seen[out["type"].(string)+" "+subject], _ = data["celsius"].(float64)
	}
	want := map[string]float64{
		"dev.batonflow.trigger.mqtt " + topic:   21.5,
		"dev.batonflow.trigger.nats " + subject: 19,
	}
	if len(seen) != 2 || seen["dev.batonflow.trigger.mqtt "+topic] != 21.5 || seen["dev.batonflow.trigger.nats "+subject] != 19 {
		t.Fatalf("inputs seen %v, want %v", seen, want)
	}
	// A deleted trigger stops.
	if err := e.DeleteTrigger(ctx, "m-"+id); err != nil {
		t.Fatal(err)
	}
	mqttSubs.wait(t, mqttSubs.unsubscribed, "baton-test/"+id+"/+")
	if tok := pub.Publish(topic, 1, false, `{"celsius": 0}`); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// Nothing must happen: give a delivery that should not come a second.
	time.Sleep(time.Second)
	if invs, _, _ := st.ListInvocations(ctx, store.InvocationFilter{Namespace: "iot", Workflow: "ingest"}); len(invs) != 2 {
		t.Fatalf("%d invocations after the trigger was deleted, want 2", len(invs))
	}
}

// subscriptions wraps a trigger source to report each subscription once
// it is in place and each one once it has been cancelled, so that a test
// publishes when a subscriber is there rather than after a guessed delay.
type subscriptions struct {
	engine.TriggerSource
	subscribed, unsubscribed chan string
}

func watchSubscriptions(src engine.TriggerSource) *subscriptions {
	return &subscriptions{TriggerSource: src, subscribed: make(chan string, 16), unsubscribed: make(chan string, 16)}
}

func (s *subscriptions) Subscribe(ctx context.Context, spec, queue string, handle func(ctx context.Context, id, topic string, payload []byte) error) (func(), error) {
	cancel, err := s.TriggerSource.Subscribe(ctx, spec, queue, handle)
	if err != nil {
		return nil, err
	}
	s.subscribed <- spec
	return func() {
		cancel()
		s.unsubscribed <- spec
	}, nil
}

func (s *subscriptions) wait(t *testing.T, ch chan string, spec string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == spec {
				return
			}
		case <-timeout:
			t.Fatalf("no subscription change for %s", spec)
		}
	}
}
