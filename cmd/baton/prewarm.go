package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/store"
)

// defaultKeepAlive is Baton's full policy: just-in-time prewarming and
// eviction after use for the functions workflows call after their first,
// the hybrid histogram policy for the others (entry functions, direct
// calls), which falls back to a fixed keep-alive while a function's
// arrivals are not regular enough to predict.
const defaultKeepAlive = "baton+hybrid"

// prewarmStateSaveEvery is how often a server saves the learned
// statistics, so that a crash loses little of them.
const prewarmStateSaveEvery = time.Minute

// prewarmConfig is the keep-alive and prewarming configuration of an
// engine's function layer. The zero value is the function layer's own
// default (fixed ten minutes, no prewarming), for commands that only
// deploy or call functions.
type prewarmConfig struct {
	keepAlive string
	prewarm   bool
	fixedIdle time.Duration
	// preload is the server's (addPreloadFlags).
	preload preloadConfig
}

func addPrewarmFlags(cmd *cobra.Command, cfg *prewarmConfig) {
	cmd.Flags().StringVar(&cfg.keepAlive, "keep-alive", defaultKeepAlive,
		"keep-alive policy of idle function instances: on-demand, fixed, hybrid, baton or baton+hybrid (see docs/prewarming.md)")
	cmd.Flags().BoolVar(&cfg.prewarm, "prewarm", true,
		"prepare function instances just in time for the calls workflows are predicted to make")
	cmd.Flags().DurationVar(&cfg.fixedIdle, "keep-alive-idle", time.Duration(function.DefaultKeepAlive),
		"idle timeout of the fixed policy, and of the hybrid policies while a function's arrivals are unpredictable")
}

// preparerBinding lets the planner and policies, made before the Manager
// they prepare through, reach it once it exists.
type preparerBinding struct {
	mu  sync.Mutex
	mgr *function.Manager
}

func (b *preparerBinding) Prepare(ctx context.Context, name string, by time.Time) error {
	b.mu.Lock()
	mgr := b.mgr
	b.mu.Unlock()
	if mgr == nil {
		return errors.New("the function manager is not running yet")
	}
	return mgr.Prepare(ctx, name, by)
}

// prewarming is the planner and keep-alive policy of a function host,
// with the loop that saves the planner's statistics in the store.
type prewarming struct {
	planner   *prewarm.Planner
	keepAlive function.KeepAlive
	observers []function.Observer
	binding   *preparerBinding
	log       *slog.Logger

	stopSaving context.CancelFunc
	saving     sync.WaitGroup
}

// newPrewarming builds the policy cfg names; nil for the zero config.
func newPrewarming(cfg prewarmConfig, st store.Store, logger *slog.Logger) (*prewarming, error) {
	if cfg.keepAlive == "" {
		return nil, nil
	}
	idle := cfg.fixedIdle
	if idle <= 0 {
		idle = time.Duration(function.DefaultKeepAlive)
	}
	b := &preparerBinding{}
	enabled := cfg.prewarm
	planner := prewarm.NewPlanner(prewarm.Options{
		Preparer: b, State: st, Logger: logger.With("component", "prewarm"),
		Enabled: func(*dsl.Workflow) bool { return enabled },
	})
	pw := &prewarming{planner: planner, binding: b, log: logger, observers: []function.Observer{planner}}
	// Every policy is at hand, so that a function's spec can name its
	// own (function.Spec.KeepAlive); --keep-alive is the default.
	named := map[string]function.KeepAlive{
		"on-demand":    prewarm.OnDemand{},
		"fixed":        prewarm.Fixed(idle),
		"hybrid":       prewarm.NewHybrid(prewarm.HybridOptions{Preparer: b, Fallback: prewarm.Fixed(idle)}),
		"baton":        prewarm.NewPredictive(planner, prewarm.OnDemand{}),
		"baton+hybrid": prewarm.NewPredictive(planner, prewarm.NewBatonHybrid(planner, prewarm.HybridOptions{Fallback: prewarm.Fixed(idle)})),
	}
	def, ok := named[cfg.keepAlive]
	if !ok {
		return nil, fmt.Errorf("--keep-alive %q: want one of %s", cfg.keepAlive, strings.Join(function.KeepAlivePolicies, ", "))
	}
	pw.keepAlive = prewarm.NewBySpec(def, named)
	return pw, nil
}

// bind points the planner and policies at the Manager.
func (p *prewarming) bind(mgr *function.Manager) {
	p.binding.mu.Lock()
	p.binding.mgr = mgr
	p.binding.mu.Unlock()
}

// observe adds the planner to the engine's task observers.
func (p *prewarming) observe(opts *engine.Options) {
	if opts.Observer == nil {
		opts.Observer = p.planner
		return
	}
	opts.Observer = prewarm.Observers{opts.Observer, p.planner}
}

// start loads the statistics saved by an earlier run (a failure leaves
// the safe defaults and is logged) and saves them periodically until
// stop.
func (p *prewarming) start(ctx context.Context) {
	if err := p.planner.Load(ctx); err != nil {
		p.log.Warn("prewarm statistics not loaded; starting from the defaults", "error", err)
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopSaving = cancel
	p.saving.Go(func() {
		tick := time.NewTicker(prewarmStateSaveEvery)
		defer tick.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-tick.C:
				if err := p.planner.Save(loopCtx); err != nil && loopCtx.Err() == nil {
					p.log.Warn("saving prewarm statistics failed", "error", err)
				}
			}
		}
	})
}

// stop ends the save loop and saves once more; the store must still be
// open.
func (p *prewarming) stop() error {
	if p.stopSaving != nil {
		p.stopSaving()
		p.saving.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.planner.Save(ctx)
}
