package qos

import (
	"context"
	"testing"
)

// BenchmarkAdmitUncontended is G1's cost for a start that finds no queue:
// the price of QoS on the hot path of an engine without contention.
func BenchmarkAdmitUncontended(b *testing.B) {
	s := New(Options{})
	ctx := context.Background()
	st := Start{Class: Standard, Namespace: "ns"}
	b.ReportAllocs()
	for b.Loop() {
		tk, err := s.Admit(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		tk.Settle()
	}
}

// BenchmarkAcquireUncontended is G2's cost for a call that finds a free
// seat.
func BenchmarkAcquireUncontended(b *testing.B) {
	s := New(Options{})
	ctx := context.Background()
	c := Call{Pool: PoolWasm, Function: "f", Class: Standard, Flow: "ns"}
	b.ReportAllocs()
	for b.Loop() {
		release, err := acquire(ctx, s, c)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}
