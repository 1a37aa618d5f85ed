package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/batonflow/baton/store/sqlite/sqlitetest"
)

// The console's browser tests drive Debian's Chromium headless against a
// real `baton server` on loopback. Outside CI a machine without Chromium
// skips them; under CI=true that is a failure.
//
// BATON_CONSOLE_SCREENSHOTS=DIR saves screenshots of the main views as PNG
// files in DIR (docs/ uses them: make console-screenshots).

const chromiumPath = "/usr/bin/chromium"

func chromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath
	if env := os.Getenv("BATON_CHROMIUM"); env != "" {
		path = env
	}
	if _, err := os.Stat(path); err != nil {
		if found, lerr := exec.LookPath("chromium"); lerr == nil {
			return found
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s (apt-get install chromium): the console's browser tests must run under CI", path)
		}
		t.Skipf("no Chromium at %s: the console's browser tests are skipped (apt-get install chromium)", path)
	}
	return path
}

// browser starts one headless Chromium for a test, with a fresh profile,
// and collects the page's console errors and uncaught exceptions.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps with a timeout, failing the test with a screenshot's
// worth of context when they fail.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		if len(html) > 4000 {
			html = html[:4000]
		}
		t.Fatalf("%s: %v\npage: %s", what, err, html)
	}
}

// waitLocation waits until the page's URL satisfies ok, and returns it.
func (b *browser) waitLocation(t *testing.T, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(b.ctx, chromedp.Location())
		if err == nil && ok(loc) {
			return loc
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page stayed at %s (%v)", loc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) noProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("the page reported: %s", p)
	}
	b.problems = nil
}

// screenshot saves the page as NAME.png when BATON_CONSOLE_SCREENSHOTS
// names a directory.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("BATON_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	consoleWaiter = `
document: {dsl: '1.0.0', namespace: default, name: waiter, version: '1.0.0'}
input:
  schema:
    format: json
    document: {type: object, properties: {order: {type: integer}}}
do:
  - prepare: {set: {order: '${ .order }'}}
  - awaitPayment:
      listen: {to: {one: {with: {type: com.example.paid}}}}
  - ship: {set: {shipped: true}}
`
	consoleBlocker = `
document: {dsl: '1.0.0', namespace: default, name: blocker, version: '1.0.0'}
do:
  - hold:
      listen: {to: {one: {with: {type: com.example.never}}}}
`
	consoleFlaky = `
document: {dsl: '1.0.0', namespace: default, name: flaky, version: '1.0.0'}
do:
  - fetch:
      call: http
      with: {method: post, endpoint: '%s'}
  - done: {set: {ok: true}}
`
	consoleFailing = `
