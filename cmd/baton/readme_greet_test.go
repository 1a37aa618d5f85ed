package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeGreetExample checks that the README's function-calling workflow
// is the whole of examples/greet.yaml, that it validates (with no warning
// once hello is deployed) and that it runs.
func TestReadmeGreetExample(t *testing.T) {
	greet := filepath.Join("..", "..", "examples", "greet.yaml")
	doc, err := os.ReadFile(greet)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(doc)+"```\n") {
		t.Fatalf("README does not show examples/greet.yaml whole:\n%s", doc)
	}

	// hello stands in for the Go example: an endpoint that greets.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"greeting": "Hello, " + in.Name + "!"})
	}))
	defer srv.Close()
	data := t.TempDir()

	baton(t, nil, "fn", "deploy", "other", "--url", srv.URL, "--data", data).
		expect(t, 0, "function other version 1 deployed\n", "")
	res := baton(t, nil, "validate", greet, "--data", data)
	if res.code != 0 || !strings.Contains(res.stderr, `warning: function "hello" is not deployed`) {
		t.Fatalf("validate before hello is deployed: %+v", res)
	}
	baton(t, nil, "fn", "deploy", "hello", "--url", srv.URL, "--data", data).
		expect(t, 0, "function hello version 1 deployed\n", "")
	baton(t, nil, "validate", greet, "--data", data).expect(t, 0, "", "")
	baton(t, nil, "run", greet, "--input", `{"user": {"name": "Grace"}}`, "--data", data).
		expect(t, 0, "{\"greeting\":\"Hello, Grace!\"}\n", "")
}
