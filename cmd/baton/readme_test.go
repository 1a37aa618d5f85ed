package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeFirstCommand runs the README's first command on the shipped
// example, and the same example with an input its schema rejects.
func TestReadmeFirstCommand(t *testing.T) {
	hello := filepath.Join("..", "..", "examples", "hello.yaml")
	data := t.TempDir()
	res := baton(t, nil, "run", hello, "--input", `{"name": "Ada"}`, "--data", data)
	if res.code != 0 || strings.TrimSpace(res.stdout) != `{"greeting":"Hello, Ada!"}` {
		t.Fatalf("exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
	res = baton(t, nil, "run", hello, "--input", `{"nom": "Ada"}`, "--data", data)
	var p struct{ Type, Instance, Detail string }
	if res.code != 1 || json.Unmarshal([]byte(res.stderr), &p) != nil {
		t.Fatalf("bad input: exit %d\n%s", res.code, res.stderr)
	}
	if !strings.HasSuffix(p.Type, "/errors/validation") || p.Instance != "/input/schema" || !strings.Contains(p.Detail, "name") {
		t.Errorf("problem %+v", p)
	}
}
