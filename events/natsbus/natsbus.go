// Package natsbus is Baton's event bus over NATS JetStream, for several
// servers that must share events: every event a server accepts is
// published to one stream, and each server reads the stream through a
// durable consumer of its own, so that events published while it is down
// are delivered when it comes back. Lifecycle events go out on plain NATS
// subjects, and NATS triggers subscribe with queue groups.
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonflow/baton/events"
)

// Defaults of Options.
const (
	DefaultStream          = "BATON_EVENTS"
	DefaultSubjectPrefix   = "baton.events"
	DefaultLifecyclePrefix = "baton.lifecycle"
)

// Options configure a Bus.
type Options struct {
	// Stream is the JetStream stream of events; it is created when absent.
	Stream string
	// SubjectPrefix: an event of type T is published on PREFIX.T (T's
	// characters that NATS subjects reserve replaced by '_'); the stream
	// captures PREFIX.>.
	SubjectPrefix string
	// LifecyclePrefix: lifecycle events go out on PREFIX.TYPE, outside the
	// stream (they are a live feed; the history is their record).
	LifecyclePrefix string
	// Consumer is the durable consumer name of this server; a restarted
	// server must use the same name to resume where it stopped.
	Consumer string
	Logger   *slog.Logger
}

// Bus is a connection to NATS with the event stream ensured.
type Bus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	log  *slog.Logger
}

// Connect connects to the NATS server at url and ensures the stream.
func Connect(ctx context.Context, url string, opts Options) (*Bus, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if opts.LifecyclePrefix == "" {
		opts.LifecyclePrefix = DefaultLifecyclePrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	nc, err := nats.Connect(url, nats.Name("baton"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     opts.Stream,
		Subjects: []string{opts.SubjectPrefix + ".>"},
		Storage:  jetstream.FileStorage,
		// Publishers set the message id to source and id, so a retried
		// publish within this window is stored once.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: ensuring stream %s (is JetStream enabled on the server?): %w", opts.Stream, err)
	}
	return &Bus{nc: nc, js: js, opts: opts, log: opts.Logger}, nil
}

// Conn is the underlying connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Close drains the connection.
func (b *Bus) Close() error {
	if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("nats: drain: %w", err)
	}
	return nil
}

// Subject is the subject an event of the given type is published on.
func (b *Bus) Subject(eventType string) string {
	return b.opts.SubjectPrefix + "." + subjectToken(eventType)
}

// subjectToken keeps an event type readable as subject tokens (its dots
// separate tokens, which lets subscribers use wildcards) while replacing
// what NATS reserves.
func subjectToken(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r == '*' || r == '>' || r == ' ' || r == '\t' || r == '\r' || r == '\n':
			sb.WriteByte('_')
		default:
			sb.WriteRune(r)
		}
	}
	out := strings.Trim(sb.String(), ".")
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", "._.")
	}
	if out == "" {
		return "_"
	}
	return out
}

// Publish implements events.Remote: the event, in structured mode, is
// stored in the stream before Publish returns.
func (b *Bus) Publish(ctx context.Context, ev events.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("nats: encoding event %v: %w", ev["id"], err)
	}
	typ, _ := ev["type"].(string)
	msg := &nats.Msg{Subject: b.Subject(typ), Data: data, Header: nats.Header{}}
	msg.Header.Set("Content-Type", events.ContentTypeStructured)
	id := fmt.Sprintf("%v %v", ev["source"], ev["id"])
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("nats: publishing event %v: %w", ev["id"], err)
	}
	return nil
}

// LifecyclePublisher publishes lifecycle events on plain subjects; it
// satisfies engine.EventPublisher.
type LifecyclePublisher struct{ b *Bus }

// Lifecycle returns the publisher of lifecycle events.
func (b *Bus) Lifecycle() *LifecyclePublisher { return &LifecyclePublisher{b: b} }

