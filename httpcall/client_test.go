package httpcall

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/problem"
)

// testServer serves the endpoints the tests call. /echo reflects the request
// so that tests can assert on exactly what went out.
func testServer(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"id":1,"name":"milou","tags":["dog"]}`)
	})
	mux.HandleFunc("GET /problem-json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		io.WriteString(w, `{"title":"nope"}`)
	})
	mux.HandleFunc("GET /untyped", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // stop net/http from sniffing one
		io.WriteString(w, r.URL.Query().Get("body"))
	})
	mux.HandleFunc("GET /text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, `{"looks":"like json"}`)
	})
	mux.HandleFunc("GET /bad-json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"truncated":`)
	})
	mux.HandleFunc("GET /binary", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte{0, 1, 2, 0xff})
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/echo/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		headers := map[string]any{}
		for name, values := range r.Header {
			headers[name] = strings.Join(values, ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "yes")
		json.NewEncoder(w).Encode(map[string]any{
			"method":   r.Method,
			"host":     r.Host,
			"path":     r.URL.EscapedPath(),
			"rawQuery": r.URL.RawQuery,
			"headers":  headers,
			"body":     string(body),
		})
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/json")
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		io.WriteString(w, "service says:\n  status "+r.PathValue("code"))
	})
	mux.HandleFunc("GET /long-error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, strings.Repeat("x", 10_000))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/json", http.StatusFound)
	})
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/redirect-loop", http.StatusFound)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.Header().Set("Content-Type", "text/plain")
		chunk := []byte(strings.Repeat("a", 1024))
		for n > 0 {
			m := min(n, len(chunk))
			if _, err := w.Write(chunk[:m]); err != nil {
				return
			}
			n -= m
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func quietClient() *Client {
	return &Client{Logger: slog.New(slog.DiscardHandler)}
}

type wantProblem struct {
	typ    string
	status int
	title  string
	detail []string // substrings
}

func checkProblem(t *testing.T, p *problem.Problem, want *wantProblem) {
	t.Helper()
	if p == nil {
		t.Fatalf("got no problem, want %s (%d)", want.typ, want.status)
	}
	if p.Type != want.typ || p.Status != want.status {
		t.Fatalf("got %s (%d) %q, want %s (%d)", p.Type, p.Status, p.Detail, want.typ, want.status)
	}
	if want.title != "" && p.Title != want.title {
		t.Errorf("title = %q, want %q", p.Title, want.title)
	}
	for _, s := range want.detail {
		if !strings.Contains(p.Detail, s) {
			t.Errorf("detail %q does not contain %q", p.Detail, s)
		}
	}
}

func TestDoOutputs(t *testing.T) {
	srv := testServer(t)
	client := quietClient()
	tests := []struct {
		name  string
		args  map[string]any
		input any
		want  any
	}{
		{
			name: "content JSON is decoded",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/json"},
			want: map[string]any{"id": 1.0, "name": "milou", "tags": []any{"dog"}},
		},
		{
			name: "content +json media type is decoded",
			args: map[string]any{"method": "GET", "endpoint": srv.URL + "/problem-json"},
			want: map[string]any{"title": "nope"},
		},
		{
			name: "content untyped body that parses as JSON is decoded",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/untyped?body=%5B1%2C2%5D"},
			want: []any{1.0, 2.0},
		},
		{
			name: "content untyped body that is not JSON is a string",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/untyped?body=plain%20words"},
			want: "plain words",
		},
		{
			name: "content text stays text even when it looks like JSON",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/text"},
			want: `{"looks":"like json"}`,
		},
		{
			name: "content mislabelled JSON falls back to text",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/bad-json"},
			want: `{"truncated":`,
		},
		{
			name: "content binary is base64",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/binary"},
			want: base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}),
		},
		{
			name: "content empty body is null",
			args: map[string]any{"method": "delete", "endpoint": srv.URL + "/empty"},
			want: nil,
		},
		{
			name: "raw is base64 of the body",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/json", "output": "raw"},
			want: base64.StdEncoding.EncodeToString([]byte(`{"id":1,"name":"milou","tags":["dog"]}`)),
		},
		{
			name: "raw empty body is null",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/empty", "output": "raw"},
			want: nil,
		},
		{
			name: "output mode is case-insensitive",
			args: map[string]any{"method": "get", "endpoint": srv.URL + "/text", "output": "RAW"},
			want: base64.StdEncoding.EncodeToString([]byte(`{"looks":"like json"}`)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := client.Do(t.Context(), Request{Args: tt.args, Input: tt.input})
			if p != nil {
				t.Fatalf("Do: %v", p)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDoResponseOutput(t *testing.T) {
	srv := testServer(t)
	client := &Client{UserAgent: "baton-test", Logger: slog.New(slog.DiscardHandler)}
	got, p := client.Do(t.Context(), Request{
		Args: map[string]any{
			"method": "post",
			"endpoint": map[string]any{
				"uri":            srv.URL + "/echo/pets/{petId}",
				"authentication": map[string]any{"bearer": map[string]any{"token": "s3cret"}},
			},
			"body":   map[string]any{"name": "milou"},
			"output": "response",
		},
		Input:          map[string]any{"petId": 7.0},
		IdempotencyKey: "inv-1/do/0/call/1",
	})
	if p != nil {
		t.Fatalf("Do: %v", p)
	}
	resp := got.(map[string]any)
	if resp["statusCode"] != 200 {
		t.Errorf("statusCode = %v, want 200", resp["statusCode"])
	}
	headers := resp["headers"].(map[string]any)
	if headers["X-Echo"] != "yes" || !strings.HasPrefix(headers["Content-Type"].(string), "application/json") {
		t.Errorf("response headers = %v", headers)
	}
	request := resp["request"].(map[string]any)
	if request["method"] != "post" {
		t.Errorf("request.method = %v, want post", request["method"])
	}
	if request["uri"] != srv.URL+"/echo/pets/7" {
		t.Errorf("request.uri = %v", request["uri"])
	}
	wantRequestHeaders := map[string]any{
		"Authorization":   redacted,
		"Content-Type":    "application/json",
		"Idempotency-Key": "inv-1/do/0/call/1",
		"User-Agent":      "baton-test",
	}
	if !reflect.DeepEqual(request["headers"], wantRequestHeaders) {
		t.Errorf("request.headers = %v, want %v", request["headers"], wantRequestHeaders)
	}
	content := resp["content"].(map[string]any)
	if content["body"] != `{"name":"milou"}` || content["path"] != "/echo/pets/7" {
		t.Errorf("content = %v", content)
	}
	if auth := content["headers"].(map[string]any)["Authorization"]; auth != "Bearer s3cret" {
		t.Errorf("server saw Authorization %v, want the real token", auth)
	}
	// The output goes into the history as JSON: it must encode.
	if _, err := json.Marshal(got); err != nil {
		t.Errorf("response output does not encode as JSON: %v", err)
	}
}

// echo runs a call against /echo and returns what the server received.
func echo(t *testing.T, client *Client, req Request) map[string]any {
	t.Helper()
	got, p := client.Do(t.Context(), req)
	if p != nil {
		t.Fatalf("Do: %v", p)
	}
	return got.(map[string]any)
}

func TestDoRequestShape(t *testing.T) {
	srv := testServer(t)
	client := quietClient()
	tests := []struct {
		name  string
		req   Request
		check func(t *testing.T, seen map[string]any)
	}{
		{
			name: "method is case-insensitive",
			req:  Request{Args: map[string]any{"method": "pAtCh", "endpoint": srv.URL + "/echo/x"}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["method"] != "PATCH" {
					t.Errorf("method = %v", seen["method"])
				}
			},
		},
		{
			name: "literal URI is used as is",
			req:  Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/echo/a%2Fb?z=1&a=2"}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["path"] != "/echo/a%2Fb" || seen["rawQuery"] != "z=1&a=2" {
					t.Errorf("path %v query %v", seen["path"], seen["rawQuery"])
				}
			},
		},
		{
			name: "template variables come from the input",
			req: Request{
				Args:  map[string]any{"method": "get", "endpoint": map[string]any{"uri": srv.URL + "/echo/{kind}/{id}{?status}"}},
				Input: map[string]any{"kind": "pet", "id": 12.0, "status": "for sale"},
			},
			check: func(t *testing.T, seen map[string]any) {
				if seen["path"] != "/echo/pet/12" || seen["rawQuery"] != "status=for%20sale" {
					t.Errorf("path %v query %v", seen["path"], seen["rawQuery"])
				}
			},
		},
		{
			name: "query merges into the URI's query and wins on conflicts",
			req: Request{Args: map[string]any{
				"method":   "get",
				"endpoint": srv.URL + "/echo/q?keep=1&status=old",
				"query":    map[string]any{"status": "new", "limit": 10.0, "tag": []any{"a", "b"}, "skip": nil, "on": true},
			}},
			check: func(t *testing.T, seen map[string]any) {
				if want := "keep=1&limit=10&on=true&status=new&tag=a&tag=b"; seen["rawQuery"] != want {
					t.Errorf("query = %v, want %v", seen["rawQuery"], want)
				}
			},
		},
		{
			name: "headers are stringified and a JSON body gets a JSON content type",
			req: Request{Args: map[string]any{
				"method":   "put",
				"endpoint": srv.URL + "/echo/h",
				"headers":  map[string]any{"x-count": 3.0, "X-Flag": false, "X-Multi": []any{"a", "b"}, "X-Null": nil},
				"body":     map[string]any{"html": "<b>&</b>", "n": 1.0},
			}},
			check: func(t *testing.T, seen map[string]any) {
				h := seen["headers"].(map[string]any)
				if h["X-Count"] != "3" || h["X-Flag"] != "false" || h["X-Multi"] != "a, b" || h["Content-Type"] != "application/json" {
					t.Errorf("headers = %v", h)
				}
				if _, has := h["X-Null"]; has {
					t.Errorf("a null header was sent")
				}
				if seen["body"] != `{"html":"<b>&</b>","n":1}` {
					t.Errorf("body = %v", seen["body"])
				}
			},
		},
		{
			name: "string body with a text content type goes out verbatim",
			req: Request{Args: map[string]any{
				"method":   "post",
				"endpoint": srv.URL + "/echo/t",
				"headers":  map[string]any{"content-type": "text/plain"},
				"body":     "hello\nworld",
			}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["body"] != "hello\nworld" || seen["headers"].(map[string]any)["Content-Type"] != "text/plain" {
					t.Errorf("body %q headers %v", seen["body"], seen["headers"])
				}
			},
		},
		{
			name: "string body without a content type is JSON",
			req:  Request{Args: map[string]any{"method": "post", "endpoint": srv.URL + "/echo/s", "body": "hi"}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["body"] != `"hi"` || seen["headers"].(map[string]any)["Content-Type"] != "application/json" {
					t.Errorf("body %q headers %v", seen["body"], seen["headers"])
				}
			},
		},
		{
			name: "object body with a form content type is form-encoded",
			req: Request{Args: map[string]any{
				"method":   "post",
				"endpoint": srv.URL + "/echo/f",
				"headers":  map[string]any{"Content-Type": "application/x-www-form-urlencoded"},
				"body":     map[string]any{"b": "x y", "a": 1.0},
			}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["body"] != "a=1&b=x+y" {
					t.Errorf("body = %q", seen["body"])
				}
			},
		},
		{
			name: "no body, no content type",
			req:  Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/echo/n"}},
			check: func(t *testing.T, seen map[string]any) {
				if _, has := seen["headers"].(map[string]any)["Content-Type"]; has || seen["body"] != "" {
					t.Errorf("body %q headers %v", seen["body"], seen["headers"])
				}
			},
		},
		{
			name: "a Host header names the virtual host",
			req:  Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/echo/v", "headers": map[string]any{"host": "virtual.test"}}},
			check: func(t *testing.T, seen map[string]any) {
				if seen["host"] != "virtual.test" {
					t.Errorf("host = %v", seen["host"])
				}
			},
		},
		{
			name: "idempotency key and default user agent",
			req:  Request{Args: map[string]any{"method": "post", "endpoint": srv.URL + "/echo/i"}, IdempotencyKey: "inv/task/2"},
			check: func(t *testing.T, seen map[string]any) {
				h := seen["headers"].(map[string]any)
				if h["Idempotency-Key"] != "inv/task/2" || h["User-Agent"] != DefaultUserAgent {
					t.Errorf("headers = %v", h)
				}
			},
		},
		{
			name: "a task's own idempotency key and user agent win",
			req: Request{
				Args: map[string]any{"method": "post", "endpoint": srv.URL + "/echo/i",
					"headers": map[string]any{"idempotency-key": "mine", "user-agent": "custom"}},
				IdempotencyKey: "engine",
			},
			check: func(t *testing.T, seen map[string]any) {
				h := seen["headers"].(map[string]any)
				if h["Idempotency-Key"] != "mine" || h["User-Agent"] != "custom" {
					t.Errorf("headers = %v", h)
				}
			},
		},
		{
			name: "no idempotency key header when the key is empty",
			req:  Request{Args: map[string]any{"method": "post", "endpoint": srv.URL + "/echo/i"}},
			check: func(t *testing.T, seen map[string]any) {
				if _, has := seen["headers"].(map[string]any)["Idempotency-Key"]; has {
					t.Errorf("headers = %v", seen["headers"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, echo(t, client, tt.req))
		})
	}
}

func TestDoAuthentication(t *testing.T) {
	srv := testServer(t)
	client := quietClient()
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	policies := map[string]any{
		"petBasic":  map[string]any{"basic": map[string]any{"username": "admin", "password": "pw"}},
		"petBearer": map[string]any{"bearer": map[string]any{"token": "${ .token }"}},
		"fromVault": map[string]any{"basic": map[string]any{"use": "vault"}},
		"secretExp": map[string]any{"bearer": map[string]any{"token": "${ $secret.api.token }"}},
	}
	secrets := map[string]any{
		"vault":       map[string]any{"username": "svc", "password": "from-secret"},
		"api":         map[string]any{"token": "tok-from-secret"},
		"bearerToken": map[string]any{"token": "tok-secret-ref"},
	}
	tests := []struct {
		name string
		auth any
		eval func(any) (any, error)
		want string
	}{
		{"inline basic", map[string]any{"basic": map[string]any{"username": "serverless-workflow", "password": "conformance-test"}}, nil, basic("serverless-workflow", "conformance-test")},
		{"inline bearer", map[string]any{"bearer": map[string]any{"token": "abc"}}, nil, "Bearer abc"},
		{"inline bearer from a secret", map[string]any{"bearer": map[string]any{"use": "bearerToken"}}, nil, "Bearer tok-secret-ref"},
		{"named basic", map[string]any{"use": "petBasic"}, nil, basic("admin", "pw")},
		{"named basic from a secret", map[string]any{"use": "fromVault"}, nil, basic("svc", "from-secret")},
		{"named policy expressions read the input", map[string]any{"use": "petBearer"}, nil, "Bearer from-input"},
		{"named policy expressions read $secret", map[string]any{"use": "secretExp"}, nil, "Bearer tok-from-secret"},
		{
			"named policy expressions go through the engine's evaluator",
			map[string]any{"use": "petBearer"},
			func(any) (any, error) {
				return map[string]any{"bearer": map[string]any{"token": "from-engine"}}, nil
			},
			"Bearer from-engine",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := echo(t, client, Request{
				Args:               map[string]any{"method": "get", "endpoint": map[string]any{"uri": srv.URL + "/echo/auth", "authentication": tt.auth}},
				Input:              map[string]any{"token": "from-input"},
				Authentications:    policies,
				Secrets:            secrets,
				EvalAuthentication: tt.eval,
			})
			if got := seen["headers"].(map[string]any)["Authorization"]; got != tt.want {
				t.Errorf("Authorization = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDoConfigurationProblems(t *testing.T) {
	srv := testServer(t)
	client := quietClient()
	policies := map[string]any{
		"nested": map[string]any{"use": "other"},
		"oauth":  map[string]any{"oauth2": map[string]any{"authority": "https://id.test", "grant": "client_credentials"}},
		"badExp": map[string]any{"bearer": map[string]any{"token": "${ .nope | error }"}},
	}
	endpoint := func(auth any) map[string]any {
		return map[string]any{"uri": srv.URL + "/json", "authentication": auth}
	}
	tests := []struct {
		name string
		args map[string]any
		want wantProblem
	}{
		{"missing method", map[string]any{"endpoint": srv.URL}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.method"}}},
		{"invalid method", map[string]any{"method": "GE T", "endpoint": srv.URL}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"not a valid HTTP method"}}},
		{"missing endpoint", map[string]any{"method": "get"}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.endpoint"}}},
		{"endpoint object without uri", map[string]any{"method": "get", "endpoint": map[string]any{}}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"endpoint.uri"}}},
		{"relative endpoint", map[string]any{"method": "get", "endpoint": "/pets"}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"absolute http or https"}}},
		{"unsupported scheme", map[string]any{"method": "get", "endpoint": "ftp://x.test/a"}, wantProblem{typ: problem.TypeConfiguration, status: 400}},
		{"template with an object variable", map[string]any{"method": "get", "endpoint": srv.URL + "/{obj}"}, wantProblem{typ: problem.TypeExpression, status: 400, detail: []string{`"obj"`, "an object"}}},
		{"bad output", map[string]any{"method": "get", "endpoint": srv.URL, "output": "xml"}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.output"}}},
		{"bad redirect", map[string]any{"method": "get", "endpoint": srv.URL, "redirect": "yes"}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.redirect"}}},
		{"headers not an object", map[string]any{"method": "get", "endpoint": srv.URL, "headers": "x"}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.headers"}}},
		{"header with a line break", map[string]any{"method": "get", "endpoint": srv.URL, "headers": map[string]any{"X-A": "a\r\nX-B: b"}}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"line breaks"}}},
		{"header with a control character", map[string]any{"method": "get", "endpoint": srv.URL, "headers": map[string]any{"X-A": "a\x01b"}}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"control characters"}}},
		{"invalid header name", map[string]any{"method": "get", "endpoint": srv.URL, "headers": map[string]any{"X A": "a"}}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"header name"}}},
		{"query not an object", map[string]any{"method": "get", "endpoint": srv.URL, "query": []any{"a"}}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"with.query"}}},
		{"unknown named policy", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"use": "ghost"})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{`"ghost" is not defined`}}},
		{"named policy using another", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"use": "nested"})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"may not refer"}}},
		{"oauth2 named", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"use": "oauth"})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"needs client.id"}}},
		{"oidc inline", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"oidc": map[string]any{"authority": "x"}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"authority \"x\" is not an absolute http or https URI"}}},
		{"two schemes", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"basic": map[string]any{}, "bearer": map[string]any{}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"several schemes"}}},
		{"no scheme", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"kerberos": map[string]any{}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"no known scheme", "kerberos"}}},
		{"basic without password", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"basic": map[string]any{"username": "a"}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"no password"}}},
		{"basic username with colon", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"basic": map[string]any{"username": "a:b", "password": "c"}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"':'"}}},
		{"bearer with object token", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"bearer": map[string]any{"token": map[string]any{}}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{"token must be a string"}}},
		{"missing secret", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"bearer": map[string]any{"use": "nowhere"}})}, wantProblem{typ: problem.TypeConfiguration, status: 400, detail: []string{`secret "nowhere" is not available`}}},
		{"failing policy expression", map[string]any{"method": "get", "endpoint": endpoint(map[string]any{"use": "badExp"})}, wantProblem{typ: problem.TypeExpression, status: 400, detail: []string{`"badExp"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := client.Do(t.Context(), Request{
				Args:            tt.args,
				Input:           map[string]any{"obj": map[string]any{"a": 1.0}},
				Authentications: policies,
			})
			if p == nil {
				t.Fatalf("got %v, want a problem", got)
			}
			checkProblem(t, p, &tt.want)
		})
	}
}

func TestDoStatusHandling(t *testing.T) {
	srv := testServer(t)
	client := quietClient()
	tests := []struct {
		name     string
		path     string
		redirect bool
		want     any          // output when the call succeeds
		problem  *wantProblem // or the problem it raises
	}{
		{name: "200", path: "/status/200", want: "service says:\n  status 200"},
		{name: "201", path: "/status/201", want: "service says:\n  status 201"},
		{name: "3xx is an error without redirect", path: "/redirect",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 302, title: "Found", detail: []string{"GET " + srv.URL + "/redirect returned 302 Found", "Location: /json", "redirect: true"}}},
		{name: "304 is an error without redirect", path: "/status/304",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 304, title: "Not Modified"}},
		{name: "redirect true follows", path: "/redirect", redirect: true, want: map[string]any{"id": 1.0, "name": "milou", "tags": []any{"dog"}}},
		{name: "redirect true accepts a final 3xx", path: "/status/304", redirect: true, want: nil},
		{name: "redirect loop", path: "/redirect-loop", redirect: true,
			problem: &wantProblem{typ: problem.TypeCommunication, status: 503, detail: []string{"redirects"}}},
		{name: "400", path: "/status/400",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 400, title: "Bad Request", detail: []string{"returned 400 Bad Request: service says: status 400"}}},
		{name: "404", path: "/status/404", redirect: true,
			problem: &wantProblem{typ: problem.TypeCommunication, status: 404, title: "Not Found"}},
		{name: "500", path: "/status/500",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 500, title: "Internal Server Error"}},
		{name: "503", path: "/status/503",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 503, title: "Service Unavailable"}},
		{name: "unknown status", path: "/status/599",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 599, title: "HTTP Status 599"}},
		{name: "long error body is cut", path: "/long-error",
			problem: &wantProblem{typ: problem.TypeCommunication, status: 500, detail: []string{strings.Repeat("x", errorSnippetBytes) + "…"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + tt.path, "redirect": tt.redirect}})
			if tt.problem != nil {
				checkProblem(t, p, tt.problem)
				if len(p.Detail) > 1024 {
					t.Errorf("detail is %d bytes long", len(p.Detail))
				}
				return
			}
			if p != nil {
				t.Fatalf("Do: %v", p)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDoRedirectResponseNamesTheFinalRequest(t *testing.T) {
	srv := testServer(t)
	got, p := quietClient().Do(t.Context(), Request{Args: map[string]any{
		"method": "get", "endpoint": srv.URL + "/redirect", "redirect": true, "output": "response",
	}})
	if p != nil {
		t.Fatalf("Do: %v", p)
	}
	resp := got.(map[string]any)
	if uri := resp["request"].(map[string]any)["uri"]; uri != srv.URL+"/json" {
		t.Errorf("request.uri = %v, want the redirect's target", uri)
	}
	if resp["statusCode"] != 200 {
		t.Errorf("statusCode = %v", resp["statusCode"])
	}
}

func TestDoNetworkProblems(t *testing.T) {
	srv := testServer(t)
	client := quietClient()

	// A port that was just listened on and closed refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/x"
	ln.Close()

	t.Run("connection refused", func(t *testing.T) {
		_, p := client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": refused}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 503, detail: []string{"GET " + refused, "service unavailable", "refused"}})
	})
	t.Run("unknown host", func(t *testing.T) {
		_, p := client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": "http://no-such-host.invalid/x"}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 503, detail: []string{"no-such-host.invalid"}})
	})
	t.Run("deadline is a timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		started := time.Now()
		_, p := client.Do(ctx, Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/slow"}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeTimeout, status: 408, detail: []string{"deadline"}})
		if elapsed := time.Since(started); elapsed > 2*time.Second {
			t.Errorf("the call took %v after its deadline", elapsed)
		}
	})
	t.Run("http.Client timeout is a timeout", func(t *testing.T) {
		c := &Client{HTTP: &http.Client{Timeout: 100 * time.Millisecond}, Logger: slog.New(slog.DiscardHandler)}
		_, p := c.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/slow"}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeTimeout, status: 408})
	})
	t.Run("cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, p := client.Do(ctx, Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/slow"}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 500, detail: []string{"cancelled"}})
	})
}

func TestDoResponseSizeLimit(t *testing.T) {
	srv := testServer(t)
	client := &Client{MaxResponseBytes: 4096, Logger: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name    string
		query   string
		problem bool
	}{
		{"at the limit", "n=4096", false},
		{"declared length over the limit", "n=4097", true},
		{"chunked body over the limit", "n=100000&chunked=1", true},
		{"chunked body within the limit", "n=100&chunked=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/big?" + tt.query}})
			if tt.problem {
				checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 502, detail: []string{"exceeds the limit of 4096 bytes"}})
				return
			}
			if p != nil {
				t.Fatalf("Do: %v", p)
			}
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(tt.query, "n="), "&chunked=1"))
			if s, _ := got.(string); len(s) != n {
				t.Errorf("got %d bytes, want %d", len(s), n)
			}
		})
	}
}

// TestDoReusesConnections checks the keep-alive tuning: many concurrent
// calls to one host must not open a connection per call.
func TestDoReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	client := quietClient()
	defer client.CloseIdleConnections()
	const workers, callsEach = 32, 20
	var wg sync.WaitGroup
	errs := make(chan *problem.Problem, workers*callsEach)
	for range workers {
		wg.Go(func() {
			for range callsEach {
				if _, p := client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": srv.URL}}); p != nil {
					errs <- p
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for p := range errs {
		t.Fatalf("Do: %v", p)
	}
	if n := conns.Load(); n > 2*workers {
		t.Errorf("%d calls opened %d connections, want at most %d", workers*callsEach, n, 2*workers)
	}
}

func TestDoLogsAtDebug(t *testing.T) {
	srv := testServer(t)
	var buf strings.Builder
	var mu sync.Mutex
	handler := slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug})
	client := &Client{Logger: slog.New(handler)}
	client.Do(t.Context(), Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/status/418"}})
	mu.Lock()
	defer mu.Unlock()
	if out := buf.String(); !strings.Contains(out, "http call") || !strings.Contains(out, "418") {
		t.Errorf("log = %q", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func BenchmarkDo(b *testing.B) {
	srv := testServer(b)
	client := quietClient()
	defer client.CloseIdleConnections()
	req := Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/json"}, IdempotencyKey: "bench/do/0/call/1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, p := client.Do(ctx, req); p != nil {
			b.Fatal(p)
		}
	}
}

// BenchmarkDoParallel mimics the engine's benchmark: 64 concurrent calls to
// one local endpoint.
func BenchmarkDoParallel(b *testing.B) {
	srv := testServer(b)
	client := quietClient()
	defer client.CloseIdleConnections()
	req := Request{Args: map[string]any{"method": "get", "endpoint": srv.URL + "/json"}}
	b.ReportAllocs()
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, p := client.Do(context.Background(), req); p != nil {
				b.Error(p)
				return
			}
		}
	})
}
