package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
)

// serverSecretKey is the key the attacked server seals its secrets with;
// no workflow or function may ever see it.
const serverSecretKey = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"

// legitimate is the workload that keeps running beside the attacks: each
// of its invocations must complete with its greeting.
type legitimate struct {
	t   *testing.T
	env []string
	mu  sync.Mutex
	ids []string
}

func (l *legitimate) run(name string) {
	l.t.Helper()
	res := baton(l.t, l.env, "invoke", "default/hello", "--input", `{"name":"`+name+`"}`, "--wait", "-o", "json")
	var inv api.Invocation
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &inv) != nil || inv.Status != core.StatusCompleted ||
		!strings.Contains(fmt.Sprint(inv.Output), "Hello, "+name+"!") {
		l.t.Fatalf("the legitimate workload failed beside the attacks: %+v", res)
	}
	l.mu.Lock()
	l.ids = append(l.ids, inv.ID)
	l.mu.Unlock()
}

// invokeJSON runs a workflow to its end and returns the invocation.
func invokeJSON(t *testing.T, env []string, target string) api.Invocation {
	t.Helper()
	res := baton(t, env, "invoke", target, "--wait", "-o", "json")
	var inv api.Invocation
	if err := json.Unmarshal([]byte(res.stdout), &inv); err != nil {
		t.Fatalf("invoke %s: %+v", target, res)
	}
	return inv
}

func refused(t *testing.T, res result, mention ...string) {
	t.Helper()
	if res.code == 0 || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Fatalf("want a one-line refusal, got %+v", res)
	}
	t.Logf("refused: %s", strings.TrimSpace(res.stderr))
	for _, m := range mention {
		if !strings.Contains(res.stderr, m) {
			t.Fatalf("refusal %q does not mention %q", res.stderr, m)
		}
	}
}

func faulted(t *testing.T, inv api.Invocation, mention string) {
	t.Helper()
	if inv.Error != nil {
		t.Logf("faulted: %s", inv.Error.Detail)
	}
	if inv.Status != core.StatusFaulted || inv.Error == nil || !strings.Contains(inv.Error.Detail, mention) {
		t.Fatalf("invocation %s: status %s, output %v, error %+v; want a fault mentioning %q", inv.ID, inv.Status, inv.Output, inv.Error, mention)
	}
}

