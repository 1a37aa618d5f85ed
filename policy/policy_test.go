package policy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
)

func mustServer(t *testing.T, caps string, egress policy.Egress, self ...string) *policy.Server {
	t.Helper()
	c, err := policy.ParseCapabilities(caps)
	if err != nil {
		t.Fatal(err)
	}
	return &policy.Server{Defaults: policy.Policy{Capabilities: c, Egress: egress}, Self: self}
}

func resolve(t *testing.T, s *policy.Server, ns string, doc string) *policy.Effective {
	t.Helper()
	var p *policy.Policy
	if doc != "" {
		var err error
		if p, err = policy.Decode([]byte(doc)); err != nil {
			t.Fatalf("Decode(%s): %v", doc, err)
		}
	}
	e, err := s.Resolve(ns, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestResolveMergesOverDefaults(t *testing.T) {
	s := mustServer(t, "script", policy.Egress{})
	e := resolve(t, s, "team-a", `{"capabilities":{"shell":true,"script":false},"limits":{"subflowDepth":3},"retention":"2d"}`)
	if !e.Allows(policy.CapShell) || e.Allows(policy.CapScript) || e.Allows(policy.CapContainer) {
		t.Fatalf("capabilities %v", e.Capabilities)
	}
	if e.Limits.SubflowDepth != 3 || e.Limits.HistoryEvents != policy.DefaultHistoryEvents || e.Retention != 48*time.Hour {
		t.Fatalf("limits %+v retention %s", e.Limits, e.Retention)
	}
	other := resolve(t, s, "team-b", "")
	if other.Allows(policy.CapShell) || !other.Allows(policy.CapScript) || other.Retention != policy.DefaultRetention {
		t.Fatalf("defaults: %v %s", other.Capabilities, other.Retention)
	}
	doc := e.Document()
	if *doc.Capabilities.Shell != true || *doc.Limits.SubflowDepth != 3 || time.Duration(*doc.Retention) != 48*time.Hour {
		t.Fatalf("document %+v", doc)
	}
}

func TestDecodeRefusesBadDocuments(t *testing.T) {
	for doc, want := range map[string]string{
		`{"capabilities":{"shel":true}}`:         "unknown field",
		`{"limits":{"subflowDepth":0}}`:          "limits.subflowDepth must be positive",
		`{"egress":{"allow":["10.0.0.0/33"]}}`:   "egress.allow",
		`{"egress":{"default":"maybe"}}`:         "egress.default",
		`{"retention":"10ms"}`:                   "retention must be at least 1s",
		`{"limits":{"scriptTimeout":"forever"}}`: "duration",
		`{} {}`:                                  "more than one",
	} {
		_, err := policy.Decode([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error with %q", doc, err, want)
		}
	}
	if _, err := policy.ParseCapabilities("shell,sudo"); err == nil {
		t.Error("ParseCapabilities accepted sudo")
	}
}

func TestEgressRules(t *testing.T) {
	s := mustServer(t, "none", policy.Egress{Deny: []string{"10.0.0.0/8", "*.internal.example"}, Allow: []string{"10.1.2.3"}},
		"127.0.0.1:8780")
	team := resolve(t, s, "team-a", `{"egress":{"allow":["metadata"],"deny":["api.example.com"]}}`).Egress
	def := resolve(t, s, "default", "").Egress
	locked := resolve(t, s, "locked", `{"egress":{"default":"deny","allow":["*.example.org"]}}`).Egress
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	cases := []struct {
		g       *policy.Guard
		host    string
		addr    string
		denied  bool
		mention string
	}{
		{def, "169.254.169.254", "169.254.169.254:80", true, `built-in egress denial of "metadata"`},
		{def, "metadata.google.internal", "10.9.9.9:80", true, "metadata"},
		{def, "[fd00:ec2::254]", "[fd00:ec2::254]:80", true, "metadata"},
		{def, "printer.local", "169.254.10.10:631", true, `"link-local"`},
		{def, "fe80::1", "[fe80::1]:80", true, "link-local"},
		{def, "localhost", "127.0.0.1:8780", true, `"baton"`},
		{def, "localhost", "127.0.0.1:9999", false, ""},
		{def, "db", "10.2.3.4:5432", true, `server --egress-deny "10.0.0.0/8"`},
		{def, "cache", "10.1.2.3:6379", true, "10.0.0.0/8"}, // deny before allow
		{def, "x.internal.example", "192.0.2.1:443", true, "*.internal.example"},
		{def, "example.com", "93.184.216.34:443", false, ""},
		{team, "169.254.169.254", "169.254.169.254:80", false, ""},
		{team, "api.example.com", "93.184.216.34:443", true, `namespace team-a policy egress.deny "api.example.com"`},
		{team, "db", "10.2.3.4:5432", true, "10.0.0.0/8"},
		{locked, "example.com", "93.184.216.34:443", true, "namespace policy egress.default (deny)"},
		{locked, "www.example.org", "93.184.216.35:443", false, ""},
	}
	for _, c := range cases {
		err := c.g.Check(c.host, ap(c.addr))
		if (err != nil) != c.denied || (err != nil && !strings.Contains(err.Error(), c.mention)) {
			t.Errorf("Check(%s, %s) = %v, want denied=%v mentioning %q", c.host, c.addr, err, c.denied, c.mention)
		}
		if err != nil && !policy.IsDenied(err) {
			t.Errorf("IsDenied(%v) = false", err)
		}
	}
}

// TestTransportChecksTheResolvedAddress dials through the guard: a name
// that resolves to a denied address is refused at connect time, while
// the same server reached under another guard works.
func TestTransportChecksTheResolvedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	open := resolve(t, mustServer(t, "none", policy.Egress{}), "a", "").Egress
	// The server's own address, as the "baton" rule sees it.
	self := resolve(t, mustServer(t, "none", policy.Egress{}, srv.Listener.Addr().String()), "b", "").Egress
	loopbackDenied := resolve(t, mustServer(t, "none", policy.Egress{Deny: []string{"127.0.0.0/8"}}), "c", "").Egress
	tr := &policy.Transport{New: func() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(g *policy.Guard, url string) error {
		req, _ := http.NewRequestWithContext(policy.WithGuard(context.Background(), g), http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	byName := "http://localhost:" + strconv.Itoa(port)
	if err := get(open, byName); err != nil {
		t.Fatalf("allowed loopback call: %v", err)
	}
	// A pooled connection made under the open guard must not serve the
	// others: they dial (and are refused) themselves.
	if err := get(self, byName); err == nil || !policy.IsDenied(err) || !strings.Contains(err.Error(), `"baton"`) {
		t.Fatalf("call to the server's own address: %v", err)
	}
	if err := get(loopbackDenied, byName); err == nil || !strings.Contains(err.Error(), "127.0.0.0/8") {
		t.Fatalf("name resolving to a denied address: %v", err)
	}
	if err := get(open, "http://169.254.169.254/latest/meta-data/"); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("metadata call: %v", err)
	}
}

func TestCheckWorkflowFindsNestedRunTasks(t *testing.T) {
	def, _, err := lang.Parse("wf.yaml", []byte(`document: {dsl: '1.0.0', namespace: team-a, name: nested, version: '1.0.0'}
do:
  - guard:
      try:
        - loop:
            for: {in: '${ [1,2] }'}
            do:
              - id:
                  run:
                    shell:
                      command: id
      catch:
        do:
          - nothing:
              set: {caught: true}
`), lang.Options{})
	if err != nil {
		t.Fatal(err)
	}
	none := resolve(t, mustServer(t, "none", policy.Egress{}), "team-a", "")
	p := none.CheckWorkflow(def)
	if p == nil || p.Status != http.StatusForbidden || p.Type != policy.TypeCapability ||
		!strings.Contains(p.Detail, "capability run.shell is not allowed in namespace team-a (policy capabilities.shell)") ||
		!strings.Contains(p.Detail, "task id") {
		t.Fatalf("CheckWorkflow = %+v", p)
	}
	if p := resolve(t, mustServer(t, "shell", policy.Egress{}), "team-a", "").CheckWorkflow(def); p != nil {
		t.Fatalf("allowed shell refused: %v", p)
	}
}

func TestCheckFunctionAndBudget(t *testing.T) {
	none := resolve(t, mustServer(t, "none", policy.Egress{}), "default", "")
	for spec, setting := range map[*function.Spec]string{
		{Name: "p", Runtime: function.KindProcess, Command: "/bin/sh"}:                                                                 "capabilities.processFunctions",
		{Name: "w", Runtime: function.KindWasm, Permissions: function.Permissions{Dirs: []function.DirGrant{{Host: "/", Guest: "/"}}}}: "capabilities.wasmDirs",
		{Name: "e", Runtime: function.KindWasm, Permissions: function.Permissions{HostEnv: []string{"HOME"}}}:                          "capabilities.hostEnv",
	} {
		p := none.CheckFunction(spec)
		if p == nil || p.Status != http.StatusForbidden || !strings.Contains(p.Detail, setting) {
			t.Errorf("CheckFunction(%s) = %v, want a refusal naming %s", spec.Name, p, setting)
		}
	}
	if p := none.CheckFunction(&function.Spec{Name: "ok", Runtime: function.KindWasm}); p != nil {
		t.Errorf("a plain wasm function was refused: %v", p)
	}

	deployed := []*function.Spec{
		{Name: "a", Limits: function.Limits{Memory: 1 << 30, MaxInstances: 2}, CreatedAt: time.Unix(1, 0)},
		{Name: "a", Limits: function.Limits{Memory: 1 << 30, MaxInstances: 1}, CreatedAt: time.Unix(2, 0)}, // newest counts
	}
	huge := &function.Spec{Name: "huge", Limits: function.Limits{Memory: 4 << 30, MaxInstances: 100000}}
	p := policy.CheckFunctionBudget(deployed, huge, 4<<30)
	var pr *problem.Problem
	if p == nil || !errors.As(error(p), &pr) || pr.Type != policy.TypeLimit || !strings.Contains(p.Detail, "--function-memory-budget") ||
		!strings.Contains(p.Detail, "4GiB × 100000 instances") {
		t.Fatalf("budget refusal = %v", p)
	}
	fits := &function.Spec{Name: "b", Limits: function.Limits{Memory: 1 << 30, MaxInstances: 3}}
	if p := policy.CheckFunctionBudget(deployed, fits, 4<<30); p != nil {
		t.Fatalf("1GiB + 3GiB within 4GiB refused: %v", p)
	}
	if p := policy.CheckFunctionBudget(deployed, &function.Spec{Name: "b", Limits: function.Limits{Memory: 1 << 30, MaxInstances: 4}}, 4<<30); p == nil {
		t.Fatal("5GiB within 4GiB accepted")
	}
}

// TestExpressionLimits: the expression limits default to expr's, take the
// server's flags over that and a namespace's document over those, come
// back in the effective document, and name their settings.
func TestExpressionLimits(t *testing.T) {
	steps, items := int64(2_000_000), 5000
	s := &policy.Server{Defaults: policy.Policy{Limits: policy.Limits{ExpressionSteps: &steps, ExpressionItems: &items}}}
	def := resolve(t, &policy.Server{}, "any", "")
	if def.Limits.ExpressionSteps != expr.DefaultLimits.Steps || def.Limits.ExpressionBytes != int64(expr.DefaultLimits.Bytes) ||
		def.Limits.ExpressionItems != expr.DefaultLimits.Items {
		t.Fatalf("defaults %+v, want expr.DefaultLimits %+v", def.Limits, expr.DefaultLimits)
	}
	e := resolve(t, s, "team-a", `{"limits":{"expressionSteps":1000,"expressionBytes":65536}}`)
	if e.Limits.ExpressionSteps != 1000 || e.Limits.ExpressionBytes != 65536 || e.Limits.ExpressionItems != 5000 {
		t.Fatalf("team-a limits %+v", e.Limits)
	}
	if other := resolve(t, s, "team-b", ""); other.Limits.ExpressionSteps != steps || other.Limits.ExpressionBytes != policy.DefaultExpressionBytes {
		t.Fatalf("team-b limits %+v", other.Limits)
	}
	doc := e.Document()
	if *doc.Limits.ExpressionSteps != 1000 || *doc.Limits.ExpressionBytes != 65536 || *doc.Limits.ExpressionItems != 5000 {
		t.Fatalf("document limits %+v", doc.Limits)
	}
	again, err := (&policy.Server{}).Resolve("team-a", doc)
	if err != nil || again.Limits != e.Limits {
		t.Fatalf("the document resolves to %+v (%v), want %+v", again.Limits, err, e.Limits)
	}
	l := e.Limits.Expression()
	if l.Steps != 1000 || l.Bytes != 65536 || l.Items != 5000 || l.Settings.Steps != "policy limits.expressionSteps" {
		t.Fatalf("expr limits %+v", l)
	}
	_, err = expr.NewEvaluatorWithLimits(l).Eval(`[range(100000)] | length`, nil, nil)
	if !errors.Is(err, expr.ErrLimit) || !strings.Contains(err.Error(), "(policy limits.expressionSteps)") {
		t.Fatalf("evaluating over the limit: %v", err)
	}
	for doc, want := range map[string]string{
		`{"limits":{"expressionSteps":0}}`:  "limits.expressionSteps must be positive",
		`{"limits":{"expressionBytes":-1}}`: "limits.expressionBytes must be positive",
		`{"limits":{"expressionItems":0}}`:  "limits.expressionItems must be positive",
	} {
		if _, err := policy.Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error with %q", doc, err, want)
		}
	}
}
