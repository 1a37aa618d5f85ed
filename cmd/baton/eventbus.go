package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/events/mqttsource"
	"github.com/batonflow/baton/events/natsbus"
	"github.com/batonflow/baton/store"
)

// eventBus is the event log of a local engine and, when configured, its
// NATS and MQTT connections.
type eventBus struct {
	log    *events.Log
	nats   *natsbus.Bus
	mqtt   *mqttsource.Source
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// consumerName derives a durable consumer name that stays the same across
// restarts of the same server (host and database) and differs between
// servers.
func consumerName(dbPath string) string {
	host, _ := os.Hostname()
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		abs = dbPath
	}
	sum := sha256.Sum256([]byte(host + "\x00" + abs))
	return "baton-" + hex.EncodeToString(sum[:6])
}

func openEventBus(ctx context.Context, st store.EventLog, dbPath string, cfg engineConfig, logger *slog.Logger) (*eventBus, error) {
	b := &eventBus{logger: logger}
	var remote events.Remote
	if cfg.events != "" {
		if !strings.HasPrefix(cfg.events, "nats://") && !strings.HasPrefix(cfg.events, "tls://") {
			return nil, fmt.Errorf("--events %q: give a NATS URL (nats://HOST:PORT)", cfg.events)
		}
		name := cfg.eventsConsumer
		if name == "" {
			name = consumerName(dbPath)
		}
		nb, err := natsbus.Connect(ctx, cfg.events, natsbus.Options{Consumer: name, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--events: %w", err)
		}
		b.nats, remote = nb, nb
	}
	if cfg.mqtt != "" {
		src, err := mqttsource.Connect(ctx, cfg.mqtt, consumerName(dbPath)+"-mqtt", logger)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("--mqtt: %w", err), b.Close())
		}
		b.mqtt = src
	}
	b.log = events.NewLog(st, remote, logger)
	return b, nil
}

// configure wires the bus into the engine's options.
func (b *eventBus) configure(opts *engine.Options) {
	opts.EventLog = b.log
	opts.TriggerSources = map[string]engine.TriggerSource{}
	if b.nats != nil {
		opts.Events = b.nats.Lifecycle()
		opts.TriggerSources[engine.TriggerNATS] = b.nats
	}
	if b.mqtt != nil {
		opts.TriggerSources[engine.TriggerMQTT] = b.mqtt
	}
}

// start consumes the shared stream into the log, once the engine is
// running so that listens resumed by it are woken by what arrives.
func (b *eventBus) start() error {
	if b.nats == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	started := make(chan error, 1)
	go func() {
		defer close(b.done)
		err := b.nats.Consume(ctx, func(ctx context.Context, evs []events.Event) error {
			_, err := b.log.Append(ctx, evs)
			return err
		}, started)
		if err != nil {
			b.logger.Error("the event stream consumer stopped", "err", err)
		}
	}()
	return <-started
}

// Close stops consuming and closes the connections.
func (b *eventBus) Close() error {
	if b == nil {
		return nil
	}
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	var errs []error
	if b.mqtt != nil {
		errs = append(errs, b.mqtt.Close())
	}
	if b.nats != nil {
		errs = append(errs, b.nats.Close())
	}
	return errors.Join(errs...)
}
