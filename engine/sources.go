package engine

import (
	"slices"

	"github.com/batonflow/baton/cluster"
)

// Kinds of start sources: what starts invocations without a request.
const (
	sourceSchedule = "schedule"    // schedule.every/cron/after of a workflow version
	sourceOn       = "schedule.on" // event-driven starts of a workflow version
	sourceTrigger  = "trigger"     // cron triggers (hooks and message triggers run on every replica)
)

// sourcePartition maps a start source to a partition with the invocations'
// hash, so that it belongs to the partition's owner and moves with it.
func sourcePartition(kind, key string, partitions int) int {
	return cluster.PartitionOf(kind+"\x00"+key, partitions)
}

// ownedSources filters the sources of one kind this engine runs: all of
// them without a cluster; in a cluster, those whose partition it owns and
// is not handing over. The keys are remembered for ClusterStatus. A source
// runs on one replica at a time except for the moment a partition moves,
// when the deterministic invocation ids of its starts keep a slot from
// starting twice.
func (e *Engine) ownedSources(kind string, keys []string) map[string]bool {
	out := make(map[string]bool, len(keys))
	c := e.cluster
	if c == nil {
		for _, k := range keys {
			out[k] = true
		}
		return out
	}
	var mine []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if c.node.Accepting(sourcePartition(kind, k, c.cfg.Partitions)) {
			out[k] = true
			mine = append(mine, kind+" "+k)
		}
	}
	slices.Sort(mine)
	c.sources[kind] = mine
	return out
}

// sourcesRun lists the start sources this replica ran in its latest
// passes, as "kind key", sorted.
func (c *clusterState) sourcesRun() []string {
	var out []string
	for _, list := range c.sources {
		out = append(out, list...)
	}
	slices.Sort(out)
	return out
}

// sourcesMoved makes the scheduler and the event starter look again at
// once: partitions were gained or lost, and with them start sources.
func (e *Engine) sourcesMoved() {
	e.sched.kick()
	if e.starter != nil {
		e.starter.kick()
	}
}
