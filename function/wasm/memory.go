package wasm

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// DefaultRecycledMemory is how many bytes of linear memory a Runtime keeps
// for new instances by default.
const DefaultRecycledMemory = 128 << 20

// memoryPool recycles the linear memories of closed instances. A fresh
// memory costs a cold start more than its allocation: every page the
// guest touches is faulted in (on a virtual machine, tens of microseconds
// a page), and growing it copies what is there. A recycled memory is
// resident already and as large as the last instance needed, which makes
// cold starts both shorter and steadier, and a steady start is one a
// prepare can be timed to.
//
// A memory is cleared before it is reused, so no instance sees another's
// data; it is cleared when its instance is closed, off the start path.
// The pool holds free memories up to a budget of bytes; beyond it they
// are left to the garbage collector.
type memoryPool struct {
	mu     sync.Mutex
	budget int64
	held   int64
	free   [][]byte // each all zeros up to its capacity
	closed bool
}

func newMemoryPool(budget int64) *memoryPool {
	return &memoryPool{budget: budget}
}

// memoryLease is the linear memory of one instance. wazero calling Free
// only says it is done with the memory; a guest stopped by its context
// may still be running, so the memory goes back to the pool when Baton
// closes the instance, after its last call has returned.
type memoryLease struct {
	pool  *memoryPool
	buf   []byte
	freed atomic.Bool // wazero may free from the goroutine that stops a call
}

// Reallocate implements experimental.LinearMemory. Memory only grows;
// bytes past the old length are zero, as the pool keeps them.
func (l *memoryLease) Reallocate(size uint64) []byte {
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Doubling amortises a guest growing page by page; only the pages it
	// touches become resident.
	grown := make([]byte, size, max(size, 2*uint64(cap(l.buf))))
	copy(grown, l.buf)
	l.buf = grown
	return l.buf
}

// Free implements experimental.LinearMemory.
func (l *memoryLease) Free() { l.freed.Store(true) }

// lease returns the memory of one instantiation to come: pass it to
// wazero with experimental.WithMemoryAllocator.
func (p *memoryPool) lease() *memoryLease { return &memoryLease{pool: p} }

// Allocate implements experimental.MemoryAllocator; a module has one
// memory, so it is called at most once per lease.
func (l *memoryLease) Allocate(capacity, _ uint64) experimental.LinearMemory {
	l.buf = l.pool.take(capacity)
	return l
}

// take returns an empty, zeroed buffer of at least the given capacity: the
// smallest recycled one that fits, or a new one.
func (p *memoryPool) take(capacity uint64) []byte {
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if uint64(cap(b)) >= capacity && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		p.free = slices.Delete(p.free, best, best+1)
		p.held -= int64(cap(b))
		p.mu.Unlock()
		return b[:0]
	}
	p.mu.Unlock()
	return make([]byte, 0, capacity)
}

// recycle takes back the memory of a closed instance. A memory wazero has
// not released (the instantiation failed before it owned one, say) is
// left alone.
func (p *memoryPool) recycle(l *memoryLease) {
	if l == nil || !l.freed.Load() || l.buf == nil {
		return
	}
	buf := l.buf
	l.buf = nil
	p.mu.Lock()
	fits := !p.closed && p.held+int64(cap(buf)) <= p.budget
	if fits {
		p.held += int64(cap(buf)) // reserved while clearing outside the lock
	}
	p.mu.Unlock()
	if !fits {
		return
	}
	clear(buf) // up to its length: past it, nothing was written since the last clear
	p.mu.Lock()
	if !p.closed { // close dropped the reservation with the rest
		p.free = append(p.free, buf[:0])
	}
	p.mu.Unlock()
}

// warmPage is the page size of the hosts Baton runs on: touching one byte
// in each makes a whole memory resident.
const warmPage = 4 << 10

// warm makes sure the pool holds n free memories of at least capacity
// bytes, within its budget, adding resident ones as needed. A process's
// first instances would otherwise start in fresh memories: faulting in
// every page the guest touches is most of such a cold start (12 ms of
// instantiation and 13 ms of initialisation for the Go SDK example under
// load, against 3.4 and 1.3 ms in a recycled memory), which a server
// better pays as it preloads, before the first calls.
func (p *memoryPool) warm(capacity uint64, n int) {
	p.mu.Lock()
	have := 0
	for _, b := range p.free {
		if uint64(cap(b)) >= capacity {
			have++
		}
	}
	add := n - have
	if room := p.budget - p.held; capacity > 0 && room > 0 {
		add = min(add, int(room/int64(capacity)))
	} else {
		add = 0
	}
	if p.closed || add <= 0 {
		p.mu.Unlock()
		return
	}
	p.held += int64(add) * int64(capacity) // reserved while faulting outside the lock
	p.mu.Unlock()
	bufs := make([][]byte, add)
	for i := range bufs {
		b := make([]byte, capacity)
		// Writing, not reading: a read maps the shared zero page.
		for j := 0; j < len(b); j += warmPage {
			b[j] = 0
		}
		bufs[i] = b[:0]
	}
	p.mu.Lock()
	if !p.closed { // close dropped the reservation with the rest
		p.free = append(p.free, bufs...)
	}
	p.mu.Unlock()
}

// close drops every recycled memory; later ones are not kept.
func (p *memoryPool) close() {
	p.mu.Lock()
	p.closed, p.free, p.held = true, nil, 0
	p.mu.Unlock()
}
