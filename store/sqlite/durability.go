package sqlite

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// errSyncFailed marks the failure of the WAL's fsync, after which the
// store takes no more writes.
var errSyncFailed = errors.New("sqlite store: WAL fsync failed")

// durability tracks which of the writer's transactions are on disk, so
// that readers hand out nothing a crash could take back.
//
// The writer numbers each transaction (publish) just before its COMMIT,
// which is when readers may start to see it; the syncer reports the
// number up to which the WAL is synced (advance). A read that may have
// seen transaction n waits until n is synced (wait): whatever a reader's
// snapshot holds was published before the snapshot began, so the number
// published when the reader checks, after its snapshot began, covers it.
type durability struct {
	visible atomic.Uint64
	synced  atomic.Uint64

	mu sync.Mutex
	// err is the fsync failure that stopped the store, if any.
	err error
	// advanced is closed, and replaced, whenever synced grows or err is
	// set; the writer makes the first.
	advanced chan struct{}
}

// publish numbers the transaction about to commit.
func (d *durability) publish() uint64 { return d.visible.Add(1) }

// advance records that every transaction up to n is durable, or that the
// fsync meant to make them so failed.
func (d *durability) advance(n uint64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil && d.err == nil {
		d.err = err
	}
	if d.err == nil && n > d.synced.Load() {
		d.synced.Store(n)
	}
	close(d.advanced)
	d.advanced = make(chan struct{})
}

// failed returns the fsync failure that stopped the store, or nil.
func (d *durability) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// wait returns once every transaction published so far is durable, or
// with the fsync failure that means it may never be.
func (d *durability) wait(ctx context.Context) error {
	target := d.visible.Load()
	for {
		if d.synced.Load() >= target {
			return nil
		}
		d.mu.Lock()
		err, advanced := d.err, d.advanced
		d.mu.Unlock()
		if err != nil {
			return err
		}
		if d.synced.Load() >= target {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
