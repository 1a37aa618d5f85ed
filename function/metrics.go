package function

import (
	"fmt"
	"path"

	"github.com/batonflow/baton/problem"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Manager's Prometheus collectors, all labelled by
// function reference (Qualify: the name, prefixed by its namespace outside
// the default one).
type metrics struct {
	invocations *prometheus.CounterVec
	errors      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	coldStarts  *prometheus.CounterVec
	coldStart   *prometheus.HistogramVec
	instances   *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "function", Name: "invocations_total",
			Help: "Function calls, by function.",
		}, []string{"function"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "function", Name: "errors_total",
			Help: "Function calls that failed, by function and error type (timeout, runtime, communication...).",
		}, []string{"function", "type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "function", Name: "duration_seconds",
			Help:    "Function call duration including any queueing and cold start.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "function", Name: "cold_starts_total",
			Help: "Instances started, by function.",
		}, []string{"function"}),
		coldStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "function", Name: "cold_start_seconds",
			Help:    "Cold start duration by phase (compile, instantiate, init) and in total.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"function", "phase"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "baton", Subsystem: "function", Name: "instances",
			Help: "Instances by function and state (starting, busy, idle).",
		}, []string{"function", "state"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "baton", Subsystem: "function", Name: "queued_calls",
			Help: "Calls waiting for an instance, by function.",
		}, []string{"function"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.invocations, m.errors, m.duration, m.coldStarts, m.coldStart, m.instances, m.queued} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("function metrics: %w", err)
		}
	}
	return m, nil
}

// fnMetrics holds one function's children, looked up once per pool so that
// a call costs atomic updates only, not label hashing.
type fnMetrics struct {
	invocations prometheus.Counter
	duration    prometheus.Observer
	coldStarts  prometheus.Counter
	compile     prometheus.Observer
	instantiate prometheus.Observer
	init        prometheus.Observer
	coldTotal   prometheus.Observer
	starting    prometheus.Gauge
	busy        prometheus.Gauge
	idle        prometheus.Gauge
	queued      prometheus.Gauge
	errors      *prometheus.CounterVec
	name        string
}

func (m *metrics) forFunction(name string) *fnMetrics {
	return &fnMetrics{
		name:        name,
		invocations: m.invocations.WithLabelValues(name),
		duration:    m.duration.WithLabelValues(name),
		coldStarts:  m.coldStarts.WithLabelValues(name),
		compile:     m.coldStart.WithLabelValues(name, "compile"),
		instantiate: m.coldStart.WithLabelValues(name, "instantiate"),
		init:        m.coldStart.WithLabelValues(name, "init"),
		coldTotal:   m.coldStart.WithLabelValues(name, "total"),
		starting:    m.instances.WithLabelValues(name, "starting"),
		busy:        m.instances.WithLabelValues(name, "busy"),
		idle:        m.instances.WithLabelValues(name, "idle"),
		queued:      m.queued.WithLabelValues(name),
		errors:      m.errors,
	}
}

func (f *fnMetrics) coldStart(p Phases) {
	f.coldStarts.Inc()
	f.compile.Observe(p.Compile.Seconds())
	f.instantiate.Observe(p.Instantiate.Seconds())
	f.init.Observe(p.Init.Seconds())
	f.coldTotal.Observe(p.Total().Seconds())
}

func (f *fnMetrics) failed(err error) {
	f.errors.WithLabelValues(f.name, errorType(err)).Inc()
}

// errorType is the short name of an error's problem type: "timeout",
// "runtime", "communication", "configuration"...
func errorType(err error) string {
	return path.Base(problem.FromError(err).Type)
}
