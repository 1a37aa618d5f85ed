package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/engine"
)

// recoveryCollector exports the resumption of the invocations a server
// found running (at start, or with partitions it acquired), read from the
// engine at each scrape.
type recoveryCollector struct {
	status func() engine.RecoveryStatus

	queued, active, resumed, skipped, failed, rate *prometheus.Desc
}

func newRecoveryCollector(status func() engine.RecoveryStatus) *recoveryCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("baton_recovery_"+name, help, nil, nil)
	}
	return &recoveryCollector{
		status:  status,
		queued:  d("queued", "Running invocations waiting to be resumed."),
		active:  d("active", "Invocations whose histories are being replayed."),
		resumed: d("resumed_total", "Invocations resumed from their histories."),
		skipped: d("skipped_total", "Invocations queued for resumption but found ended, moved to another replica or live."),
		failed:  d("failed_total", "Invocations whose resumption failed (see the log)."),
		rate:    d("rate", "Invocations resumed per second, from the first resumption to the last."),
	}
}

// Describe implements prometheus.Collector.
func (c *recoveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.active, c.resumed, c.skipped, c.failed, c.rate} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *recoveryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.queued, float64(s.Queued))
	gauge(c.active, float64(s.Active))
	counter(c.resumed, s.Resumed)
	counter(c.skipped, s.Skipped)
	counter(c.failed, s.Failed)
	gauge(c.rate, s.Rate)
}
