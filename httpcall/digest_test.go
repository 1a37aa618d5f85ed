package httpcall

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonflow/baton/problem"
)

// digestServer checks RFC 7616 digest responses for user "admin" with
// password "password123", challenging with the algorithm and qop the
// request's query asks for.
func digestServer(t *testing.T, attempts *atomic.Int64) *httptest.Server {
	t.Helper()
	const realm, nonce, opaque, password = "baton@test", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "5ccc069c403ebaf9f0171e9517f40e41", "password123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		algorithm := r.URL.Query().Get("alg")
		qop := r.URL.Query().Get("qop")
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "Digest ") {
			challenge := fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s"`, realm, nonce, opaque)
			if algorithm != "" {
				challenge += ", algorithm=" + algorithm
			}
			if qop != "" {
				challenge += `, qop="` + qop + `"`
			}
			w.Header().Add("WWW-Authenticate", `Basic realm="other"`)
			w.Header().Add("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "challenge")
			return
		}
		p := parseAuthParams(strings.TrimPrefix(auth, "Digest "))
		var sum func(string) string
		switch strings.ToUpper(strings.TrimSuffix(strings.ToUpper(p["algorithm"]), "-SESS")) {
		case "SHA-256":
			sum = func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
		default:
			sum = func(s string) string { d := md5.Sum([]byte(s)); return hex.EncodeToString(d[:]) }
		}
		ha1 := sum(p["username"] + ":" + realm + ":" + password)
		if strings.HasSuffix(strings.ToUpper(p["algorithm"]), "-SESS") {
			ha1 = sum(ha1 + ":" + nonce + ":" + p["cnonce"])
		}
		ha2 := sum(r.Method + ":" + r.URL.RequestURI())
		want := sum(ha1 + ":" + nonce + ":" + ha2)
		if p["qop"] != "" {
			want = sum(ha1 + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
		}
		if p["response"] != want || p["uri"] != r.URL.RequestURI() || p["opaque"] != opaque || p["username"] != "admin" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "bad digest response %q", auth)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user":%q,"body":%q}`, p["username"], body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDoDigestAuthentication(t *testing.T) {
	var attempts atomic.Int64
	srv := digestServer(t, &attempts)
	client := quietClient()
	tests := []struct {
		name  string
		query string
	}{
		{"MD5 without qop (RFC 2069)", ""},
		{"MD5 with qop auth", "qop=auth"},
		{"SHA-256 with qop auth", "alg=SHA-256&qop=auth"},
		{"MD5-sess", "alg=MD5-sess&qop=auth"},
		{"SHA-256-sess", "alg=SHA-256-sess&qop=auth,auth-int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts.Store(0)
			got, p := client.Do(t.Context(), Request{
				Args: map[string]any{
					"method": "post",
					"endpoint": map[string]any{
						"uri":            srv.URL + "/secure/path?" + tt.query,
						"authentication": map[string]any{"use": "sampleDigest"},
					},
					"body": map[string]any{"a": 1.0},
				},
				Authentications: map[string]any{
					"sampleDigest": map[string]any{"digest": map[string]any{"username": "admin", "password": "password123"}},
				},
			})
			if p != nil {
				t.Fatalf("Do: %v", p)
			}
			want := map[string]any{"user": "admin", "body": `{"a":1}`}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if n := attempts.Load(); n != 2 {
				t.Errorf("server saw %d requests, want 2 (challenge and answer)", n)
			}
		})
	}

	t.Run("wrong password is the server's refusal", func(t *testing.T) {
		_, p := client.Do(t.Context(), Request{Args: map[string]any{
			"method": "get",
			"endpoint": map[string]any{
				"uri":            srv.URL + "/secure?qop=auth",
				"authentication": map[string]any{"digest": map[string]any{"username": "admin", "password": "wrong"}},
			},
		}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 403, detail: []string{"bad digest response"}})
	})
	t.Run("unanswerable challenge is returned as is", func(t *testing.T) {
		_, p := client.Do(t.Context(), Request{Args: map[string]any{
			"method": "get",
			"endpoint": map[string]any{
				"uri":            srv.URL + "/secure?qop=auth-int",
				"authentication": map[string]any{"digest": map[string]any{"username": "admin", "password": "password123"}},
			},
		}})
		checkProblem(t, p, &wantProblem{typ: problem.TypeCommunication, status: 401, title: "Unauthorized", detail: []string{"challenge"}})
	})
}

func TestPickDigestChallenge(t *testing.T) {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"`)
	h.Add("WWW-Authenticate", `Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth, auth-int", userhash=true`)
	h.Add("WWW-Authenticate", `Digest realm="r", nonce="n3", algorithm=SHA-512-256, qop="auth"`)
	got, ok := pickDigestChallenge(h)
	if !ok {
		t.Fatal("no challenge picked")
	}
	want := digestChallenge{realm: "r", nonce: "n2", algorithm: "SHA-256", algorithmToken: "SHA-256", qop: "auth", userhash: true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, ok := pickDigestChallenge(http.Header{"Www-Authenticate": {`Basic realm="x"`}}); ok {
		t.Error("a Basic challenge was taken for Digest")
	}
}

func TestParseAuthParams(t *testing.T) {
	got := parseAuthParams(`realm="a, \"quoted\" realm", nonce=abc , qop="auth,auth-int",stale=FALSE`)
	want := map[string]string{"realm": `a, "quoted" realm`, "nonce": "abc", "qop": "auth,auth-int", "stale": "FALSE"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
