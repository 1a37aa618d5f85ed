package store

import (
	"context"
	"errors"
	"time"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
)

// ErrFenced is returned by a fenced write whose partition is no longer
// owned by the writer under the fence's epoch: another replica took it
// over. Nothing of the write is committed.
var ErrFenced = errors.New("fenced: the partition is owned by another replica")

// Fence names the lease under which a replica writes an invocation's
// history: the write commits only if the partition's row still has this
// owner and epoch and an unexpired lease, checked in the write's own
// transaction.
type Fence struct {
	Partition int
	Epoch     int64
	Owner     string
}

// CancelRequest is a cancellation asked of the replica that runs an
// invocation.
type CancelRequest struct {
	Invocation string
	Reason     string
}

// Coordinator is implemented by stores that several engine replicas share
// (store/postgres). It keeps the partitions, their leases and the
// replicas' heartbeats, on the database's clock; package cluster decides
// what to do with them.
type Coordinator interface {
	Store
	// Partitions is the cluster's partition count, fixed when the
	// database was created.
	Partitions() int
	// ClusterTick records replica's heartbeat (draining replicas take no
	// partitions), renews its leases where they are still its own and in
	// force, and reads the database's time, the live replicas and every
	// partition, in one transaction.
	ClusterTick(ctx context.Context, replica string, draining bool, leases []cluster.Lease, cfg cluster.Config) (cluster.Snapshot, error)
	// AcquirePartition takes partition row.Partition for replica if it
	// still has the observed epoch and is free or expired, bumping the
	// epoch; ok is false when another replica was first.
	AcquirePartition(ctx context.Context, replica string, row cluster.Row, ttl time.Duration) (lease cluster.Lease, ok bool, err error)
	// ReleasePartition gives a lease up and tells the other replicas.
	ReleasePartition(ctx context.Context, replica string, lease cluster.Lease) error
	// LeaveCluster forgets a replica's heartbeat and tells the others.
	LeaveCluster(ctx context.Context, replica string) error

	// CreateInvocationFenced and AppendFenced are CreateInvocation and
	// Append under a fence: they fail with ErrFenced, writing nothing,
	// when the fence no longer holds.
	CreateInvocationFenced(ctx context.Context, f Fence, inv *Invocation, events []core.Event, wait bool) error
	AppendFenced(ctx context.Context, f Fence, id string, events []core.Event, wait bool) error
	// RunningInPartitions returns the durable running invocations of the
	// given partitions.
	RunningInPartitions(ctx context.Context, partitions []int) ([]*Invocation, error)

	// RequestCancel records that a running invocation should be
	// cancelled for reason (may be empty), for its owner to apply;
	// ErrNotFound when there is no such invocation, ErrConflict when it
	// has ended. A second request for the same invocation keeps the first.
	RequestCancel(ctx context.Context, id, reason string) error
	// CancelRequests lists the requested cancellations of invocations in
	// the given partitions, oldest first; DoneCancel forgets one once it
	// is applied.
	CancelRequests(ctx context.Context, partitions []int) ([]CancelRequest, error)
	DoneCancel(ctx context.Context, id string) error

	// NotifyPartitions tells the owners of the partitions that new work
	// (a start, a cancellation) is waiting there.
	NotifyPartitions(ctx context.Context, partitions []int) error
	// ListenCluster calls fn with the partitions of every notification
	// (nil when a release or a departure asks replicas to look at the
	// partitions again, or when notifications may have been missed) until
	// ctx is done.
	ListenCluster(ctx context.Context, fn func(partitions []int)) error
}
