package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/batonflow/baton/client"
)

// TestMetricsAsksForNoCompression checks that a scrape asks the server
// not to compress (compressing costs the measured server more than it
// saves; Go's transport would otherwise ask for gzip on its own) and
// reads the exposition as sent.
func TestMetricsAsksForNoCompression(t *testing.T) {
	const exposition = "process_cpu_seconds_total 1.5\n"
	asked := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != exposition {
		t.Fatalf("metrics %q, want %q", data, exposition)
	}
	if got := <-asked; got != "identity" {
		t.Fatalf("Accept-Encoding %q, want identity", got)
	}
}
