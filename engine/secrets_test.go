package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/secret"
)

// syncBuffer is a log sink safe for the engine's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	apiToken = "tok-5up3r-s3cr3t-4711"
	password = "pw-w0nderland-0815"
)

// TestSecretsNeverRecorded runs workflows that use secrets in input.from,
// in a header, in a query, in basic authentication and in a failing call,
// and looks for the values in everything Baton records: the histories,
// the invocation rows, the lifecycle events and the logs.
func TestSecretsNeverRecorded(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	key := bytes.Repeat([]byte{7}, secret.KeySize)
	secrets, err := secret.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.Set(ctx, "apiToken", apiToken); err != nil {
		t.Fatal(err)
	}
	if err := secrets.Set(ctx, "creds", map[string]any{"username": "alice", "password": password}); err != nil {
		t.Fatal(err)
	}

	var sawKey, sawAuth, sawQuery bool
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sawKey = r.Header.Get("X-Api-Key") == apiToken
		user, pass, ok := r.BasicAuth()
		sawAuth = ok && user == "alice" && pass == password
		sawQuery = r.URL.Query().Get("k") == apiToken
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer srv.Close()
	// A closed port: the call fails, and its error names the URL.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEngine(t, st, func(o *engine.Options) {
		o.Secrets = secrets
		o.Logger = logger
	})
	defer e.Close()

	doc := `
document: {dsl: '1.0.0', namespace: default, name: secretive, version: '1.0.0'}
use:
  secrets: [apiToken, creds]
  authentications:
    store:
      basic:
        use: creds
do:
  - check:
      call: http
      input:
        from: '${ {token: $secrets.apiToken} }'
      with:
        method: get
        endpoint:
          uri: ` + srv.URL + `/check?k={token}
          authentication: {use: store}
        headers:
          X-Api-Key: '${ $secrets.apiToken }'
        output: response
      output:
        as: '${ {status: .statusCode, request: .request, ok: .content.ok} }'
`
	failing := `
document: {dsl: '1.0.0', namespace: default, name: leaky, version: '1.0.0'}
use:
  secrets: [apiToken]
do:
  - call:
      call: http
      with:
        method: get
        endpoint: '${ "` + deadURL + `/x?k=" + $secrets.apiToken }'
`
	for _, src := range []string{doc, failing} {
		if _, err := e.ApplyWorkflow(ctx, "wf.yaml", []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string) {
		inv, err := e.Invoke(ctx, "default", name, "", nil)
		if err != nil {
			t.Fatalf("Invoke %s: %v", name, err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done, err := e.Wait(waitCtx, inv.ID)
		if err != nil {
			t.Fatalf("Wait %s: %v", name, err)
		}
		history, err := e.History(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		row, err := st.GetInvocation(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		events, err := e.LifecycleEvents(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		for what, v := range map[string]any{"history": history, "invocation row": row, "engine's view": done, "lifecycle events": events} {
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, name+" "+what, string(data))
		}
		switch name {
		case "secretive":
			if done.Status != core.StatusCompleted {
				t.Fatalf("secretive ended %s: %v", done.Status, done.Error)
			}
			out, _ := done.Output.(map[string]any)
			if out["ok"] != true || fmt.Sprint(out["status"]) != "200" {
				t.Fatalf("secretive output = %v", done.Output)
			}
			req, _ := out["request"].(map[string]any)
			if uri, _ := req["uri"].(string); !strings.Contains(uri, "k=[redacted]") && !strings.Contains(uri, "k=%5Bredacted%5D") {
				t.Errorf("the request echo's uri %q does not show the redacted query", uri)
			}
		case "leaky":
			if done.Status != core.StatusFaulted || done.Error == nil || done.Error.Type != problem.TypeCommunication {
				t.Fatalf("leaky ended %s with %v, want a communication fault", done.Status, done.Error)
			}
			if !strings.Contains(done.Error.Detail, "[redacted]") {
				t.Errorf("the fault's detail %q does not show the redaction", done.Error.Detail)
			}
		}
	}
	run("secretive")
	run("leaky")
	mu.Lock()
	if !sawKey || !sawAuth || !sawQuery {
		t.Errorf("the service did not get the secrets: header %v, basic auth %v, query %v", sawKey, sawAuth, sawQuery)
	}
	mu.Unlock()
	assertNoSecret(t, "logs", logs.String())
	if !strings.Contains(logs.String(), "http call") {
		t.Error("the debug log has no http call record; the log check proved nothing")
	}
}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, v := range []string{apiToken, password, base64.StdEncoding.EncodeToString([]byte("alice:" + password))} {
		if strings.Contains(text, v) {
			t.Errorf("%s holds a secret value in clear: %s", what, text)
		}
	}
}

// TestSecretsScopedByUse checks that a workflow sees only the secrets its
// use.secrets lists, and cannot start when one of them is not set.
func TestSecretsScopedByUse(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st, func(o *engine.Options) {
		o.Secrets = engine.StaticSecrets{"mine": "value-of-mine", "theirs": "value-of-theirs"}
	})
	defer e.Close()
	src := `
document: {dsl: '1.0.0', namespace: default, name: scoped, version: '1.0.0'}
use:
  secrets: [mine]
do:
  - look:
      set:
        mine: '${ $secrets.mine }'
        theirs: '${ $secrets.theirs }'
`
	if _, err := e.ApplyWorkflow(ctx, "scoped.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "scoped", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := done.Output.(map[string]any)
	if out["mine"] != "value-of-mine" || out["theirs"] != nil {
		t.Fatalf("output = %v, want mine's value and no theirs", done.Output)
	}

	missing := `
document: {dsl: '1.0.0', namespace: default, name: needy, version: '1.0.0'}
use:
  secrets: [absent]
do:
  - look:
      set: {v: '${ $secrets.absent }'}
`
	if _, err := e.ApplyWorkflow(ctx, "needy.yaml", []byte(missing)); err != nil {
		t.Fatal(err)
	}
	_, err = e.Invoke(ctx, "default", "needy", "", nil)
	var p *problem.Problem
	if !errors.As(err, &p) || p.Type != problem.TypeConfiguration || !strings.Contains(p.Detail, "absent") {
		t.Fatalf("Invoke with a missing secret: %v, want a configuration error naming it", err)
	}
}
