package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/engine"
)

// clusterCollector exports a replica's part in the cluster to Prometheus,
// read from the engine at each scrape: the engine keeps the counts, this
// only presents them.
type clusterCollector struct {
	status func() (engine.ClusterStatus, bool)

	owned, sources                                     *prometheus.Desc
	renewals, renewalFailures, acquisitions, takeovers *prometheus.Desc
	losses, handovers, staleWrites                     *prometheus.Desc
}

func newClusterCollector(status func() (engine.ClusterStatus, bool)) *clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("baton_cluster_"+name, help, []string{"replica"}, nil)
	}
	return &clusterCollector{
		status:          status,
		owned:           d("partitions_owned", "Partitions this replica owns under a lease."),
		sources:         d("sources", "Schedules, schedule.on workflows and triggers this replica runs (those of its partitions)."),
		renewals:        d("lease_renewals_total", "Heartbeats that renewed this replica's leases."),
		renewalFailures: d("lease_renewal_failures_total", "Heartbeats that did not reach the database."),
		acquisitions:    d("partitions_acquired_total", "Partitions acquired."),
		takeovers:       d("takeovers_total", "Partitions acquired after their former owner's lease ran out (failovers)."),
		losses:          d("partitions_lost_total", "Partitions lost without a handover: a renewal that did not take or a refused write."),
		handovers:       d("handovers_total", "Partitions handed over gracefully."),
		staleWrites:     d("stale_writes_refused_total", "History writes the database refused because the partition had a newer epoch."),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.owned, c.sources, c.renewals, c.renewalFailures, c.acquisitions,
		c.takeovers, c.losses, c.handovers, c.staleWrites} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.status()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), s.Replica)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.Replica)
	}
	gauge(c.owned, len(s.Partitions))
	gauge(c.sources, len(s.Sources))
	counter(c.renewals, s.Renewals)
	counter(c.renewalFailures, s.RenewalFailures)
	counter(c.acquisitions, s.Acquisitions)
	counter(c.takeovers, s.Takeovers)
	counter(c.losses, s.Losses)
	counter(c.handovers, s.Handovers)
	counter(c.staleWrites, s.FencedWrites)
}
