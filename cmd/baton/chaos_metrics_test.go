package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads the baton_cluster_* samples of a replica's /metrics, by
// name without labels.
func scrape(t *testing.T, url, token string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s/metrics: %d %s", url, resp.StatusCode, body)
	}
	out := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, "baton_cluster_") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		_, value, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[name] = v
	}
	return out
}

// checkMetrics checks the replicas' cluster metrics and readiness after
// the faults: all partitions owned, each ready, the survivors' takeovers
// counted, and each replica's refused writes as many as it logged.
func (c *chaosCluster) checkMetrics(token string) {
	t := c.t
	t.Helper()
	c.mu.Lock()
	up := c.slots
	c.mu.Unlock()
	var last []map[string]float64
	waitUntil(t, 30*time.Second, "the replicas own all 64 partitions and are ready", func() bool {
		last = last[:0]
		owned := 0.0
		for _, r := range up {
			m := scrape(t, r.url, token)
			last = append(last, m)
			owned += m["baton_cluster_partitions_owned"]
			resp, err := http.Get(r.url + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return owned == 64
	})
	takeovers := 0.0
	for i, r := range up {
		m := last[i]
		takeovers += m["baton_cluster_takeovers_total"]
		if m["baton_cluster_lease_renewals_total"] == 0 {
			t.Errorf("replica %s reports no lease renewals: %v", r.id, m)
		}
		if got, logged := m["baton_cluster_stale_writes_refused_total"], strings.Count(r.logs.String(), "write refused"); got != float64(logged) {
			t.Errorf("replica %s reports %v stale writes refused; its log has %d", r.id, got, logged)
		}
	}
	// The survivors of the last kill are all up: they took its partitions.
	if takeovers == 0 {
		t.Errorf("no replica counts a takeover after the kills: %v", last)
	}
	t.Logf("cluster metrics: %s", fmt.Sprint(last))
}