// TestSandboxAttacks replays, against a real server with its default
// settings, the attacks of issue 13 that capabilities, egress, limits and
// retention answer, each beside a legitimate workload that must not lose
// anything.
func TestSandboxAttacks(t *testing.T) {
	t.Setenv("BATON_SECRET_KEY", serverSecretKey)
	data := t.TempDir()
	srv := startServerWith(t, data, "--retention-sweep-interval", "200ms")
	defer srv.stop()
	env := srv.env()
	dir := t.TempDir()
	apply := func(name, doc string) result {
		return baton(t, env, "workflow", "apply", writeFile(t, dir, name, doc))
	}
	if res := apply("hello.yaml", helloDoc("1.0.0")); res.code != 0 {
		t.Fatalf("apply hello: %+v", res)
	}
	legit := &legitimate{t: t, env: env}
	legit.run("Before")

	t.Run("shell returning uid", func(t *testing.T) {
		res := apply("uid.yaml", `document: {dsl: '1.0.0', namespace: default, name: uid, version: '1.0.0'}
do:
  - who:
      run:
        shell:
          command: id
`)
		refused(t, res, "capability run.shell is not allowed in namespace default (policy capabilities.shell)")
		legit.run("Shell")
	})

	t.Run("process function running /bin/sh", func(t *testing.T) {
		res := baton(t, env, "fn", "deploy", "sh", "--exec", "/bin/sh -c id")
		refused(t, res, "process function sh is not allowed", "capabilities.processFunctions")
		// A namespace whose policy allows process functions may deploy
		// one, in that namespace only: the default namespace has no such
		// function. Once the policy is tightened, a call is refused.
		policy := writeFile(t, dir, "procs.yaml", "capabilities: {processFunctions: true}\n")
		baton(t, env, "policy", "set", "procs", "-f", policy).expect(t, 0, "policy of namespace procs set\n", "")
		baton(t, env, "fn", "deploy", "sh", "--exec", "/bin/sh -c id", "--namespace", "procs").
			expect(t, 0, "function sh version 1 deployed\n", "")
		refused(t, baton(t, env, "fn", "invoke", "sh", "--input", "{}"), "function sh not found")
		tightened := writeFile(t, dir, "procs-off.yaml", "capabilities: {processFunctions: false}\n")
		baton(t, env, "policy", "set", "procs", "-f", tightened).expect(t, 0, "policy of namespace procs set\n", "")
		refused(t, baton(t, env, "fn", "invoke", "sh", "--input", "{}", "-n", "procs"), "process function sh is not allowed in namespace procs")
		baton(t, env, "fn", "delete", "sh", "-n", "procs").expect(t, 0, "function sh deleted\n", "")
		legit.run("Process")
	})

	t.Run("wasm function mapping / and reading BATON_SECRET_KEY", func(t *testing.T) {
		hello := buildExample(t, "hello-go")
		refused(t, baton(t, env, "fn", "deploy", "leak", "--wasm", hello, "--mount", "/:/host"),
			"host directories", "capabilities.wasmDirs")
		refused(t, baton(t, env, "fn", "deploy", "leak", "--wasm", hello, "--host-env", "HOME"),
			"host environment", "capabilities.hostEnv")
		// Even where an operator allows host directories and variables,
		// Baton's own variables are never passed through.
		policy := writeFile(t, dir, "default-policy.yaml", "capabilities:\n  wasmDirs: true\n  hostEnv: true\n")
		baton(t, env, "policy", "set", "default", "-f", policy).expect(t, 0, "policy of namespace default set\n", "")
		refused(t, baton(t, env, "fn", "deploy", "leak", "--wasm", hello, "--host-env", "BATON_SECRET_KEY"),
			"BATON_SECRET_KEY is Baton's own variable")
		baton(t, env, "policy", "set", "default", "-f", writeFile(t, dir, "empty.yaml", "{}\n")).
			expect(t, 0, "policy of namespace default set\n", "")
		legit.run("Wasm")
	})

	t.Run("call: http to the server's own API and to cloud metadata", func(t *testing.T) {
		for name, url := range map[string]string{
			"self":     srv.url + "/v1/secrets",
			"metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		} {
			if res := apply(name+".yaml", `document: {dsl: '1.0.0', namespace: default, name: `+name+`, version: '1.0.0'}
do:
  - steal:
      call: http
      with: {method: get, endpoint: '`+url+`'}
`); res.code != 0 {
				t.Fatalf("apply %s: %+v", name, res)
			}
		}
		faulted(t, invokeJSON(t, env, "default/self"), `egress denial of "baton"`)
		faulted(t, invokeJSON(t, env, "default/metadata"), `egress denial of "metadata"`)
		legit.run("Egress")
	})

	t.Run("self-recursive subflow", func(t *testing.T) {
		if res := apply("self.yaml", `document: {dsl: '1.0.0', namespace: default, name: recurse, version: '1.0.0'}
do:
  - again:
      run:
        workflow: {namespace: default, name: recurse, version: '1.0.0'}
`); res.code != 0 {
			t.Fatalf("apply: %+v", res)
		}
		faulted(t, invokeJSON(t, env, "default/recurse"), "(policy limits.subflowDepth)")
		var list api.InvocationList
		srv.do(t, http.MethodGet, "/v1/invocations?namespace=default&workflow=recurse&limit=1000", "", &list)
		if len(list.Items) != 11 {
			t.Fatalf("%d invocations of the recursive workflow, want 11 (the root and 10 levels)", len(list.Items))
		}
		legit.run("Recursion")
	})

	t.Run("JavaScript infinite loop", func(t *testing.T) {
		loop := `document: {dsl: '1.0.0', namespace: scripts, name: spin, version: '1.0.0'}
do:
  - spin:
      run:
        script:
          language: js
          code: 'while (true) {}'
`
		refused(t, apply("spin.yaml", loop), "capability run.script is not allowed in namespace scripts")
		policy := writeFile(t, dir, "scripts.yaml", "capabilities: {script: true}\nlimits: {scriptTimeout: 1s}\n")
		baton(t, env, "policy", "set", "scripts", "-f", policy).expect(t, 0, "policy of namespace scripts set\n", "")
		shown := baton(t, env, "policy", "get", "scripts")
		for _, line := range []string{"capabilities.script true *", "capabilities.shell false", "limits.scriptTimeout 1s *", "limits.inputBytes 4194304"} {
			if !strings.Contains(squash(shown.stdout), line) {
				t.Fatalf("policy get lacks %q:\n%s", line, shown.stdout)
			}
		}
		if res := apply("spin.yaml", loop); res.code != 0 {
			t.Fatalf("apply with scripts allowed: %+v", res)
		}
		begin := time.Now()
		faulted(t, invokeJSON(t, env, "scripts/spin"), "(policy limits.scriptTimeout)")
		t.Logf("the loop was stopped after %s", time.Since(begin).Round(time.Millisecond))
		legit.run("Script")
	})

	t.Run("expression doubling a string", func(t *testing.T) {
		if res := apply("bomb.yaml", `document: {dsl: '1.0.0', namespace: default, name: bomb, version: '1.0.0'}
do:
  - grow:
      set:
        s: '${ "a" | until(length > 100000000; . + .) }'
`); res.code != 0 {
			t.Fatalf("apply: %+v", res)
		}
		faulted(t, invokeJSON(t, env, "default/bomb"), "(policy limits.expressionBytes)")
		shown := squash(baton(t, env, "policy", "get", "default").stdout)
		for _, line := range []string{"limits.expressionSteps 5000000", "limits.expressionBytes 16777216"} {
			if !strings.Contains(shown, line) {
				t.Fatalf("policy get lacks %q:\n%s", line, shown)
			}
		}
		legit.run("Expression")
	})

	t.Run("function of 4 GiB × 100,000 instances", func(t *testing.T) {
		hello := buildExample(t, "hello-go")
		refused(t, baton(t, env, "fn", "deploy", "hog", "--wasm", hello, "--memory", "4GiB", "--max-instances", "100000"),
			"exceeds the server's function memory budget", "--function-memory-budget")
		legit.run("Budget")
	})

	t.Run("finished invocations kept forever", func(t *testing.T) {
		policy := writeFile(t, dir, "ephemeral.yaml", "retention: 1s\n")
		baton(t, env, "policy", "set", "ephemeral", "-f", policy).expect(t, 0, "policy of namespace ephemeral set\n", "")
		if res := apply("eph.yaml", strings.Replace(helloDoc("1.0.0"), "namespace: default", "namespace: ephemeral", 1)); res.code != 0 {
			t.Fatalf("apply: %+v", res)
		}
		for i := range 20 {
			if inv := invokeJSON(t, env, "ephemeral/hello"); inv.Status != core.StatusCompleted {
				t.Fatalf("ephemeral run %d: %+v", i, inv)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			var list api.InvocationList
			srv.do(t, http.MethodGet, "/v1/invocations?namespace=ephemeral&limit=1000", "", &list)
			if len(list.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d finished invocations of namespace ephemeral are still stored after their 1s retention", len(list.Items))
			}
			time.Sleep(100 * time.Millisecond)
		}

		// One invocation is deleted by hand; a running one cannot be.
		id := invokeJSON(t, env, "default/metadata").ID
		if res := apply("nap.yaml", `document: {dsl: '1.0.0', namespace: default, name: nap, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`); res.code != 0 {
			t.Fatalf("apply nap: %+v", res)
		}
		res := baton(t, env, "invoke", "default/nap", "-o", "json")
		var napping api.Invocation
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &napping) != nil {
			t.Fatalf("invoke nap: %+v", res)
		}
		refused(t, baton(t, env, "invocation", "delete", napping.ID), "is running; cancel it before deleting it")
		baton(t, env, "invocation", "delete", id).expect(t, 0, "invocation "+id+" deleted\n", "")
		refused(t, baton(t, env, "invocation", "get", id), "not found")
		legit.run("Retention")
	})

	// Nothing was lost for the legitimate workload: every invocation of
	// it is still stored, completed (the default retention is 30 days).
	legit.run("After")
	for _, id := range legit.ids {
		var inv api.Invocation
		if code := srv.do(t, http.MethodGet, "/v1/invocations/"+id, "", &inv); code != http.StatusOK || inv.Status != core.StatusCompleted {
			t.Fatalf("legitimate invocation %s: %d %+v", id, code, inv)
		}
	}
	srv.stop() // the logs are complete once the server has exited
	if strings.Contains(srv.logs.String(), serverSecretKey) {
		t.Fatal("the server's secret key appears in its logs")
	}
}
