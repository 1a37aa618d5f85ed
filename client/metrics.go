package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Metrics returns the server's Prometheus metrics in the text exposition
// format (GET /metrics).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url([]string{"metrics"}, nil), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Uncompressed: compressing a scrape cost the server more CPU (a new
	// compressor, about half a megabyte, per response) than the few
	// kilobytes it saves, and `baton bench --server` scrapes four times a
	// second while it measures the server's CPU.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the baton server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the response to GET /metrics: %w", err)
	}
	if resp.StatusCode >= 400 {
		return nil, decodeProblem(resp, data)
	}
	return data, nil
}
