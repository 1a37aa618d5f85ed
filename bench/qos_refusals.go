package bench

import (
	"net/http"
	"slices"
	"sync"
	"time"
)

// The time of a refusal has two parts: the server's (its handler, from the
// request's headers read to the answer written) and the rest of the round
// trip, which in this experiment is the in-process clients' own (their
// goroutines, the HTTP client's connection goroutines and the network
// poller, scheduled on the same CPUs as the server's spinning wasm seats).
// refusalTimer measures the server's part, so that the report shows both:
// the end-to-end figure alone blamed the server for its clients' lag.

// refusalTimer wraps the server's handler and keeps the handler time of
// every refusal by QoS admission a client heard: a 429 or 503 with
// Retry-After answered while its client still waited. (A waiting start
// whose client left as the run ended is answered too, but to no one.)
type refusalTimer struct {
	next http.Handler
	mu   sync.Mutex
	ms   []float64
}

func (t *refusalTimer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	t.next.ServeHTTP(sw, r)
	refused := sw.status == http.StatusTooManyRequests || sw.status == http.StatusServiceUnavailable
	// A start whose client left (the run's end) is answered too, with
	// Retry-After, long after it arrived: no client heard it.
	if refused && w.Header().Get("Retry-After") != "" && r.Context().Err() == nil {
		d := ms(time.Since(began))
		t.mu.Lock()
		t.ms = append(t.ms, d)
		t.mu.Unlock()
	}
}

// p99 is the 99th percentile of the refusals' handler times, 0 for none.
func (t *refusalTimer) p99() float64 {
	t.mu.Lock()
	s := slices.Clone(t.ms)
	t.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return Percentile(s, 99)
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
