// Package mqttsource lets MQTT messages start workflows: Baton triggers of
// kind mqtt subscribe to a topic filter through it.
package mqttsource

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Source is one connection to an MQTT broker.
type Source struct {
	client mqtt.Client
	log    *slog.Logger
}

// Connect connects to the broker at url (tcp://host:1883). clientID must
// be unique per server.
func Connect(ctx context.Context, url, clientID string, logger *slog.Logger) (*Source, error) {
	if logger == nil {
		logger = slog.Default()
	}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetAutoReconnect(true).SetConnectRetry(false).SetOrderMatters(false).
		SetConnectTimeout(10 * time.Second)
	// Subscriptions are restored after a reconnection by the triggers'
	// own bookkeeping (a clean session keeps no state at the broker).
	opts.SetCleanSession(true)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if err := wait(ctx, tok); err != nil {
		return nil, fmt.Errorf("mqtt: connecting to %s: %w", url, err)
	}
	return &Source{client: c, log: logger}, nil
}

func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close disconnects, letting in-flight handlers finish for up to a second.
func (s *Source) Close() error {
	s.client.Disconnect(1000)
	return nil
}

// Subscribe hands every message on topic (QoS 1) to handle. With a queue
// group the subscription is shared ($share/QUEUE/TOPIC), so that servers
// subscribed with the same group each get a share of the messages rather
// than all of them. MQTT messages carry no id that outlives a session, so
// none is passed on: a message the broker redelivers starts a second
// invocation (QoS 1 is at-least-once). The topic passed on is the
// message's own (the filter may hold wildcards).
func (s *Source) Subscribe(ctx context.Context, topic, queue string, handle func(ctx context.Context, id, topic string, payload []byte) error) (func(), error) {
	filter := topic
	if queue != "" {
		filter = "$share/" + queue + "/" + topic
	}
	var wg sync.WaitGroup
	tok := s.client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		wg.Add(1)
		defer wg.Done()
		if err := handle(ctx, "", m.Topic(), m.Payload()); err != nil {
			s.log.Error("MQTT trigger failed", "topic", m.Topic(), "err", err)
		}
	})
	if err := wait(ctx, tok); err != nil {
		return nil, fmt.Errorf("mqtt: subscribing to %s: %w", filter, err)
	}
	return func() {
		_ = wait(context.Background(), s.client.Unsubscribe(filter))
		wg.Wait()
	}, nil
}
