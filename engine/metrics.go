package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// latencyBuckets span a cheap task (tens of microseconds) to a long
// invocation (minutes).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// metrics are the engine's Prometheus collectors. Labels are the
// namespace and the workflow only, never ids: their number is bounded by
// the workflows applied. Each workflow's children are looked up once per
// invocation (see forWorkflow), so that a task costs atomic updates only.
type metrics struct {
	started       *prometheus.CounterVec
	ended         *prometheus.CounterVec
	invocationDur *prometheus.HistogramVec
	taskDur       *prometheus.HistogramVec
	timerLag      prometheus.Histogram
	eventsIn      prometheus.Counter
	commitDur     prometheus.Histogram
	commitWrites  prometheus.Histogram
	running       *prometheus.Desc

	mu        sync.Mutex
	workflows map[[2]string]*workflowMetrics
}

// workflowMetrics are one workflow's children of the labelled metrics.
type workflowMetrics struct {
	started                          prometheus.Counter
	completed, faulted, cancelled    prometheus.Counter
	invocationDuration, taskDuration prometheus.Observer
}

func newMetrics(e *Engine, reg prometheus.Registerer) (*metrics, error) {
	wl := []string{"namespace", "workflow"}
	m := &metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "invocations", Name: "started_total",
			Help: "Invocations started, by namespace and workflow (resumptions after a restart are not counted).",
		}, wl),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "invocations", Name: "ended_total",
			Help: "Invocations that ended, by namespace, workflow and status (completed, faulted, cancelled).",
		}, append(wl, "status")),
		invocationDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "invocation", Name: "duration_seconds",
			Help:    "Time from an invocation's start to its end, by namespace and workflow.",
			Buckets: latencyBuckets,
		}, wl),
		taskDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "task", Name: "duration_seconds",
			Help:    "Time from a task's start to its end (calls, waits and the tasks that need no I/O alike), by namespace and workflow.",
			Buckets: latencyBuckets,
		}, wl),
		timerLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "timer", Name: "lag_seconds",
			Help:    "How late timers (waits, retry delays, timeouts) and scheduled runs fired after their deadline.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30},
		}),
		eventsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "baton", Subsystem: "events", Name: "ingested_total",
			Help: "CloudEvents appended to the event log: posted to the API, emitted by workflows, received from triggers and the shared bus (not duplicates).",
		}),
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "store", Name: "commit_duration_seconds",
			Help:    "Time the store's writer took to write and commit one group of writes (one fsync or one transaction).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		commitWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "store", Name: "commit_writes",
			Help:    "Writes (history appends, creations, other changes) grouped into one commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		running: prometheus.NewDesc("baton_invocations_running",
			"Invocations live in this engine, by namespace and workflow.", wl, nil),
		workflows: make(map[[2]string]*workflowMetrics),
	}
	for _, c := range []prometheus.Collector{m.started, m.ended, m.invocationDur, m.taskDur, m.timerLag,
		m.eventsIn, m.commitDur, m.commitWrites, runningCollector{m.running, e}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("engine metrics: %w", err)
		}
	}
	if e.opts.EventLog != nil {
		e.opts.EventLog.ObserveAppends(func(n int) { m.eventsIn.Add(float64(n)) })
	}
	if co, ok := e.store.(store.CommitObserver); ok {
		co.ObserveCommits(func(writes int, took time.Duration) {
			m.commitDur.Observe(took.Seconds())
			m.commitWrites.Observe(float64(writes))
		})
	}
	return m, nil
}

func (m *metrics) forWorkflow(namespace, workflow string) *workflowMetrics {
	key := [2]string{namespace, workflow}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.workflows[key]; w != nil {
		return w
	}
	w := &workflowMetrics{
		started:            m.started.WithLabelValues(namespace, workflow),
		completed:          m.ended.WithLabelValues(namespace, workflow, string(core.StatusCompleted)),
		faulted:            m.ended.WithLabelValues(namespace, workflow, string(core.StatusFaulted)),
		cancelled:          m.ended.WithLabelValues(namespace, workflow, string(core.StatusCancelled)),
		invocationDuration: m.invocationDur.WithLabelValues(namespace, workflow),
		taskDuration:       m.taskDur.WithLabelValues(namespace, workflow),
	}
	m.workflows[key] = w
	return w
}

// runningCollector counts the live invocations at each scrape, which costs
// the hot path nothing.
type runningCollector struct {
	desc *prometheus.Desc
	e    *Engine
}

func (c runningCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c runningCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[[2]string]int)
	c.e.mu.Lock()
	for _, in := range c.e.live {
		counts[[2]string{in.inv.Namespace, in.inv.Workflow}]++
	}
	c.e.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// taskTimer is the machine observer that times an invocation's tasks. It
// runs on the invocation's goroutine, like the machine.
type taskTimer struct {
	in      *instance
	m       prometheus.Observer
	started map[string]time.Time
}

func (t *taskTimer) TaskStarted(key, _, _ string, at time.Time) {
	if t.in.replaying {
		// Replayed tasks were timed when they ran.
		return
	}
	t.started[key] = at
}

func (t *taskTimer) TaskEnded(key, _, _ string, at time.Time, _ *problem.Problem) {
	began, ok := t.started[key]
	if !ok {
		return
	}
	delete(t.started, key)
	t.m.Observe(at.Sub(began).Seconds())
}

// ended counts an invocation's end and times it.
func (w *workflowMetrics) ended(status core.Status, took time.Duration) {
	switch status {
	case core.StatusCompleted:
		w.completed.Inc()
	case core.StatusCancelled:
		w.cancelled.Inc()
	default:
		w.faulted.Inc()
	}
	w.invocationDuration.Observe(took.Seconds())
}

// observeTimerLag records how late a timer fired; nil-safe for engines
// without metrics.
func (m *metrics) observeTimerLag(deadline time.Time) {
	if m == nil {
		return
	}
	m.timerLag.Observe(max(time.Since(deadline), 0).Seconds())
}
