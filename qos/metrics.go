package qos

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scheduler's Prometheus series. Queue depths and seats
// are read from the gates at each scrape; waits and rejections are
// counted as they happen.
type metrics struct {
	wait       *prometheus.HistogramVec
	rejections *prometheus.CounterVec
	depth      *prometheus.Desc
	seats      *prometheus.Desc
	seatsTotal *prometheus.Desc
}

func newMetrics() *metrics {
	return &metrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_qos_wait_seconds",
			Help:    "Time a start (gate g1) or a call (gate g2) waited for its turn, by class and namespace.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"gate", "class", "namespace"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_qos_rejections_total",
			Help: "Starts refused by admission control, by class, namespace and reason.",
		}, []string{"class", "namespace", "reason"}),
		depth: prometheus.NewDesc("baton_qos_queue_depth",
			"Starts (gate g1) and calls (gate g2, per pool) waiting, by class and namespace.",
			[]string{"gate", "pool", "class", "namespace"}, nil),
		seats: prometheus.NewDesc("baton_qos_seats_in_use",
			"G2 seats held by calls, by pool, class and namespace.",
			[]string{"pool", "class", "namespace"}, nil),
		seatsTotal: prometheus.NewDesc("baton_qos_seats",
			"G2 seats of each pool (+Inf: no limit).", []string{"pool"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (s *Scheduler) Describe(ch chan<- *prometheus.Desc) {
	s.metrics.wait.Describe(ch)
	s.metrics.rejections.Describe(ch)
	ch <- s.metrics.depth
	ch <- s.metrics.seats
	ch <- s.metrics.seatsTotal
}

// Collect implements prometheus.Collector.
func (s *Scheduler) Collect(ch chan<- prometheus.Metric) {
	s.metrics.wait.Collect(ch)
	s.metrics.rejections.Collect(ch)
	st := s.Status()
	m := s.metrics
	for _, q := range st.Admission.Queued {
		ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(q.Count), "g1", "", q.Class, q.Namespace)
	}
	for _, p := range st.Pools {
		seats := float64(p.Seats)
		if p.Seats == 0 {
			seats = math.Inf(1) // no limit
		}
		ch <- prometheus.MustNewConstMetric(m.seatsTotal, prometheus.GaugeValue, seats, p.Pool)
		for _, q := range p.Queued {
			ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(q.Count), "g2", p.Pool, q.Class, q.Namespace)
		}
		for _, q := range p.InUse {
			ch <- prometheus.MustNewConstMetric(m.seats, prometheus.GaugeValue, float64(q.Count), p.Pool, q.Class, q.Namespace)
		}
	}
}
