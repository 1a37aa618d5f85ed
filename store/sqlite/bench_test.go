package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/storetest"
)

// BenchmarkAppendParallel measures durable appends per second, each
// waiting for the fsync of the group commit that carries it.
func BenchmarkAppendParallel(b *testing.B) {
	storetest.BenchAppendParallel(b, func(b *testing.B) (store.Store, storetest.WriteCounters) {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "baton.db"))
		if err != nil {
			b.Fatal(err)
		}
		return s, func() (int64, int64) { st := s.Stats(); return st.Commits, st.Writes }
	})
}
