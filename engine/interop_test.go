package engine_test

import (
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite/sqlitetest"
)

// TestRunNamedArguments runs DSL 1.0.0-1.0.2 documents whose run.shell
// and run.script arguments are a map, as those versions defined them: a
// shell command gets `name=value` words (or `name` for a null value), a
// script sees each argument as a variable.
func TestRunNamedArguments(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	doc := func(version, name, task string) string {
		return fmt.Sprintf("document: {dsl: '%s', namespace: test, name: %s, version: '1.0.0'}\ndo:\n  - %s:\n%s", version, name, name, task)
	}
	cases := []struct {
		name, version, task string
		input               any
		want                any
	}{
		{"shell words in document order", "1.0.0",
			shellTask("printf '%s|' ", "          arguments:\n            --name: '${ .name }'\n            -v: null\n            count: 3\n"),
			map[string]any{"name": "Ada Lovelace; rm -rf /"}, "--name=Ada Lovelace; rm -rf /|-v|count=3|"},
		{"js variables", "1.0.1",
			scriptTask("js", `console.log(greetings + " " + who.first + " " + n)`,
				"          arguments:\n            greetings: Hello,\n            who: '${ .who }'\n            n: 2\n"),
			map[string]any{"who": map[string]any{"first": "Grace"}}, "Hello, Grace 2"},
	}
	if _, err := exec.LookPath("python3"); err == nil {
		cases = append(cases, struct {
			name, version, task string
			input               any
			want                any
		}{"python variables", "1.0.2",
			scriptTask("python", `print(greetings, who["first"], n, none is None)`,
				"          arguments:\n            greetings: Hello,\n            who: '${ .who }'\n            n: 2\n            none: null\n"),
			map[string]any{"who": map[string]any{"first": "Grace"}}, "Hello, Grace 2 True"})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := runDoc(t, e, doc(c.version, "named"+strconv.Itoa(i), c.task), c.input)
			if got := mustComplete(t, inv); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("output %#v, want %#v", got, c.want)
			}
		})
	}
}

// TestListenFilterFailureSkipsTheEvent: an event on which a `with.data`
// expression fails does not match; the workflow waits on and takes the
// next event that does.
func TestListenFilterFailureSkipsTheEvent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	log := events.NewLog(st.(store.EventLog), nil, nil)
	e := eventEngine(t, st, log)
	defer e.Close()
	doc := `
document: {dsl: '1.0.0', namespace: shop, name: bigorders, version: '1.0.0'}
do:
  - awaitBig:
      listen:
        to:
          one:
            with:
              type: order
              data: '${ (.items | length) > 1 }'
`
	if _, err := e.ApplyWorkflow(ctx, "b.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "shop", "bigorders", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sqlitetest.WaitListenStarted(t, dir, inv.ID, "")
	if _, err := e.IngestEvents(ctx, []events.Event{
		{"specversion": "1.0", "id": "odd", "source": "/s", "type": "order", "data": "not an object"},
		{"specversion": "1.0", "id": "small", "source": "/s", "type": "order", "data": map[string]any{"items": []any{1.0}}},
		{"specversion": "1.0", "id": "big", "source": "/s", "type": "order", "data": map[string]any{"items": []any{1.0, 2.0}}},
	}); err != nil {
		t.Fatal(err)
	}
	done := waitEnded(t, e, inv.ID)
	if done.Status != core.StatusCompleted {
		t.Fatalf("invocation %s: %v", done.Status, done.Error)
	}
	want := []any{map[string]any{"items": []any{1.0, 2.0}}}
	if !reflect.DeepEqual(done.Output, want) {
		t.Fatalf("output %v, want the big order's data", done.Output)
	}
}

// TestComputedWaitAndRetryRunEndToEnd: a wait computed from the input and
// a retry count run through the engine as the core decides them.
func TestComputedWaitAndRetryRunEndToEnd(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	doc := `
document: {dsl: '1.0.3', namespace: test, name: computedwait, version: '1.0.0'}
do:
  - pause:
      wait: '${ .pause }'
  - flaky:
      try:
        - fail:
            run:
              shell:
                command: exit 1
      catch:
        retry:
          delay: '${ {milliseconds: .retryMs} }'
          limit: {attempt: {count: 2}}
        do:
          - gaveUp:
              set: {gaveUp: true}
`
	inv := runDoc(t, e, doc, map[string]any{"pause": "PT0.05S", "retryMs": 10.0})
	if got := mustComplete(t, inv); !reflect.DeepEqual(got, map[string]any{"gaveUp": true}) {
		t.Fatalf("output %v", got)
	}
	attempts := 0
	hist, err := e.History(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist {
		if ev.Type == core.TaskFailed && strings.HasPrefix(ev.Task, "/do/1/flaky") {
			attempts++
		}
	}
	if attempts != 3 {
		t.Errorf("%d failed attempts, want 3 (the run and two retries)", attempts)
	}
}
