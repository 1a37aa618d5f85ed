package wasm

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/batonflow/baton/function"
	"github.com/tetratelabs/wazero/experimental"
)

// allocate does what wazero does with a lease: allocate a memory of the
// given capacity and give it its initial length.
func allocate(p *memoryPool, capacity, length uint64) *memoryLease {
	l := p.lease()
	l.Allocate(capacity, 1<<30).Reallocate(length)
	return l
}

func TestMemoryPoolReusesClearedMemory(t *testing.T) {
	p := newMemoryPool(64 << 20)
	first := allocate(p, 1<<20, 1<<20)
	buf := first.Reallocate(3 << 20) // the guest grows its memory
	if len(buf) != 3<<20 || cap(buf) < 3<<20 {
		t.Fatalf("grown to len %d cap %d", len(buf), cap(buf))
	}
	for i := range buf {
		buf[i] = 0xA5
	}
	backing := &buf[0]

	p.recycle(first) // not freed by wazero yet: kept by the instance
	if p.heldBytes() != 0 {
		t.Fatal("a memory wazero still owns was recycled")
	}
	first.Free()
	p.recycle(first)
	if got := p.heldBytes(); got < 3<<20 {
		t.Fatalf("held %d bytes after recycling a 3 MiB memory", got)
	}

	second := allocate(p, 1<<20, 1<<20)
	grown := second.Reallocate(3 << 20)
	if &grown[0] != backing {
		t.Fatal("the recycled memory was not reused")
	}
	for i, b := range grown[:cap(grown)] {
		if b != 0 {
			t.Fatalf("byte %d of a recycled memory is %#x, want 0", i, b)
		}
	}
	if p.heldBytes() != 0 {
		t.Fatalf("held %d bytes while the memory is in use", p.heldBytes())
	}
}

func TestMemoryPoolBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		budget   int64
		memories int
		wantHeld int64
	}{
		{"within budget", 4 << 20, 2, 2 << 20},
		{"over budget", 3 << 20, 4, 3 << 20},
		{"disabled", -1, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newMemoryPool(tc.budget)
			var leases []*memoryLease
			for range tc.memories {
				leases = append(leases, allocate(p, 1<<20, 1<<20))
			}
			for _, l := range leases {
				l.Free()
				p.recycle(l)
			}
			if got := p.heldBytes(); got != tc.wantHeld {
				t.Fatalf("held %d bytes, want %d", got, tc.wantHeld)
			}
			p.close()
			l := allocate(p, 1<<20, 1<<20)
			l.Free()
			p.recycle(l)
			if p.heldBytes() != 0 {
				t.Fatal("a closed pool keeps memory")
			}
		})
	}
}

// Instances of reactors and commands start in recycled memory and behave
// as in fresh memory.
func TestInstancesRunInRecycledMemory(t *testing.T) {
	rt := newRuntime(t, "")
	ctx := context.Background()
	hello := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(t, helloGo)}
	for round := range 3 {
		inst, _, err := rt.Start(ctx, hello)
		if err != nil {
			t.Fatal(err)
		}
		if round > 0 && rt.memory.heldBytes() != 0 {
			t.Fatalf("round %d: the instance did not take the recycled memory", round)
		}
		out, err := inst.Invoke(ctx, json.RawMessage(`{"name":"Ada"}`))
		if err != nil || string(out) != `{"greeting":"Hello, Ada!"}` {
			t.Fatalf("round %d: %s, %v", round, out, err)
		}
		inst.Close(ctx)
		if rt.memory.heldBytes() == 0 {
			t.Fatalf("round %d: the closed instance's memory was not recycled", round)
		}
	}

	cmd := &function.Spec{Name: "cmd", Version: "1", Runtime: function.KindWasm, Artifact: built(t, commandFn)}
	inst, _, err := rt.Start(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	for i := range 3 {
		out, err := inst.Invoke(ctx, json.RawMessage(`{"op":"echo","value":`+string(rune('0'+i))+`}`))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil || got["value"] != float64(i) {
			t.Fatalf("call %d: %s, %v", i, out, err)
		}
	}
}

var (
	_ experimental.MemoryAllocator = (*memoryLease)(nil)
	_ experimental.LinearMemory    = (*memoryLease)(nil)
)

// heldBytes is the capacity of the recycled memories waiting for reuse.
func (p *memoryPool) heldBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

func TestMemoryPoolWarm(t *testing.T) {
	p := newMemoryPool(64 << 20)
	p.warm(1<<20, 2)
	if got := p.heldBytes(); got != 2<<20 {
		t.Fatalf("held %d bytes after warming two 1 MiB memories", got)
	}
	p.warm(1<<20, 2) // enough already
	p.warm(512<<10, 2)
	if got := p.heldBytes(); got != 2<<20 {
		t.Fatalf("held %d bytes after warming what the pool had", got)
	}
	// A start takes a warm memory, zeroed and large enough to grow in.
	l := allocate(p, 512<<10, 512<<10)
	buf := l.Reallocate(1 << 20)
	if cap(buf) != 1<<20 || p.heldBytes() != 1<<20 {
		t.Fatalf("the start got cap %d, pool holds %d", cap(buf), p.heldBytes())
	}
	for i, b := range buf {
		if b != 0 {
			t.Fatalf("byte %d of a warm memory is %#x", i, b)
		}
	}

	small := newMemoryPool(3 << 19) // 1.5 MiB: room for one
	small.warm(1<<20, 2)
	if got := small.heldBytes(); got != 1<<20 {
		t.Fatalf("held %d bytes with a 1.5 MiB budget", got)
	}
	for _, budget := range []int64{-1, 64 << 20} {
		none := newMemoryPool(budget)
		if budget > 0 {
			none.close()
		}
		none.warm(1<<20, 2)
		if got := none.heldBytes(); got != 0 {
			t.Fatalf("budget %d: held %d bytes, want none", budget, got)
		}
	}
}
