package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store"
)

// clusterConfig is how a server on a shared PostgreSQL store takes part
// in the cluster of replicas (see docs/scaling.md).
type clusterConfig struct {
	leaseTTL time.Duration
	grace    time.Duration
	replica  string
}

// addClusterFlags adds the flags of replicas sharing PostgreSQL.
func addClusterFlags(cmd *cobra.Command, cfg *engineConfig) {
	cmd.Flags().DurationVar(&cfg.cluster.leaseTTL, "lease-ttl", cluster.DefaultLeaseTTL,
		"with --store postgres://: how long a replica's partition leases last on the database's clock; "+
			"a killed replica's partitions move within this plus a ninth of it (renewed every third of it)")
	cmd.Flags().DurationVar(&cfg.cluster.grace, "handover-grace", engine.DefaultHandoverGrace,
		"with --store postgres://: how long a partition handed over at shutdown waits for its in-flight calls")
	cmd.Flags().StringVar(&cfg.cluster.replica, "replica-id", "",
		"with --store postgres://: this run's replica name in the cluster (default host-pid-random)")
}

// configure makes the engine a replica when its store is shared.
func (c clusterConfig) configure(opts *engine.Options, st *openedStore) error {
	if !st.shared {
		return nil
	}
	co, ok := st.engineStore.(store.Coordinator)
	if !ok {
		return fmt.Errorf("store %s cannot coordinate replicas", st.desc)
	}
	ttl := c.leaseTTL
	if ttl <= 0 {
		ttl = cluster.DefaultLeaseTTL
	}
	if ttl < 300*time.Millisecond {
		return fmt.Errorf("--lease-ttl %v: use at least 300ms", ttl)
	}
	opts.Cluster = &engine.ClusterOptions{
		Coordinator: co,
		ReplicaID:   c.replica,
		Config: cluster.Config{
			LeaseTTL:   ttl,
			RenewEvery: ttl / 3,
			// Under the lease, so that a dead replica stops counting
			// before its leases run out.
			ReplicaTTL: ttl * 7 / 10,
		},
		HandoverGrace: c.grace,
	}
	return nil
}

// leaveCluster hands this replica's partitions over before the server
// stops, so that the others take them at once rather than after the
// lease; bounded by the handover grace and a margin for the round trips.
func (l *localEngine) leaveCluster(logger *slog.Logger, grace time.Duration) {
	if _, clustered := l.ClusterStatus(); !clustered {
		return
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel()
	if err := l.LeaveCluster(ctx); err != nil {
		logger.Warn("partitions not all handed over; the others take them when the leases run out", "err", err)
		return
	}
	logger.Info("partitions handed over", "took", time.Since(began))
}
