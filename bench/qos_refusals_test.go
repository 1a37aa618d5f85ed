package bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestQoSClientReusesConnections: after a refusal the client's connection
// goes back to the idle pool, also when the answer's body holds more than
// the JSON it decodes, so that the next start does not dial.
func TestQoSClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"reason":"overloaded"}` + "\n" + strings.Repeat(" ", 8192)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newQoSClient(4)
	for range 5 {
		r := c.start(ctx, srv.URL, Tenant{Name: "b"}, 1, time.Second)
		if r.status != http.StatusServiceUnavailable || r.reason != "overloaded" || r.retryAfter != time.Second {
			t.Fatalf("%+v", r)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 starts one after the other opened %d connections, want 1", n)
	}
}

// TestRefusalTimer: the server's time is kept for refusals (429, 503
// with Retry-After) that their clients waited for, and for nothing else.
func TestRefusalTimer(t *testing.T) {
	statuses := []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusOK, http.StatusGatewayTimeout, http.StatusServiceUnavailable}
	var i atomic.Int64
	rt := &refusalTimer{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := i.Add(1)
		if n < 5 {
			// The last answer is a 503 without Retry-After.
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(statuses[n-1])
	})}
	for range statuses {
		rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))
	}
	if n := len(rt.ms); n != 2 {
		t.Errorf("%d answers timed, want the 2 refusals", n)
	}
	// A refusal answered after its client left is heard by no one.
	left, cancel := context.WithCancel(context.Background())
	rt.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(left, http.MethodPost, "/", nil))
	if n := len(rt.ms); n != 2 {
		t.Errorf("%d answers timed, want the 2 refusals heard by their clients", n)
	}
	if rt.p99() <= 0 {
		t.Errorf("p99 %v", rt.p99())
	}
	if (&refusalTimer{}).p99() != 0 {
		t.Error("p99 without refusals is not 0")
	}
}
