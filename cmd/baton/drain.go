package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// defaultDrainTimeout is how long a stopping server lets calls in flight
// return by default.
const defaultDrainTimeout = 30 * time.Second

// drainServer drains the engine before a stop (see engine.Drain): within
// timeout, or until a second SIGINT or SIGTERM, calls in flight return and
// are recorded, so that the next start sends none of them again.
func drainServer(eng *localEngine, timeout time.Duration, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			logger.Warn("second signal: stopping without waiting for calls in flight")
			cancel()
		case <-ctx.Done():
		}
	}()
	logger.Info("draining: new starts are refused; waiting for calls in flight", "timeout", timeout)
	begin := time.Now()
	err := eng.Drain(ctx)
	switch {
	case err == nil:
		logger.Info("drained", "duration", time.Since(begin).Round(time.Millisecond))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		logger.Warn("calls still in flight are cut off; the next start sends them again",
			"duration", time.Since(begin).Round(time.Millisecond))
	default:
		logger.Warn("draining failed", "error", err)
	}
}