// Publish sends one lifecycle event; NATS buffers it, so a slow or absent
// subscriber never holds the engine up.
func (p *LifecyclePublisher) Publish(ctx context.Context, ev map[string]any) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("nats: encoding lifecycle event: %w", err)
	}
	typ, _ := ev["type"].(string)
	msg := &nats.Msg{Subject: p.b.opts.LifecyclePrefix + "." + subjectToken(typ), Data: data, Header: nats.Header{}}
	msg.Header.Set("Content-Type", events.ContentTypeStructured)
	if err := p.b.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("nats: publishing lifecycle event: %w", err)
	}
	return nil
}

// maxBatch bounds how many stream messages are appended to the log in one
// transaction.
const maxBatch = 256

// Consume reads the stream through this server's durable consumer until
// ctx is done, handing events to appendEvents in batches and
// acknowledging them only after appendEvents succeeded: a server killed in
// between gets them again, which the log's deduplication absorbs. A new
// consumer starts with the events published after its creation. When
// ready is not nil, Consume sends it nil once it consumes, or the error
// that kept it from starting.
func (b *Bus) Consume(ctx context.Context, appendEvents func(ctx context.Context, evs []events.Event) error, ready chan<- error) (err error) {
	started := false
	defer func() {
		if !started && ready != nil {
			ready <- err
		}
	}()
	if b.opts.Consumer == "" {
		return errors.New("nats: a durable consumer name is required")
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.opts.Stream, jetstream.ConsumerConfig{
		Durable:       b.opts.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * maxBatch,
	})
	if err != nil {
		return fmt.Errorf("nats: durable consumer %s: %w", b.opts.Consumer, err)
	}
	msgs := make(chan jetstream.Msg, maxBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(maxBatch))
	if err != nil {
		return fmt.Errorf("nats: consuming %s: %w", b.opts.Stream, err)
	}
	defer cc.Stop()
	started = true
	if ready != nil {
		ready <- nil
	}
	for {
		var batch []jetstream.Msg
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			batch = append(batch, m)
		}
		// Whatever else has arrived goes into the same append (one commit)
		// without waiting for more: latency stays that of one message.
	drain:
		for len(batch) < maxBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		b.appendBatch(ctx, batch, appendEvents)
	}
}

func (b *Bus) appendBatch(ctx context.Context, batch []jetstream.Msg, appendEvents func(ctx context.Context, evs []events.Event) error) {
	evs := make([]events.Event, 0, len(batch))
	valid := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		ev, p := events.FromMessage(m.Headers(), m.Data())
		if p != nil {
			// A malformed message would be redelivered forever; it is
			// reported and terminated instead.
			b.log.Warn("dropping an invalid event from the event stream", "subject", m.Subject(), "err", p.Detail)
			_ = m.Term()
			continue
		}
		evs = append(evs, ev)
		valid = append(valid, m)
	}
	if len(evs) == 0 {
		return
	}
	if err := appendEvents(ctx, evs); err != nil {
		b.log.Error("cannot log events from the event stream; they will be redelivered", "count", len(evs), "err", err)
		for _, m := range valid {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range valid {
		if err := m.Ack(); err != nil {
			b.log.Warn("acknowledging an event message failed; it may be delivered again", "err", err)
		}
	}
}

// Subscribe starts a NATS trigger: every message on subject is handed to
// handle once across the servers subscribed with the same queue group.
// The message id is the Nats-Msg-Id or ce-id header when present; the
// subject passed on is the message's own (the spec may be a wildcard). It
// returns a function that ends the subscription.
func (b *Bus) Subscribe(ctx context.Context, subject, queue string, handle func(ctx context.Context, id, subject string, payload []byte) error) (func(), error) {
	var wg sync.WaitGroup
	sub, err := b.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		wg.Add(1)
		defer wg.Done()
		id := m.Header.Get("Nats-Msg-Id")
		if id == "" {
			id = m.Header.Get("ce-id")
		}
		if err := handle(ctx, id, m.Subject, m.Data); err != nil {
			b.log.Error("NATS trigger failed", "subject", m.Subject, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("nats: subscribing to %s: %w", subject, err)
	}
	return func() {
		_ = sub.Unsubscribe()
		wg.Wait()
	}, nil
}
