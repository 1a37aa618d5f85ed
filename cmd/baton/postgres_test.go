package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/api"
)

// startServerArgs starts `baton server --addr 127.0.0.1:0 ARGS...` with env
// added to this process's environment, and waits until it listens.
func startServerArgs(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	// The server leaves its admin token in its data directory; one on
	// PostgreSQL without --data leaves it in $BATON_DATA, a directory of
	// the test's own rather than the user's.
	credDir := ""
	for i, a := range args {
		if a == "--data" && i+1 < len(args) {
			credDir = args[i+1]
		}
	}
	if credDir == "" {
		credDir = t.TempDir()
		env = append(env, "BATON_DATA="+credDir)
	}
	cmd := exec.Command(batonBinary, append([]string{"server", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if addr, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
				found <- strings.TrimSpace(addr)
			}
		}
	}()
	select {
	case url := <-found:
		return &server{cmd: cmd, url: url, logs: &logs, token: adminToken(t, credDir)}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("server did not start; stderr:\n%s", logs.String())
		return nil
	}
}

// postgresDSN returns a DSN of the test PostgreSQL server whose
// search_path is a schema of this test's own, dropped when it ends. It
// skips the test when the server is unreachable, unless CI is set.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BATON_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", dsn, err)
		}
		t.Skipf("PostgreSQL at %s is unreachable: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "baton_cli_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

const testSecretKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// TestServerOnPostgres runs a server on PostgreSQL without a data
// directory, stores one of everything through it, stops it, and checks
// that a second server process on the same database finds it all: the
// workflow and its invocation, an idempotency key, the function and its
// module, the secret, the trigger and the event.
func TestServerOnPostgres(t *testing.T) {
	dsn := postgresDSN(t)
	hello := buildExample(t, "hello-go")
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=", "BATON_DATA=", "BATON_STORE=" + dsn}

	// The secret key is required: replicas must share it.
	res := runBaton(env, "server", "--addr", "127.0.0.1:0")
	if res.code != 1 || !strings.Contains(res.stderr, "--secret-key") || strings.Count(res.stderr, "\n") != 1 {
		t.Fatalf("server on PostgreSQL without a secret key: %+v", res)
	}
	if res := runBaton(env, "server", "--addr", "127.0.0.1:0", "--store", "mysql://x"); res.code != 1 ||
		!strings.Contains(res.stderr, "--store \"mysql://x\": give sqlite or a PostgreSQL URL") {
		t.Fatalf("server with an unknown store: %+v", res)
	}

	env = append(env, "BATON_SECRET_KEY="+testSecretKey)
	first := startServerArgs(t, env)
	cli := append(env, first.env()...)
	doc := writeFile(t, t.TempDir(), "hello.yaml", helloDoc("1.0.0"))
	mustSucceed(t, baton(t, cli, "workflow", "apply", doc), "hello")
	res = baton(t, cli, "invoke", "default/hello", "--input", `{"name":"Pg"}`, "--wait", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"greeting": "Hello, Pg!"`) {
		t.Fatalf("invoke on PostgreSQL: %+v", res)
	}
	invocationID := between(res.stdout, `"id": "`, `"`)
	res = baton(t, cli, "invoke", "default/hello", "--input", `{"name":"Once"}`, "--idempotency-key", "once-1")
	onceID := strings.TrimSpace(res.stdout)
	if res.code != 0 || onceID == "" || onceID == invocationID {
		t.Fatalf("idempotent invoke: %+v", res)
	}
	baton(t, cli, "fn", "deploy", "hello", "--wasm", hello).expect(t, 0, "function hello version 1 deployed\n", "")
	mustSucceed(t, baton(t, cli, "secret", "set", "token", "--value", "s3cret"), "")
	peek := writeFile(t, t.TempDir(), "peek.yaml", `document: {dsl: '1.0.0', namespace: default, name: peek, version: '1.0.0'}
use: {secrets: [token]}
do:
  - look:
      set:
        length: '${ $secrets.token | length }'
`)
	mustSucceed(t, baton(t, cli, "workflow", "apply", peek), "peek")
	mustSucceed(t, baton(t, cli, "trigger", "create", "greet", "--workflow", "default/hello", "--http", "greet"), "greet")
	req, _ := http.NewRequest(http.MethodPost, first.url+"/v1/events",
		strings.NewReader(`{"specversion":"1.0","id":"e1","source":"pg-test","type":"test.pg","data":{"n":1}}`))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+first.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("posting an event: %v %v", resp, err)
	}
	first.stop()
	if entries, err := os.ReadDir(home); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range entries {
			if e.Name() != ".cache" {
				t.Errorf("the server on PostgreSQL wrote %s in the home directory", e.Name())
			}
		}
	}

	second := startServerArgs(t, env)
	defer second.stop()
	cli = append(env, second.env()...)
	res = baton(t, cli, "workflow", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "hello") {
		t.Fatalf("workflow list on the second server: %+v", res)
	}
	res = baton(t, cli, "invocation", "get", invocationID, "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"status": "completed"`) {
		t.Fatalf("invocation get on the second server: %+v", res)
	}
	// The key holds across servers: the same request is the same
	// invocation, another request under the key a conflict.
	baton(t, cli, "invoke", "default/hello", "--input", `{"name":"Once"}`, "--idempotency-key", "once-1").
		expect(t, 0, onceID+"\n", "")
	res = baton(t, cli, "invoke", "default/hello", "--input", `{"name":"Twice"}`, "--idempotency-key", "once-1")
	if res.code != 1 || !strings.Contains(res.stderr, `idempotency key "once-1" was used for another request`) || strings.Count(res.stderr, "\n") != 1 {
		t.Fatalf("another request under a used key: %+v", res)
	}
	// The module comes from the database: this server never saw the file.
	baton(t, cli, "fn", "invoke", "hello", "--input", `{"name":"Replica"}`).
		expect(t, 0, "{\"greeting\":\"Hello, Replica!\"}\n", "")
	mustSucceed(t, baton(t, cli, "secret", "list"), "token")
	// The secret opens on this server too: both seal with the given key.
	res = baton(t, cli, "invoke", "default/peek", "--wait", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"length": 6`) {
		t.Fatalf("a workflow reading the secret on the second server: %+v", res)
	}
	res = baton(t, cli, "trigger", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "greet") {
		t.Fatalf("trigger list on the second server: %+v", res)
	}
	var listed api.EventList
	if code := second.do(t, http.MethodGet, "/v1/events?type=test.pg", "", &listed); code != http.StatusOK ||
		len(listed.Items) != 1 || listed.Items[0].Event["id"] != "e1" {
		t.Fatalf("events on the second server: %d %+v", code, listed)
	}
}

// mustSucceed fails the test unless res exited 0, printed nothing on
// stderr and wants on stdout.
func mustSucceed(t *testing.T, res result, want string) {
	t.Helper()
	if res.code != 0 || res.stderr != "" || !strings.Contains(res.stdout, want) {
		t.Fatalf("want success with %q on stdout, got %+v", want, res)
	}
}

// between returns the text of s between the first before and the next
// after.
func between(s, before, after string) string {
	_, rest, ok := strings.Cut(s, before)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, after)
	return v
}
