package postgres

import (
	"testing"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/storetest"
)

// BenchmarkAppendParallel measures appends per second, each waiting for the
// commit of the batch that carries it, every run in a fresh schema.
func BenchmarkAppendParallel(b *testing.B) {
	requirePostgres(b)
	storetest.BenchAppendParallel(b, func(b *testing.B) (store.Store, storetest.WriteCounters) {
		s := openDSN(b, freshSchema(b))
		return s, func() (int64, int64) { st := s.Stats(); return st.Commits, st.Writes }
	})
}
