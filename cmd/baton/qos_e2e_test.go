package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/batonflow/baton/qos"
)

const qosShopWorkflow = `
document:
  dsl: '1.0.0'
  namespace: shop
  name: checkout
  version: '1.0.0'
  metadata:
    baton.priorityClass: critical
do:
  - pay:
      call: http
      with: {method: get, endpoint: '%s/pay'}
`

// TestQoSAsAUserWouldUseIt drives a `baton server` with its defaults (QoS
// on) as a user would: a namespace's quota and classes set with `baton
// policy set`, a workflow whose metadata names its class, a caller that
// lowers it, a start over the quota refused with 429, Retry-After and a
// problem naming reason, class and namespace; `baton qos status` and the
// Prometheus metrics show what happened per class and namespace.
func TestQoSAsAUserWouldUseIt(t *testing.T) {
	pay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"paid": true}`)
	}))
	defer pay.Close()
	dir := t.TempDir()
	srv := startServer(t, dir)
	defer srv.stop()
	env := srv.env()

	policy := writeFile(t, dir, "shop.yaml", "qos:\n  weight: 2\n  rate: 0.001\n  burst: 2\n  classes: [critical, standard, batch]\n")
	baton(t, env, "policy", "set", "shop", "-f", policy).expect(t, 0, "policy of namespace shop set\n", "")
	if res := baton(t, env, "workflow", "apply", writeFile(t, dir, "checkout.yaml", fmt.Sprintf(qosShopWorkflow, pay.URL))); res.code != 0 {
		t.Fatalf("apply: %+v", res)
	}

	start := func(class string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/workflows/shop/checkout/invocations?wait=30s", nil)
		req.Header.Set("Authorization", "Bearer "+srv.token)
		if class != "" {
			req.Header.Set(qos.HeaderClass, class)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	// The burst of 2: the document's class, then one the caller lowered.
	for _, class := range []string{"", "batch"} {
		if resp, body := start(class); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"completed"`) {
			t.Fatalf("start (class %q): %d %s", class, resp.StatusCode, body)
		}
	}
	// A class the namespace does not allow is the caller's error.
	if resp, body := start("system"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("system class: %d %s", resp.StatusCode, body)
	}
	// Over the quota: 429, at the document's class.
	resp, body := start("")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the quota: %d %s", resp.StatusCode, body)
	}
	var p struct {
		Type, Reason, Class, Namespace string
		Status, RetryAfter             int
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 || p.RetryAfter != secs || p.Status != 429 || p.Reason != "quota_exceeded" ||
		p.Class != "critical" || p.Namespace != "shop" || !strings.HasSuffix(p.Type, "/quota-exceeded") {
		t.Fatalf("refusal: Retry-After %q, %+v", resp.Header.Get("Retry-After"), p)
	}

	res := baton(t, env, "qos", "status")
	if res.code != 0 || !strings.Contains(res.stdout, "QoS on") || !regexpMatch(`g2\s+http\s+unlimited`, res.stdout) ||
		!regexpMatch(`quota_exceeded\s+critical\s+shop\s+1`, res.stdout) {
		t.Fatalf("baton qos status:\n%s%s", res.stdout, res.stderr)
	}

	var metrics string
	if code := srv.doText(t, "/metrics", &metrics); code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		`baton_qos_rejections_total{class="critical",namespace="shop",reason="quota_exceeded"} 1`,
		`baton_qos_wait_seconds_count{class="critical",gate="g1",namespace="shop"} 1`,
		`baton_qos_wait_seconds_count{class="batch",gate="g1",namespace="shop"} 1`,
		`baton_qos_wait_seconds_count{class="batch",gate="g2",namespace="shop"} 1`,
		`baton_qos_seats{pool="http"} +Inf`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics, QoS lines:\n%s", grepLines(metrics, "baton_qos_"))
	}
}

// doText GETs path as the admin and returns the body as text.
func (s *server) doText(t *testing.T, path string, into *string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	*into = string(data)
	return resp.StatusCode
}

func regexpMatch(pattern, text string) bool { return regexp.MustCompile(pattern).MatchString(text) }

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