document: {dsl: '1.0.0', namespace: default, name: kettle, version: '1.0.0'}
do:
  - heat: {set: {temperature: 100}}
  - checks:
      for: {each: i, in: '${ [1, 2, 3] }'}
      do:
        - check: {set: {ok: true}}
  - boil:
      raise:
        error: {type: https://example.com/errors/kettle, status: 418, title: Kettle broke, detail: the element burnt out}
  - pour: {set: {poured: true}}
`
)

// TestConsoleBrowser walks the console as a user would: log in with the
// link `baton console` prints, go from the runs list to a run, watch a
// blocked run finish live when an event arrives, cancel a run, retry a
// faulted one when the server offers redrive, open a faulted task's error,
// and reload a filtered list. The page must report no error throughout.
func TestConsoleBrowser(t *testing.T) {
	b := newBrowser(t)
	data := t.TempDir()
	srv := startServer(t, data)
	defer srv.stop()
	// The flaky endpoint fails its first call and answers the next.
	var flakyCalls atomic.Int32
	flakyEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyCalls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer flakyEndpoint.Close()
	dir := t.TempDir()
	for name, doc := range map[string]string{"waiter.yaml": consoleWaiter, "blocker.yaml": consoleBlocker, "kettle.yaml": consoleFailing,
		"flaky.yaml": fmt.Sprintf(consoleFlaky, flakyEndpoint.URL)} {
		if res := baton(t, srv.env(), "workflow", "apply", writeFile(t, dir, name, doc)); res.code != 0 {
			t.Fatalf("applying %s: %s", name, res.stderr)
		}
	}
	invoke := func(workflow, input string) string {
		var out struct {
			ID string `json:"id"`
		}
		if code := srv.do(t, http.MethodPost, "/v1/workflows/default/"+workflow+"/invocations", input, &out); code >= 300 {
			t.Fatalf("starting %s: %d", workflow, code)
		}
		return out.ID
	}
	faulted := invoke("kettle", `{}`)
	flaky := invoke("flaky", `{}`)
	waiter := invoke("waiter", `{"order": 42}`)
	sqlitetest.WaitListenStarted(t, data, waiter, "")

	// The one-time link logs in.
	link := strings.TrimSpace(baton(t, srv.env(), "console").stdout)
	if !strings.Contains(link, "/login?code=") {
		t.Fatalf("baton console printed %q, want a login link", link)
	}
	b.do(t, "log in with the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`[data-testid=runs]`)))
	b.do(t, "the link works once", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-problem]`)))
	b.do(t, "the session holds", chromedp.Navigate(srv.url+"/runs"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=chips]`)))
	if got := b.text(t, `[data-testid=chip-faulted] b`); got != "2" {
		t.Errorf("the faulted chip counts %q, want 2 (the kettle and the flaky run)", got)
	}
	b.screenshot(t, "console-runs")

	t.Run("list to detail", func(t *testing.T) {
		b.do(t, "open the faulted run",
			chromedp.Click(chromedp.CSS(`tr[data-id="`+faulted+`"] [data-testid=run-link]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=faulted]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=graph]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-error]`)),
		)
		if got := b.text(t, `[data-testid=run-error] h2`); !strings.Contains(got, "Kettle broke") {
			t.Errorf("the error card shows %q", got)
		}
		// The instance pointer marks the failing task; the task after it
		// was never reached.
		b.do(t, "the graph marks the failing and the skipped task",
			chromedp.WaitVisible(chromedp.CSS(`svg.graph .failing[data-ref="/do/2/boil"][data-state=faulted]`)),
			chromedp.WaitReady(chromedp.CSS(`svg.graph [data-ref="/do/3/pour"][data-state=skipped]`)),
			chromedp.WaitReady(chromedp.CSS(`svg.graph [data-ref="/do/1/checks/do/0/check"][data-state=completed]`)),
		)
	})

	t.Run("a faulted task shows its error", func(t *testing.T) {
		b.do(t, "click the faulted task",
			chromedp.Click(chromedp.CSS(`svg.graph [data-ref="/do/2/boil"] rect`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=task-detail][data-ref="/do/2/boil"] [data-testid=task-error]`)),
		)
		if got := b.text(t, `[data-testid=task-error]`); !strings.Contains(got, "Kettle broke") || !strings.Contains(got, "418") {
			t.Errorf("the task panel shows %q, want the error's title and status", got)
		}
		b.screenshot(t, "console-run-faulted")
		b.do(t, "the full history",
			chromedp.Click(chromedp.CSS(`[data-testid=tab-full]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=history-table]`)),
		)
		if got := b.text(t, `[data-testid=history-table]`); !strings.Contains(got, "InvocationFaulted") {
			t.Errorf("the full history shows %.200q", got)
		}
	})

	t.Run("a status changes live", func(t *testing.T) {
		b.do(t, "open the waiting run",
			chromedp.Navigate(srv.url+"/runs/"+waiter),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=running]`)),
			chromedp.WaitReady(chromedp.CSS(`svg.graph [data-ref="/do/1/awaitPayment"][data-state=running]`)),
		)
		b.screenshot(t, "console-run-live")
		// The page notes when each update lands.
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.__updates = []; document.addEventListener("baton:updated", e => window.__updates.push([e.detail.status, Date.now()])); true`)); err != nil {
			t.Fatal(err)
		}
		body := `{"specversion": "1.0", "id": "paid-42", "source": "/bank", "type": "com.example.paid", "data": {"order": 42}}`
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		req.Header.Set("Authorization", "Bearer "+srv.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("sending the event: %d", resp.StatusCode)
		}
		b.do(t, "the run completes without a reload",
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=completed]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-output]`)),
		)
		var inv struct {
			EndedAt time.Time `json:"endedAt"`
		}
		srv.do(t, http.MethodGet, "/v1/invocations/"+waiter, "", &inv)
		shown, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](`(window.__updates.find(u => u[0] === "completed") || [0, 0])[1]`))
		if err != nil || shown == 0 {
			t.Fatalf("the page noted no update to completed (%v)", err)
		}
		// Reported, not asserted: timings on a shared machine are not a
		// test's to judge (the target is 250 ms).
		t.Logf("live update latency: the run ended at %s, the page showed it %.0f ms later",
			inv.EndedAt.Format(time.RFC3339Nano), float64(time.UnixMilli(int64(shown)).Sub(inv.EndedAt))/float64(time.Millisecond))
	})

	t.Run("cancel", func(t *testing.T) {
		blocked := invoke("blocker", `{}`)
		sqlitetest.WaitListenStarted(t, data, blocked, "")
		b.do(t, "cancel with a reason",
			chromedp.Navigate(srv.url+"/runs/"+blocked),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=running]`)),
			chromedp.Click(chromedp.CSS(`[data-testid=action-cancel]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=confirm-reason]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid=confirm-reason]`), "stuck in a test"),
			chromedp.Click(chromedp.CSS(`[data-testid=confirm-ok]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=cancelled]`)),
		)
		// The reason typed in the dialog is what the run's error says.
		b.do(t, "open the cancelled run", chromedp.Navigate(srv.url+"/runs/"+blocked),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-error]`)))
		if card := b.text(t, `[data-testid=run-error]`); !strings.Contains(card, "the invocation was cancelled: stuck in a test") {
			t.Errorf("the cancelled run's error card: %q", card)
		}
	})

	t.Run("retry", func(t *testing.T) {
		b.do(t, "open the faulted run", chromedp.Navigate(srv.url+"/runs/"+flaky),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=faulted]`)))
		nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(`[data-testid=action-retry]`), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 0 {
			t.Skip("this server offers no redrive (POST /v1/invocations/{id}/retry), so the console shows no retry button")
		}
		b.do(t, "retry from the failed task",
			chromedp.Click(chromedp.CSS(`[data-testid=action-retry]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=confirm-reason]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid=confirm-reason]`), "the endpoint is back"),
			chromedp.Click(chromedp.CSS(`[data-testid=confirm-ok]`)),
			// The same run goes on from the failed call, which now
			// answers, and completes.
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-live][data-status=completed]`)),
		)
		loc, err := chromedp.Run(b.ctx, chromedp.Location())
		if err != nil || !strings.HasSuffix(loc, "/runs/"+flaky) {
			t.Errorf("after the retry the page is %s (%v), want the same run", loc, err)
		}
		if n := flakyCalls.Load(); n != 2 {
			t.Errorf("the endpoint was called %d times, want 2", n)
		}
		b.screenshot(t, "console-run-retried")
	})

	t.Run("run again", func(t *testing.T) {
		b.do(t, "run the kettle again with another input",
			chromedp.Navigate(srv.url+"/runs/"+faulted),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=action-rerun]`)),
			chromedp.Click(chromedp.CSS(`[data-testid=action-rerun]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=confirm-input]`)),
			chromedp.SetValue(chromedp.CSS(`[data-testid=confirm-input]`), `{"again": true}`),
			chromedp.Click(chromedp.CSS(`[data-testid=confirm-ok]`)),
		)
		loc := b.waitLocation(t, func(loc string) bool {
			return strings.Contains(loc, "/runs/") && !strings.HasSuffix(loc, "/runs/"+faulted)
		})
		b.do(t, "the new run's page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-input]`)))
		t.Logf("run again opened %s", loc)
		if got := b.text(t, `[data-testid=run-input]`); !strings.Contains(got, `"again": true`) {
			t.Errorf("the new run's input is %s", got)
		}
	})

	t.Run("filters survive a reload", func(t *testing.T) {
		b.do(t, "filter the runs",
			chromedp.Navigate(srv.url+"/runs"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=filters]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid=filter-workflow]`), "waiter"),
			chromedp.SetValue(chromedp.CSS(`[data-testid=filter-status]`), "completed"),
			chromedp.Click(chromedp.CSS(`[data-testid=filter-apply]`)),
		)
		// The unfiltered list shows the row too: wait for the filtered
		// page's address, or the reload races the form's navigation.
		b.waitLocation(t, func(loc string) bool { return strings.Contains(loc, "status=completed") })
		b.do(t, "reload the filtered runs",
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=chip-completed].active`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+waiter+`"]`)),
			chromedp.Reload(),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+waiter+`"]`)),
		)
		loc, err := chromedp.Run(b.ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(loc)
		if q := u.Query(); q.Get("workflow") != "waiter" || q.Get("status") != "completed" {
			t.Errorf("the URL %s does not keep the filters", loc)
		}
		if got, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(`[data-testid=filter-workflow]`))); got != "waiter" {
			t.Errorf("after a reload the workflow filter holds %q", got)
		}
		rows, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(`table.runs tbody tr[data-id]`), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("%d runs listed, want only the completed waiter", len(rows))
		}
	})

	t.Run("other views", func(t *testing.T) {
		b.do(t, "a workflow's page",
			chromedp.Navigate(srv.url+"/workflows/default/waiter"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=graph]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=start-form]`)),
		)
		b.screenshot(t, "console-workflow")
		b.do(t, "a start refused by the input schema",
			chromedp.SetValue(chromedp.CSS(`[data-testid=start-input]`), `{"order": "not a number"}`),
			chromedp.Click(chromedp.CSS(`[data-testid=start-submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=start-problem]`)),
		)
		b.do(t, "the functions and events pages",
			chromedp.Navigate(srv.url+"/functions"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=functions]`)),
			chromedp.Navigate(srv.url+"/events"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=events]`)),
		)
		b.screenshot(t, "console-events")
		if os.Getenv("BATON_CONSOLE_SCREENSHOTS") != "" {
			// The narrow screen and the dark scheme.
			b.do(t, "a narrow, dark screen",
				chromedp.EmulateViewport(390, 844),
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
						Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
					})
					return err
				}),
				chromedp.Navigate(srv.url+"/runs/"+faulted),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=graph]`)),
			)
			b.screenshot(t, "console-run-narrow-dark")
		}
	})

	// Opening the used login link again answers 401, which Chromium logs
	// as a failed resource: that one was asked for.
	b.mu.Lock()
	kept := b.problems[:0]
	for _, p := range b.problems {
		if !strings.Contains(p, "/login?code=") || !strings.Contains(p, "401") {
			kept = append(kept, p)
		}
	}
	b.problems = kept
	b.mu.Unlock()
	b.noProblems(t)
	if t.Failed() {
		return
	}
	if err := context.Cause(b.ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
