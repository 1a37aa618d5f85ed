package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/console"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/store/sqlite"
)

// tokens maps bearer tokens to principals.
type tokens map[string]*auth.Principal

func (a tokens) Authenticate(r *http.Request) (*auth.Principal, error) {
	token := auth.BearerToken(r)
	if token == "" {
		return nil, auth.ErrNoCredentials
	}
	if p, ok := a[token]; ok {
		return p, nil
	}
	return nil, auth.ErrInvalidCredentials
}

var principals = tokens{
	"admin":    {Subject: "admin", Grants: []auth.Grant{{Namespace: auth.AllNamespaces, Role: auth.Admin}}},
	"viewer":   {Subject: "viewer", Grants: []auth.Grant{{Namespace: "default", Role: auth.Viewer}}},
	"operator": {Subject: "operator", Grants: []auth.Grant{{Namespace: "default", Role: auth.Operator}}},
	"outsider": {Subject: "outsider", Grants: []auth.Grant{{Namespace: "team-b", Role: auth.Admin}}},
}

// fixture is a real engine on SQLite behind the API with the console, as
// `baton server` mounts them.
type fixture struct {
	engine   *engine.Engine
	server   *httptest.Server
	sessions *console.Sessions
}

func newFixture(t testing.TB, opts ...console.Option) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := engine.New(engine.Options{Store: st, Executors: map[string]engine.Executor{
		"echo": engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
			return engine.CallResult{Output: req.Args}, nil
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	sessions, err := console.NewSessions(console.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(e, sessions, principals, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(e, api.WithAuth(sessions.Authenticator(principals)), api.WithConsole(c)))
	t.Cleanup(srv.Close)
	return &fixture{engine: e, server: srv, sessions: sessions}
}

func (f *fixture) apply(t testing.TB, doc string) {
	t.Helper()
	if _, err := f.engine.ApplyWorkflow(context.Background(), "test.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) run(t testing.TB, name string, input any) *engineInvocation {
	t.Helper()
	ctx := context.Background()
	inv, err := f.engine.Invoke(ctx, "default", name, "", input)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := f.engine.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &engineInvocation{ID: ended.ID, Status: ended.Status}
}

type engineInvocation struct {
	ID     string
	Status core.Status
}

// client is a browser: it keeps cookies and follows no redirects, so the
// tests see them.
func (f *fixture) client(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login logs the client in with token through the login form, as a
// person pasting it would.
func (f *fixture) login(t testing.TB, c *http.Client, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/login", strings.NewReader(url.Values{"token": {token}, "next": {"/runs"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.server.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/runs" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)

const greet = `
document: {dsl: '1.0.0', namespace: default, name: greet, version: '1.0.0'}
do:
  - hello:
      call: echo
      with: {greeting: hello}
  - fail:
      raise:
        error: {type: https://example.com/oops, status: 500, title: Oops, detail: it went wrong}
`

func TestLoginCookieAndCSRF(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	inv := f.run(t, "greet", map[string]any{"n": 1})
	c := f.client(t)

	// Pages ask for a login first, and remember where the user was going.
	code, _ := get(t, c, f.server.URL+"/runs/"+inv.ID)
	if code != http.StatusSeeOther {
		t.Fatalf("anonymous page: %d, want a redirect to the login", code)
	}
	f.login(t, c, "operator")
	var sessionCookie *http.Cookie
	u, _ := url.Parse(f.server.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == console.SessionCookie {
			sessionCookie = ck
		}
	}
	if sessionCookie == nil {
		t.Fatal("no session cookie")
	}
	code, body := get(t, c, f.server.URL+"/runs/"+inv.ID)
	if code != http.StatusOK || !strings.Contains(body, `data-status="faulted"`) {
		t.Fatalf("run page as operator: %d", code)
	}
	m := csrfMeta.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the page carries no CSRF token")
	}
	csrf := m[1]

	// The API accepts the cookie for reads.
	if code, _ := get(t, c, f.server.URL+"/v1/invocations/"+inv.ID); code != http.StatusOK {
		t.Fatalf("API read with the session cookie: %d", code)
	}
	post := func(path string, headers map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, f.server.URL+path, strings.NewReader(`{"event": 1}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := "/v1/workflows/default/greet/invocations"
	for name, tc := range map[string]struct {
		headers map[string]string
		want    int
	}{
		"no CSRF token":          {nil, http.StatusUnauthorized},
		"a wrong CSRF token":     {map[string]string{console.CSRFHeader: "nope"}, http.StatusUnauthorized},
		"from another site":      {map[string]string{console.CSRFHeader: csrf, "Sec-Fetch-Site": "cross-site"}, http.StatusUnauthorized},
		"another site's origin":  {map[string]string{console.CSRFHeader: csrf, "Origin": "https://evil.example"}, http.StatusForbidden},
		"the console's own page": {map[string]string{console.CSRFHeader: csrf, "Sec-Fetch-Site": "same-origin", "Origin": f.server.URL}, http.StatusAccepted},
	} {
		if got := post(start, tc.headers); got != tc.want {
			t.Errorf("a start with the cookie and %s: %d, want %d", name, got, tc.want)
		}
	}

	// Logging out needs the token too, then the cookie is gone.
	req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := get(t, c, f.server.URL+"/runs"); code != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want the login again", code)
	}

	// A tampered cookie is no credential.
	tampered := &http.Client{Jar: c.Jar, CheckRedirect: c.CheckRedirect}
	tampered.Jar.SetCookies(u, []*http.Cookie{{Name: console.SessionCookie, Value: sessionCookie.Value[:len(sessionCookie.Value)-2] + "AA", Path: "/"}})
	if code, _ := get(t, tampered, f.server.URL+"/runs"); code != http.StatusSeeOther {
		t.Fatalf("tampered cookie: %d, want the login", code)
	}
}

func TestLoginRefusals(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for name, tc := range map[string]struct {
		token, site string
		want        int
	}{
		"an unknown token":          {"nope", "same-origin", http.StatusUnauthorized},
		"a login from another site": {"admin", "cross-site", http.StatusForbidden},
		"no token":                  {"", "same-origin", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/login", strings.NewReader(url.Values{"token": {tc.token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", tc.site)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	// Only the console's own paths are destinations after a login.
	req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/login", strings.NewReader(url.Values{"token": {"admin"}, "next": {"//evil.example/x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("login with next=//evil.example went to %q", loc)
	}
}

func TestLoginCode(t *testing.T) {
	f := newFixture(t)
	// A session cannot mint codes; a bearer token can.
	req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/login/code", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous code: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, f.server.URL+"/login/code", nil)
	req.Header.Set("Authorization", "Bearer viewer")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`"path":"(/login\?code=[^"]+)"`).FindStringSubmatch(string(body))
	if resp.StatusCode != http.StatusCreated || m == nil {
		t.Fatalf("code: %d %s", resp.StatusCode, body)
	}
	c := f.client(t)
	if code, _ := get(t, c, f.server.URL+m[1]); code != http.StatusSeeOther {
		t.Fatalf("opening the link: %d", code)
	}
	if code, body := get(t, c, f.server.URL+"/runs"); code != http.StatusOK || !strings.Contains(body, "viewer") {
		t.Fatalf("after the link: %d", code)
	}
	if code, _ := get(t, f.client(t), f.server.URL+m[1]); code != http.StatusUnauthorized {
		t.Fatalf("the link opened twice: %d, want 401", code)
	}
}

// TestConsoleAccess walks every console route as each kind of caller:
// anonymous callers reach only the login and the assets, a caller sees
// runs of its own namespaces only, and controls that act appear for
// operators only.
func TestConsoleAccess(t *testing.T) {
	f := newFixture(t, console.WithRedrive(true))
	f.apply(t, greet)
	inv := f.run(t, "greet", nil)
	pages := []string{"/", "/runs", "/runs/" + inv.ID, "/runs/" + inv.ID + "/task?ref=/do/0/hello", "/runs/" + inv.ID + "/history.json",
		"/runs/" + inv.ID + "/history", "/workflows", "/workflows/default/greet", "/functions", "/events"}
	anon := f.client(t)
	for _, p := range pages {
		if code, _ := get(t, anon, f.server.URL+p); code != http.StatusSeeOther {
			t.Errorf("anonymous GET %s: %d, want a redirect to the login", p, code)
		}
	}
	for _, p := range []string{"/login", "/static/console.css", "/static/console.js"} {
		if code, _ := get(t, anon, f.server.URL+p); code != http.StatusOK {
			t.Errorf("anonymous GET %s: %d, want it served", p, code)
		}
	}
	for _, who := range []string{"viewer", "operator", "admin"} {
		c := f.client(t)
		f.login(t, c, who)
		for _, p := range pages {
			if code, _ := get(t, c, f.server.URL+p); code != http.StatusOK {
				t.Errorf("%s GET %s: %d", who, p, code)
			}
		}
		_, body := get(t, c, f.server.URL+"/runs/"+inv.ID)
		acts := strings.Contains(body, `data-testid="action-retry"`) && strings.Contains(body, `data-testid="action-rerun"`)
		if acts != (who != "viewer") {
			t.Errorf("%s sees the retry and rerun actions: %v", who, acts)
		}
	}
	// Another namespace's caller learns nothing of the run.
	c := f.client(t)
	f.login(t, c, "outsider")
	for _, p := range []string{"/runs/" + inv.ID, "/runs/" + inv.ID + "/task?ref=/do/0/hello", "/runs/" + inv.ID + "/history.json", "/runs/" + inv.ID + "/history", "/workflows/default/greet"} {
		if code, body := get(t, c, f.server.URL+p); code != http.StatusNotFound || strings.Contains(body, "greeting") {
			t.Errorf("outsider GET %s: %d", p, code)
		}
	}
	if _, body := get(t, c, f.server.URL+"/runs?namespace=team-b"); strings.Contains(body, inv.ID) {
		t.Error("outsider lists the default namespace's run")
	}
	if _, body := get(t, c, f.server.URL+"/workflows"); strings.Contains(body, "greet") {
		t.Error("outsider lists the default namespace's workflow")
	}
	// The API's own paths keep answering problems.
	if code, body := get(t, c, f.server.URL+"/v1/nothing"); code != http.StatusNotFound || !strings.Contains(body, `"status":404`) {
		t.Errorf("GET /v1/nothing: %d %s", code, body)
	}
}

func TestRunPage(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	inv := f.run(t, "greet", map[string]any{"order": 7})
	c := f.client(t)
	f.login(t, c, "viewer")
	_, body := get(t, c, f.server.URL+"/runs/"+inv.ID)
	for _, want := range []string{
		`data-ref="/do/0/hello" data-state="completed"`,
		`class="task st-faulted failing" data-ref="/do/1/fail" data-state="faulted"`,
		`data-testid="run-error"`, "it went wrong", `&#34;order&#34;: 7`, `data-testid="timeline"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the run page lacks %s", want)
		}
	}
	_, panel := get(t, c, f.server.URL+"/runs/"+inv.ID+"/task?ref=/do/0/hello")
	if !strings.Contains(panel, "greeting") || !strings.Contains(panel, "attempt 1") {
		t.Errorf("the task panel lacks the call's input: %s", panel)
	}
	_, full := get(t, c, f.server.URL+"/runs/"+inv.ID+"/history")
	if !strings.Contains(full, "InvocationFaulted") || !strings.Contains(full, "TaskCompleted") {
		t.Errorf("the full history lacks events: %.300s", full)
	}
	_, export := get(t, c, f.server.URL+"/runs/"+inv.ID+"/history.json")
	if !strings.Contains(export, `"InvocationFaulted"`) || !strings.Contains(export, `"lifecycleEvents"`) {
		t.Errorf("the export lacks the history: %.300s", export)
	}
}

// TestCancelledRunShowsReason: the reason a run was cancelled for is in
// its error card and its history.
func TestCancelledRunShowsReason(t *testing.T) {
	f := newFixture(t)
	f.apply(t, `document: {dsl: '1.0.0', namespace: default, name: sleepy, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`)
	ctx := context.Background()
	inv, err := f.engine.Invoke(ctx, "default", "sleepy", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.engine.CancelInvocation(ctx, inv.ID, "stuck <on> a dead endpoint"); err != nil {
		t.Fatal(err)
	}
	if done, err := f.engine.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("%+v %v", done, err)
	}
	c := f.client(t)
	f.login(t, c, "viewer")
	_, body := get(t, c, f.server.URL+"/runs/"+inv.ID)
	card := body[strings.Index(body, `data-testid="run-error"`):]
	card = card[:strings.Index(card, "</section>")]
	if !strings.Contains(card, "the invocation was cancelled: stuck &lt;on&gt; a dead endpoint") {
		t.Errorf("the error card lacks the reason: %s", card)
	}
	_, full := get(t, c, f.server.URL+"/runs/"+inv.ID+"/history")
	if !strings.Contains(full, "Cancelled: the invocation was cancelled: stuck &lt;on&gt; a dead endpoint") {
		t.Errorf("the full history lacks the reason: %.2000s", full)
	}
}

func TestRunsFilters(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	f.apply(t, strings.ReplaceAll(strings.ReplaceAll(greet, "name: greet", "name: other"), "      raise:\n        error: {type: https://example.com/oops, status: 500, title: Oops, detail: it went wrong}", "      set: {ok: true}"))
	a := f.run(t, "greet", nil)
	b := f.run(t, "other", nil)
	c := f.client(t)
	f.login(t, c, "viewer")
	cases := []struct {
		query   string
		has     []string
		hasNot  []string
		chipsOK string
	}{
		{"", []string{a.ID, b.ID}, nil, `data-testid="chip-faulted">faulted <b>1</b>`},
		{"?workflow=greet", []string{a.ID}, []string{b.ID}, ""},
		{"?status=completed", []string{b.ID}, []string{a.ID}, ""},
		{"?id=" + b.ID[:len(b.ID)-4], []string{b.ID}, []string{a.ID}, ""},
		{"?from=2000-01-01T00:00&to=2001-01-01T00:00", nil, []string{a.ID, b.ID}, ""},
		{"?version=9.9.9", nil, []string{a.ID, b.ID}, ""},
	}
	for _, tc := range cases {
		_, body := get(t, c, f.server.URL+"/runs"+tc.query)
		for _, id := range tc.has {
			if !strings.Contains(body, `data-id="`+id+`"`) {
				t.Errorf("/runs%s lacks %s", tc.query, id)
			}
		}
		for _, id := range tc.hasNot {
			if strings.Contains(body, `data-id="`+id+`"`) {
				t.Errorf("/runs%s lists %s", tc.query, id)
			}
		}
		if tc.chipsOK != "" && !strings.Contains(body, tc.chipsOK) {
			t.Errorf("/runs%s: chips lack %s", tc.query, tc.chipsOK)
		}
	}
	if code, body := get(t, c, f.server.URL+"/runs?from=yesterday"); code != http.StatusOK || !strings.Contains(body, "from: want a time") {
		t.Errorf("a bad time: %d", code)
	}
}

// TestLiveRun follows a run's event stream until it says the run ended.
func TestLiveRun(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	inv := f.run(t, "greet", nil)
	c := f.client(t)
	f.login(t, c, "viewer")
	code, body := get(t, c, f.server.URL+"/live/runs/"+inv.ID)
	if code != http.StatusOK || !strings.Contains(body, "event: final") {
		t.Fatalf("live stream of an ended run: %d %q", code, body)
	}
	if code, _ := get(t, f.client(t), f.server.URL+"/live/runs/"+inv.ID); code != http.StatusUnauthorized {
		t.Fatalf("anonymous live stream: %d", code)
	}
}

func TestWorkflowInputCheck(t *testing.T) {
	f := newFixture(t)
	f.apply(t, `
document: {dsl: '1.0.0', namespace: default, name: typed, version: '1.0.0'}
input:
  schema:
    format: json
    document: {type: object, required: [n], properties: {n: {type: integer}}}
do:
  - a: {set: {n: '${ .n }'}}
`)
	c := f.client(t)
	f.login(t, c, "viewer")
	_, page := get(t, c, f.server.URL+"/workflows/default/typed")
	csrf := csrfMeta.FindStringSubmatch(page)[1]
	for input, want := range map[string]string{`{"n": 3}`: `"valid":true`, `{"n": "x"}`: `does not match`, `nope`: `not JSON`} {
		req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/workflows/default/typed/input-check", strings.NewReader(input))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(console.CSRFHeader, csrf)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("checking %s: %d %s, want %s", input, resp.StatusCode, body, want)
		}
	}
}

// BenchmarkRunPage1000Tasks renders the page of a finished run of 1,000
// tasks (500 calls, 500 sets) through the whole handler: history and
// lifecycle events read and replayed, graph, timeline and history drawn.
// The target is under 200 ms a page.
func BenchmarkRunPage1000Tasks(b *testing.B) {
	f := newFixture(b)
	var doc strings.Builder
	doc.WriteString("document: {dsl: '1.0.0', namespace: default, name: big, version: '1.0.0'}\ndo:\n")
	for i := range 500 {
		fmt.Fprintf(&doc, "  - call%d:\n      call: echo\n      with: {i: %d}\n  - set%d: {set: {i: %d}}\n", i, i, i, i)
	}
	f.apply(b, doc.String())
	inv := f.run(b, "big", nil)
	if inv.Status != core.StatusCompleted {
		b.Fatalf("the big run ended %s", inv.Status)
	}
	c := f.client(b)
	f.login(b, c, "viewer")
	// The first render rebuilds the lifecycle events by replaying the
	// history; later ones (live updates, reloads) find them cached.
	first := time.Now()
	code, body := get(b, c, f.server.URL+"/runs/"+inv.ID)
	firstPage := time.Since(first)
	if code != http.StatusOK || strings.Count(body, `data-state="completed"`) < 1000 {
		b.Fatalf("the page: %d, %d completed tasks", code, strings.Count(body, `data-state="completed"`))
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if code, _ := get(b, c, f.server.URL+"/runs/"+inv.ID); code != http.StatusOK {
			b.Fatal(code)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/page")
	b.ReportMetric(float64(len(body))/1024, "KiB/page")
	b.ReportMetric(float64(firstPage.Microseconds())/1000, "ms/first-page")
}

// TestFissionGraph draws a Fission Workflows document as its DAG, each
// node coloured by its state after a run.
func TestFissionGraph(t *testing.T) {
	f := newFixture(t)
	doc := `
apiVersion: 1
output: Join
tasks:
  Left:
    run: compose
    inputs: "left"
  Right:
    run: compose
    inputs: "right"
  Join:
    run: compose
    inputs: "{ output('Left') + output('Right') }"
    requires: [Left, Right]
`
	if _, err := f.engine.ApplyDocument(context.Background(), "join.wf.yaml", []byte(doc), lang.Options{Namespace: "default"}); err != nil {
		t.Fatal(err)
	}
	wfs, err := f.engine.ListWorkflows(context.Background())
	if err != nil || len(wfs) != 1 {
		t.Fatalf("workflows: %v %v", wfs, err)
	}
	c := f.client(t)
	f.login(t, c, "viewer")
	_, page := get(t, c, f.server.URL+"/workflows/default/"+wfs[0].Name)
	if strings.Count(page, `<line class="edge"`) != 2 || !strings.Contains(page, `data-state="pending"`) {
		t.Errorf("the preview lacks the DAG's two edges or its pending nodes")
	}
	inv := f.run(t, wfs[0].Name, nil)
	if inv.Status != core.StatusCompleted {
		t.Fatalf("the run ended %s", inv.Status)
	}
	_, body := get(t, c, f.server.URL+"/runs/"+inv.ID)
	for _, node := range []string{"Left", "Right", "Join"} {
		if !regexp.MustCompile(`data-ref="[^"]*/` + node + `" data-state="completed"`).MatchString(body) {
			t.Errorf("node %s is not drawn completed", node)
		}
	}
}

// TestForgedCredentials sends made-up cookies and login codes: none
// logs anyone in, and no request fails the server.
func TestForgedCredentials(t *testing.T) {
	fx := newFixture(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, forged := range []string{"abc", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x%00", "admin"} {
		req, _ := http.NewRequest(http.MethodGet, fx.server.URL+"/runs", nil)
		req.AddCookie(&http.Cookie{Name: console.SessionCookie, Value: url.QueryEscape(forged)})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a forged cookie %q got %d, want the login", forged, resp.StatusCode)
		}
		resp, err = c.Get(fx.server.URL + "/login?code=" + url.QueryEscape(forged))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode >= 500 {
			t.Errorf("a made-up code %q got %d", forged, resp.StatusCode)
		}
	}
}

// TestLiveRunsList follows the runs list's stream: a new run is a change.
func TestLiveRunsList(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	c := f.client(t)
	f.login(t, c, "viewer")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.server.URL+"/live/runs?workflow=greet", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	// The stream opens with a comment; only then is the run started, so
	// the change cannot be the first state.
	for lines.Scan() && !strings.HasPrefix(lines.Text(), ": live") {
	}
	f.run(t, "greet", nil)
	for lines.Scan() {
		if lines.Text() == "event: change" {
			return
		}
	}
	t.Fatalf("the stream ended without a change: %v", lines.Err())
}

type fakeFunctions struct{}

func (fakeFunctions) List(context.Context, string) ([]*function.Spec, error) {
	return []*function.Spec{
		{Namespace: "default", Name: "resize", Version: "1", Runtime: "wasm"},
		{Namespace: "default", Name: "resize", Version: "2", Runtime: "wasm"},
		{Namespace: "team-b", Name: "secret", Version: "1", Runtime: "wasm"},
	}, nil
}

func (fakeFunctions) Instances(ref string) []function.InstanceInfo {
	if ref != "resize" {
		return nil
	}
	return []function.InstanceInfo{{ID: "i-1", Version: "2", State: "busy", Calls: 7}, {ID: "i-2", Version: "2", State: "idle", Calls: 3}}
}

func (fakeFunctions) Events(ref string) []function.Event {
	if ref != "resize" {
		return nil
	}
	return []function.Event{{Kind: function.EventCreated, Function: ref, Instance: "i-1", Phases: function.Phases{Compile: 40 * time.Millisecond}}}
}

type fakePredictor struct{}

func (fakePredictor) NextCall(fn string, now time.Time) (prewarm.PredictedCall, bool) {
	return prewarm.PredictedCall{At: now.Add(time.Second), Until: now.Add(time.Minute), Prob: 0.8, Prepared: true}, fn == "resize"
}
func (fakePredictor) ColdStart(string) time.Duration { return 45 * time.Millisecond }

func TestFunctionsPage(t *testing.T) {
	f := newFixture(t, console.WithFunctions(fakeFunctions{}), console.WithPredictor(fakePredictor{}))
	c := f.client(t)
	f.login(t, c, "viewer")
	_, body := get(t, c, f.server.URL+"/functions")
	for _, want := range []string{"default/resize", "1, 2", "1 busy, 1 idle", "i-1", "last 40ms", "expected 45ms", "(80%), instance prepared"} {
		if !strings.Contains(body, want) {
			t.Errorf("the functions page lacks %q", want)
		}
	}
	if strings.Contains(body, "secret") {
		t.Error("a viewer of default sees team-b's function")
	}
}

// TestLiveRunCatchesUp: events recorded between a page's rendering and
// its stream's start are a change too.
func TestLiveRunCatchesUp(t *testing.T) {
	f := newFixture(t)
	f.apply(t, greet)
	inv := f.run(t, "greet", nil)
	c := f.client(t)
	f.login(t, c, "viewer")
	_, body := get(t, c, f.server.URL+"/live/runs/"+inv.ID+"?after=1")
	if !strings.Contains(body, "event: change") || !strings.Contains(body, "event: final") {
		t.Fatalf("a page behind the history got no change: %q", body)
	}
}
