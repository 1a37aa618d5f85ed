package policy

import (
	"context"
	"log/slog"
	"time"

	"github.com/batonflow/baton/store"
)

// Sweeper defaults.
const (
	DefaultSweepInterval = time.Minute
	DefaultSweepBatch    = 500
	// DefaultSweepMax bounds the invocations one pass removes, so that a
	// backlog (retention shortened, a server down for a month) is worked
	// off over several passes instead of one long burst of writes.
	DefaultSweepMax = 10000
)

// Sweeper removes finished invocations once their namespace's retention
// period has passed since they ended.
type Sweeper struct {
	Policies *Service
	Store    store.Retention
	Logger   *slog.Logger
	// Interval between passes, Batch per delete, Max per pass; the
	// defaults when zero.
	Interval time.Duration
	Batch    int
	Max      int
}

// Run sweeps every Interval until ctx is done.
func (s *Sweeper) Run(ctx context.Context) {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Pass(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log().Warn("retention sweep failed", "removed", n, "error", err)
		} else if n > 0 {
			s.log().Info("retention sweep removed finished invocations", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sweeper) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Pass removes what is due at now, up to Max invocations, and reports how
// many it removed. Namespaces with a policy document are swept by their
// own retention, every other one by the server's.
func (s *Sweeper) Pass(ctx context.Context, now time.Time) (int, error) {
	batch, max := s.Batch, s.Max
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	if max <= 0 {
		max = DefaultSweepMax
	}
	names, err := s.Policies.Namespaces(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	sweep := func(f store.EndedFilter) error {
		for removed < max {
			f.Limit = min(batch, max-removed)
			n, err := s.Store.DeleteEnded(ctx, f)
			removed += n
			if err != nil {
				return err
			}
			if n < f.Limit {
				return nil
			}
		}
		return nil
	}
	for _, ns := range names {
		eff, err := s.Policies.Effective(ctx, ns)
		if err != nil {
			return removed, err
		}
		if err := sweep(store.EndedFilter{Namespace: ns, Before: now.Add(-eff.Retention)}); err != nil {
			return removed, err
		}
	}
	def, err := s.Policies.Server().Resolve("", nil)
	if err != nil {
		return removed, err
	}
	err = sweep(store.EndedFilter{Except: names, Before: now.Add(-def.Retention)})
	return removed, err
}
