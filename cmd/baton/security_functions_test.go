package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// callerDoc is a workflow of namespace that calls fn.
func callerDoc(namespace, name, fn string) string {
	return `document: {dsl: '1.0.0', namespace: ` + namespace + `, name: ` + name + `, version: '1.0.0'}
do:
  - greet:
      call: ` + fn + `
      with:
        name: Ada
`
}

// TestSecurityFunctionsAreNamespaced attacks another team's functions
// with a team's tokens, through the API, the CLI and a workflow: each
// namespace sees, deploys, calls and deletes its own functions only.
func TestSecurityFunctionsAreNamespaced(t *testing.T) {
	srv := startServerWith(t, t.TempDir(), "--allow-capabilities", "processFunctions")
	defer srv.stop()
	devA := createToken(t, srv, "team-a", "developer")
	opA := createToken(t, srv, "team-a", "operator")
	devB := createToken(t, srv, "team-b", "developer")
	envA := []string{"BATON_SERVER=" + srv.url, "BATON_TOKEN=" + devA}
	envB := []string{"BATON_SERVER=" + srv.url, "BATON_TOKEN=" + devB}
	dir := filepath.Join(examplesDir, "python")

	// Both teams deploy "greet"; team-b also has "payroll".
	baton(t, envA, "fn", "deploy", "greet", "--exec", "python3 handler.py", "--dir", dir, "-n", "team-a").
		expect(t, 0, "function greet version 1 deployed\n", "")
	baton(t, envB, "fn", "deploy", "greet", "--exec", "python3 handler.py", "--dir", dir, "--max-instances", "3", "-n", "team-b").
		expect(t, 0, "function greet version 1 deployed\n", "")
	baton(t, envB, "fn", "deploy", "payroll", "--exec", "python3 handler.py", "--dir", dir, "-n", "team-b").
		expect(t, 0, "function payroll version 1 deployed\n", "")

	spec := `{"name": "payroll", "runtime": "process", "command": "python3 handler.py"}`
	cases := []struct {
		name     string
		attack   attack
		wantCode int
	}{
		{"team-a lists team-b's functions", attack{"GET", "/v1/functions?namespace=team-b", "", bearer(devA)}, 403},
		{"team-a reads team-b's function", attack{"GET", "/v1/functions/payroll?namespace=team-b", "", bearer(devA)}, 403},
		{"team-a reads team-b's version", attack{"GET", "/v1/functions/payroll/versions/1?namespace=team-b", "", bearer(devA)}, 403},
		{"team-a deploys into team-b", attack{"POST", "/v1/functions?namespace=team-b", spec, bearer(devA)}, 403},
		{"team-a deploys a spec naming team-b", attack{"POST", "/v1/functions?namespace=team-a",
			`{"namespace": "team-b", "name": "payroll", "runtime": "process", "command": "python3 handler.py"}`, bearer(devA)}, 400},
		{"team-a invokes team-b's function", attack{"POST", "/v1/functions/payroll/invoke?namespace=team-b", `{}`, bearer(opA)}, 403},
		{"team-a deletes team-b's function", attack{"DELETE", "/v1/functions/payroll?namespace=team-b", "", bearer(devA)}, 403},
		{"team-a deletes team-b's version", attack{"DELETE", "/v1/functions/payroll/versions/1?namespace=team-b", "", bearer(devA)}, 403},
		{"team-a reaches the default namespace's functions", attack{"GET", "/v1/functions", "", bearer(devA)}, 403},
		{"team-a looks for team-b's function in its own namespace", attack{"GET", "/v1/functions/payroll?namespace=team-a", "", bearer(devA)}, 404},
		{"team-a invokes team-b's function in its own namespace", attack{"POST", "/v1/functions/payroll/invoke?namespace=team-a", `{}`, bearer(opA)}, 404},
	}
	for _, tc := range cases {
		code, body := srv.send(t, tc.attack)
		if code != tc.wantCode || !strings.Contains(body, `"status":`) {
			t.Errorf("%s: %d %s, want %d and a problem", tc.name, code, body, tc.wantCode)
		}
	}
	if code, body := srv.send(t, attack{"GET", "/v1/functions?namespace=team-a", "", bearer(devA)}); code != 200 ||
		!strings.Contains(body, `"greet"`) || strings.Contains(body, "payroll") || strings.Contains(body, "team-b") {
		t.Errorf("team-a lists its functions: %d %s", code, body)
	}

	// The CLI says the same.
	if res := baton(t, envA, "fn", "invoke", "payroll", "-n", "team-b"); res.code != 1 || !strings.Contains(res.stderr, `role in namespace "team-b"`) {
		t.Errorf("team-a invokes team-b's function with the CLI: %+v", res)
	}
	if res := baton(t, envA, "fn", "delete", "payroll", "-n", "team-b"); res.code != 1 || !strings.Contains(res.stderr, `role in namespace "team-b"`) {
		t.Errorf("team-a deletes team-b's function with the CLI: %+v", res)
	}
	if res := baton(t, envA, "fn", "list", "-n", "team-a"); res.code != 0 || !strings.Contains(res.stdout, "greet") || strings.Contains(res.stdout, "payroll") {
		t.Errorf("team-a lists its functions with the CLI: %+v", res)
	}

	// A team-a workflow calling team-b's function faults: the name is not
	// deployed in team-a, and spelling team-b's namespace does not help.
	for i, fn := range []string{"payroll", "team-b/payroll"} {
		name := []string{"thief", "spelled"}[i]
		if code, body := srv.send(t, attack{"POST", "/v1/workflows", callerDoc("team-a", name, fn), bearer(devA)}); code != 201 {
			t.Fatalf("team-a applies %s: %d %s", name, code, body)
		}
		code, body := srv.send(t, attack{"POST", "/v1/workflows/team-a/" + name + "/invocations?wait=30s", `{}`, bearer(opA)})
		if strings.Contains(body, "Hello, Ada") || !strings.Contains(body, "not deployed") || !strings.Contains(body, "faulted") {
			t.Errorf("team-a's workflow calling %s: %d %s", fn, code, body)
		}
	}

	// Its call of greet reaches team-a's greet, not team-b's.
	if code, body := srv.send(t, attack{"POST", "/v1/workflows", callerDoc("team-a", "caller", "greet"), bearer(devA)}); code != 201 {
		t.Fatalf("team-a applies caller: %d %s", code, body)
	}
	if code, body := srv.send(t, attack{"POST", "/v1/workflows/team-a/caller/invocations?wait=30s", `{}`, bearer(opA)}); code != 200 || !strings.Contains(body, "Hello, Ada") {
		t.Fatalf("team-a's workflow calling its greet: %d %s", code, body)
	}
	instances := func(token, ns string) int {
		t.Helper()
		code, body := srv.send(t, attack{"GET", "/v1/functions/greet?namespace=" + ns, "", bearer(token)})
		var fn struct {
			Spec struct{ Namespace string }
			Pool struct{ Instances []json.RawMessage }
		}
		if code != 200 || json.Unmarshal([]byte(body), &fn) != nil || fn.Spec.Namespace != ns {
			t.Fatalf("%s's greet: %d %s", ns, code, body)
		}
		return len(fn.Pool.Instances)
	}
	if a, b := instances(devA, "team-a"), instances(devB, "team-b"); a != 1 || b != 0 {
		t.Errorf("after team-a's call: team-a's greet has %d instances, team-b's %d; want 1 and 0", a, b)
	}
}
