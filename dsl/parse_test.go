package dsl

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const header = `document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
`

func mustParse(t *testing.T, src string) *Workflow {
	t.Helper()
	w, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("unexpected errors:\n%v", err)
	}
	return w
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, w *Workflow)
	}{
		{
			name: "document and workflow settings",
			src: `document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
  title: Sample
  summary: A sample
  tags: {team: core, tier: 1}
  metadata: {baton.durability: none}
use:
  timeouts:
    short: {after: PT5S}
input:
  schema: {format: json, document: {type: object}}
  from: .order
output:
  as: {total: '${ .sum }'}
timeout: short
schedule:
  every: {minutes: 5}
  cron: 0 0 * * *
evaluate: {mode: loose}
do:
  - wait1: {wait: PT1S}
`,
			check: func(t *testing.T, w *Workflow) {
				want := Document{DSL: "1.0.3", Namespace: "test", Name: "sample", Version: "0.1.0", Title: "Sample", Summary: "A sample",
					Tags: map[string]string{"team": "core", "tier": "1"}, Metadata: map[string]any{"baton.durability": "none"}}
				if !reflect.DeepEqual(w.Document, want) {
					t.Errorf("Document = %+v, want %+v", w.Document, want)
				}
				if w.Input.From != ".order" || w.Input.Schema.Raw["format"] != "json" || !w.Input.Schema.Enforced() {
					t.Errorf("Input = %+v", w.Input)
				}
				if !reflect.DeepEqual(w.Output.As, map[string]any{"total": "${ .sum }"}) {
					t.Errorf("Output.As = %#v", w.Output.As)
				}
				if w.Timeout == nil || w.Timeout.After.D != 5*time.Second {
					t.Errorf("Timeout = %+v, want 5s resolved from use.timeouts", w.Timeout)
				}
				if w.Schedule.Every.D != 5*time.Minute || w.Schedule.Cron != "0 0 * * *" {
					t.Errorf("Schedule = %+v", w.Schedule)
				}
				if *w.Evaluate != (Evaluate{Language: "jq", Mode: "loose"}) {
					t.Errorf("Evaluate = %+v", w.Evaluate)
				}
				if w.Source != "test.yaml" {
					t.Errorf("Source = %q", w.Source)
				}
				doc, _ := w.Raw["document"].(map[string]any)
				if doc["name"] != "sample" {
					t.Errorf("Raw.document = %#v", w.Raw["document"])
				}
			},
		},
		{
			name: "call http with common properties",
			src: header + `do:
  - getPet:
      if: .id != null
      call: http
      with:
        method: get
        endpoint:
          uri: https://petstore.swagger.io/v2/pet/{petId}
        query: {limit: 10}
      export: {as: '$context + { pet: . }'}
      timeout: {after: {seconds: 30}}
      then: end
      metadata: {owner: me}
`,
			check: func(t *testing.T, w *Workflow) {
				task := w.Do[0].Task
				if w.Do[0].Name != "getPet" || task.Kind != KindCall || task.Ref != "/do/0/getPet" {
					t.Fatalf("task = %s %s %s", w.Do[0].Name, task.Kind, task.Ref)
				}
				if task.Pos != (Pos{Line: 8, Col: 7}) {
					t.Errorf("Pos = %+v, want 8:7", task.Pos)
				}
				wantWith := map[string]any{"method": "get", "endpoint": map[string]any{"uri": "https://petstore.swagger.io/v2/pet/{petId}"}, "query": map[string]any{"limit": float64(10)}}
				if task.Call.Function != "http" || !reflect.DeepEqual(task.Call.With, wantWith) {
					t.Errorf("Call = %#v", task.Call)
				}
				if task.If != ".id != null" || task.Then != FlowEnd || task.Timeout.After.D != 30*time.Second {
					t.Errorf("If/Then/Timeout = %q %q %+v", task.If, task.Then, task.Timeout)
				}
				if task.Export.As != "$context + { pet: . }" || task.Metadata["owner"] != "me" {
					t.Errorf("Export/Metadata = %+v %+v", task.Export, task.Metadata)
				}
				if task.Raw["call"] != "http" || task.Raw["then"] != "end" {
					t.Errorf("Raw = %#v", task.Raw)
				}
			},
		},
		{
			name: "nested task references",
			src: header + `do:
  - tryGetPet:
      try:
        - getPet: {call: getPetById, with: {petId: 1}}
      catch:
        errors: {with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication, status: 503}}
        do:
          - recover: {set: {ok: false}}
  - fork:
      fork:
        compete: true
        branches:
          - callNurse: {wait: {milliseconds: 1}}
  - loop:
      for: {in: .items}
      while: .more
      do:
        - x: {set: '${ . }'}
  - group:
      do:
        - inner: {wait: P1DT2H}
use:
  functions:
    getPetById:
      call: http
      with: {method: get, endpoint: 'https://petstore.swagger.io/v2/pet/{petId}'}
`,
			check: func(t *testing.T, w *Workflow) {
				refs := map[string]string{
					"try":    w.Do[0].Task.Try.Try[0].Task.Ref,
					"catch":  w.Do[0].Task.Try.Catch.Do[0].Task.Ref,
					"fork":   w.Do[1].Task.Fork.Branches[0].Task.Ref,
					"for":    w.Do[2].Task.For.Do[0].Task.Ref,
					"do":     w.Do[3].Task.Do[0].Task.Ref,
					"fn":     w.Use.Functions["getPetById"].Ref,
					"filter": w.Do[0].Task.Try.Catch.Errors.Type,
				}
				want := map[string]string{
					"try":    "/do/0/tryGetPet/try/0/getPet",
					"catch":  "/do/0/tryGetPet/catch/do/0/recover",
					"fork":   "/do/1/fork/fork/branches/0/callNurse",
					"for":    "/do/2/loop/do/0/x",
					"do":     "/do/3/group/do/0/inner",
					"fn":     "/use/functions/getPetById",
					"filter": "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
				}
				if !reflect.DeepEqual(refs, want) {
					t.Errorf("refs = %v\nwant %v", refs, want)
				}
				catch := w.Do[0].Task.Try.Catch
				if catch.As != "error" || catch.Errors.Status != 503 {
					t.Errorf("Catch = %+v", catch)
				}
				f := w.Do[2].Task.For
				if f.Each != "item" || f.At != "index" || f.In != ".items" || f.While != ".more" {
					t.Errorf("For = %+v", f)
				}
				if !w.Do[1].Task.Fork.Compete {
					t.Error("Compete = false")
				}
				if w.Do[2].Task.For.Do[0].Task.Set != "${ . }" {
					t.Errorf("Set = %#v", w.Do[2].Task.For.Do[0].Task.Set)
				}
				if got := w.Do[3].Task.Do[0].Task.Wait.D; got != 26*time.Hour {
					t.Errorf("Wait = %v", got)
				}
			},
		},
		{
			name: "reusable error and retry resolved",
			src: header + `use:
  errors:
    notImplemented: {type: https://example.com/not-implemented, status: 501, title: Not Implemented, detail: '${ .why }'}
  retries:
    default:
      when: .retryable
      delay: {seconds: 3}
      backoff: {exponential: {}}
      limit: {attempt: {count: 5, duration: PT1M}, duration: PT10M}
      jitter: {from: {seconds: 1}, to: {seconds: 2}}
do:
  - attempt:
      try:
        - fail: {raise: {error: notImplemented}}
      catch:
        as: failure
        exceptWhen: .status == 400
        retry: default
`,
			check: func(t *testing.T, w *Workflow) {
				raised := w.Do[0].Task.Try.Try[0].Task.Raise.Error
				want := ErrorDef{Type: "https://example.com/not-implemented", Status: 501, Title: "Not Implemented", Detail: "${ .why }"}
				if *raised != want {
					t.Errorf("raised = %+v", raised)
				}
				if raised == w.Use.Errors["notImplemented"] {
					t.Error("the raised error shares the pointer of use.errors")
				}
				c := w.Do[0].Task.Try.Catch
				r := c.Retry
				if c.As != "failure" || c.ExceptWhen != ".status == 400" || r == nil {
					t.Fatalf("Catch = %+v", c)
				}
				if r.When != ".retryable" || r.Delay.D != 3*time.Second || r.Backoff != BackoffExponential ||
					r.Limit.AttemptCount == nil || *r.Limit.AttemptCount != 5 || r.Limit.AttemptDuration.D != time.Minute || r.Limit.Duration.D != 10*time.Minute ||
					r.Jitter.From.D != time.Second || r.Jitter.To.D != 2*time.Second {
					t.Errorf("Retry = %+v", r)
				}
			},
		},
		{
			name: "switch, emit, listen, run",
			src: header + `do:
  - route:
      switch:
        - big: {when: .n > 10, then: announce}
        - other: {then: exit}
  - announce:
      emit:
        event:
          with: {source: https://example.com, type: com.example.big, data: '${ . }'}
  - await:
      listen:
        to: {one: {with: {type: com.example.done}}}
        read: envelope
      foreach:
        item: ev
        do:
          - log: {set: {seen: '${ $ev }'}}
  - build:
      run:
        container: {image: alpine, command: echo hi}
        await: false
        return: all
  - script:
      run:
        script: {language: js, code: 'console.log(1)'}
`,
			check: func(t *testing.T, w *Workflow) {
				cases := w.Do[0].Task.Switch
				if len(cases) != 2 || *cases[0] != (SwitchCase{Name: "big", When: ".n > 10", Then: "announce"}) || *cases[1] != (SwitchCase{Name: "other", Then: "exit"}) {
					t.Errorf("Switch = %+v %+v", cases[0], cases[1])
				}
				if ev := w.Do[1].Task.Emit.Event; ev["type"] != "com.example.big" || ev["data"] != "${ . }" {
					t.Errorf("Emit = %#v", ev)
				}
				l := w.Do[2].Task.Listen
				if l.Read != "envelope" || l.To["one"] == nil || l.Foreach == nil || l.Foreach.Item != "ev" || l.Foreach.At != "index" {
					t.Errorf("Listen = %#v", l)
				}
				r := w.Do[3].Task.Run
				if r.Kind != "container" || r.Spec["image"] != "alpine" || r.Await == nil || *r.Await || r.Return != "all" {
					t.Errorf("Run = %+v", r)
				}
				s := w.Do[4].Task.Run
				if s.Kind != "script" || s.Await != nil || s.Return != "stdout" || s.Spec["language"] != "js" {
					t.Errorf("Run script = %+v", s)
				}
			},
		},
		{
			name: "JSON document",
			src: `{"document": {"dsl": "1.0.0", "namespace": "test", "name": "json", "version": "1.0.0"},
 "do": [{"greet": {"set": {"greeting": "hello", "count": 3, "ok": true, "none": null}}}]}`,
			check: func(t *testing.T, w *Workflow) {
				want := map[string]any{"greeting": "hello", "count": float64(3), "ok": true, "none": nil}
				if !reflect.DeepEqual(w.Do[0].Task.Set, want) {
					t.Errorf("Set = %#v", w.Do[0].Task.Set)
				}
				if w.Do[0].Task.Pos != (Pos{Line: 2, Col: 19}) {
					t.Errorf("Pos = %+v", w.Do[0].Task.Pos)
				}
			},
		},
		{
			name: "anchors and merge keys",
			src: header + `x-base: &base
  method: get
  endpoint: https://example.com
do:
  - a:
      call: http
      with:
        <<: *base
        method: post
`,
			check: func(t *testing.T, w *Workflow) {
				want := map[string]any{"method": "post", "endpoint": "https://example.com"}
				if !reflect.DeepEqual(w.Do[0].Task.Call.With, want) {
					t.Errorf("With = %#v", w.Do[0].Task.Call.With)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src))
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "yaml syntax",
			src:  "document:\n  dsl: '1.0.0'\n  name: a: b\n",
			want: []string{"t.yaml:3:1: invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name: "empty",
			src:  "",
			want: []string{"t.yaml:1:1: invalid YAML: the document is empty"},
		},
		{
			name: "not a map",
			src:  "- a\n- b\n",
			want: []string{"t.yaml:1:1: expected a map, got a list"},
		},
		{
			name: "document problems",
			src: `document:
  dsl: '2.0.0'
  namespace: Bad_NS
  version: 1
  titel: x
do: []
`,
			want: []string{
				`t.yaml:2:3: document: missing required property "name"`,
				`t.yaml:2:8: document.dsl: unsupported DSL version "2.0.0": Baton reads DSL 1.x`,
				`t.yaml:3:14: document.namespace: "Bad_NS" is not a valid namespace: use letters, digits and '-', at most 63 characters, starting and ending with a letter or digit`,
				`t.yaml:4:12: document.version: expected a string, got a number`,
				`t.yaml:5:3: document: unknown property "titel" (valid: dsl, namespace, name, version, title, summary, tags, metadata)`,
				`t.yaml:6:5: do: expected at least one task`,
			},
		},
		{
			name: "missing do",
			src:  header,
			want: []string{`t.yaml:1:1: missing required property "do"`},
		},
		{
			name: "task kinds",
			src: header + `do:
  - nothing: {then: end}
  - both: {set: {a: 1}, wait: PT1S}
  - typo: {call: http, wiht: {}}
  - badSet: {set: hello}
`,
			want: []string{
				`t.yaml:7:14: do[0].nothing: expected a task: a map with one of call, do, emit, for, fork, listen, raise, run, set, switch, try, wait`,
				`t.yaml:8:25: do[1].both: a task has exactly one kind, got "set" or "wait"`,
				`t.yaml:9:11: do[2].typo: missing required property "with"`,
				`t.yaml:9:24: do[2].typo: unknown property "wiht" for a call task (valid: call, with, if, input, output, export, timeout, then, metadata)`,
				`t.yaml:10:19: do[3].badSet.set: expected a map or a runtime expression, got a string`,
			},
		},
		{
			name: "flow and names",
			src: header + `do:
  - a: {set: {x: 1}, then: nowhere}
  - a: {set: {x: 2}}
  - s:
      switch:
        - one: {then: a}
        - two: {then: exit}
        - three: {when: .x, then: missing}
`,
			want: []string{
				`t.yaml:7:28: do[0].a.then: "nowhere" is neither a flow directive (continue, exit, end) nor a task of this list (a, a, s)`,
				`t.yaml:8:5: do[1]: duplicate task name "a" (first at line 7)`,
				`t.yaml:12:16: do[2].s.switch[1].two: a switch has at most one default case (a case without when); "one" is one already`,
				`t.yaml:13:35: do[2].s.switch[2].three.then: "missing" is neither a flow directive (continue, exit, end) nor a task of this list (a, a, s)`,
			},
		},
		{
			name: "references",
			src: header + `do:
  - r: {raise: {error: nope}}
  - t:
      timeout: slow
      try: [{x: {wait: PT1S}}]
      catch: {retry: again}
`,
			want: []string{
				`t.yaml:7:24: do[0].r.raise.error: error "nope" is not defined in use.errors (none are)`,
				`t.yaml:9:16: do[1].t.timeout: timeout "slow" is not defined in use.timeouts (none are)`,
				`t.yaml:11:22: do[1].t.catch.retry: retry policy "again" is not defined in use.retries (none are)`,
			},
		},
		{
			name: "http call",
			src: header + `do:
  - a: {call: http, with: {endpoint: {url: https://x}}}
  - b: {call: http, with: {method: 'g e t', endpoint: not-a-uri, output: body}}
`,
			want: []string{
				`t.yaml:7:27: do[0].a.with: missing required property "method"`,
				`t.yaml:7:38: do[0].a.with.endpoint: missing required property "uri"`,
				`t.yaml:7:39: do[0].a.with.endpoint: unknown property "url" (valid: uri, authentication)`,
				`t.yaml:8:36: do[1].b.with.method: "g e t" is not an HTTP method`,
				`t.yaml:8:55: do[1].b.with.endpoint: "not-a-uri" is not an absolute URI (scheme://...) or a runtime expression`,
				`t.yaml:8:74: do[1].b.with.output: invalid value "body" (valid: raw, content, response)`,
			},
		},
		{
			name: "expressions",
			src: header + `do:
  - a:
      if: .x ==
      set: {y: '${ .z | }', literal: 'not ${ an expression'}
      output: {as: '${ }'}
`,
			want: []string{
				`t.yaml:8:11: do[0].a.if: invalid runtime expression: unexpected EOF`,
				`t.yaml:9:16: do[0].a.set.y: invalid runtime expression: unexpected EOF`,
				`t.yaml:10:20: do[0].a.output.as: empty runtime expression`,
			},
		},
		{
			name: "durations",
			src: header + `do:
  - a: {wait: P1M}
  - b: {wait: {seconds: -1}}
  - c: {wait: {secs: 1}}
  - d: {wait: 5}
  - e: {wait: '${ .delay | }'}
  - f: {wait: '${ .delay }'}
`,
			want: []string{
				`t.yaml:7:15: do[0].a.wait: invalid ISO 8601 duration "P1M": years and months have no fixed length; use weeks or days`,
				`t.yaml:8:25: do[1].b.wait.seconds: a duration cannot be negative`,
				`t.yaml:9:16: do[2].c.wait: unknown property "secs" (valid: days, hours, minutes, seconds, milliseconds)`,
				`t.yaml:10:15: do[3].d.wait: expected a duration (an ISO 8601 string such as PT30S, or a map of days, hours, minutes, seconds, milliseconds), got a number`,
				`t.yaml:11:15: do[4].e.wait: invalid runtime expression: unexpected EOF`,
			},
		},
		{
			name: "wrong yaml types",
			src: header + `use: [errors]
do:
  getPet: {call: http}
`,
			want: []string{
				`t.yaml:6:6: use: expected a map, got a list`,
				`t.yaml:8:3: do: expected a list of tasks, got a map`,
			},
		},
		{
			name: "authentication references",
			src: header + `do:
  - a:
      call: http
      with:
        method: get
        endpoint: {uri: 'https://x', authentication: {use: missing}}
  - b:
      call: http
      with:
        method: get
        endpoint: {uri: 'https://x', authentication: {oauth2: {use: secret}}}
`,
			want: []string{
				`t.yaml:11:60: do[0].a.with.endpoint.authentication.use: authentication "missing" is not defined in use.authentications (none are)`,
				`t.yaml:16:69: do[1].b.with.endpoint.authentication.oauth2.use: secret "secret" is not declared in use.secrets`,
			},
		},
		{
			name: "duplicate keys",
			src: header + `do:
  - a:
      set: {x: 1}
      set: {x: 2}
`,
			want: []string{`t.yaml:9:7: do[0].a: duplicate key "set" (first at line 8)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; workflow %+v", w)
			}
			if w != nil {
				t.Error("a workflow was returned with errors")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"PT1S", time.Second, false},
		{"PT0.5S", 500 * time.Millisecond, false},
		{"P1DT2H", 26 * time.Hour, false},
		{"P2W", 14 * 24 * time.Hour, false},
		{"PT1H30M", 90 * time.Minute, false},
		{"PT0.001S", time.Millisecond, false},
		{"P1.5D", 36 * time.Hour, false},
		{"PT0S", 0, false},
		{"P", 0, true},
		{"PT", 0, true},
		{"P1DT", 0, true},
		{"1S", 0, true},
		{"PT1M1H", 0, true},
		{"PT1S1S", 0, true},
		{"P1Y", 0, true},
		{"PT.5S", 0, true},
		{"PT5.S", 0, true},
		{"PT1X", 0, true},
		{"P999999999999999D", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseISODuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "hello.yaml", Pos: Pos{Line: 12, Col: 7}, Path: "do[1].set", Msg: "expected a map or a runtime expression"}
	if got, want := e.Error(), "hello.yaml:12:7: do[1].set: expected a map or a runtime expression"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Pos: Pos{Line: 1, Col: 1}, Msg: "empty"}
	if got, want := e.Error(), "1:1: empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	list := ErrorList{e, {Pos: Pos{Line: 2, Col: 3}, Path: "a", Msg: "b"}}
	if got, want := list.Error(), "1:1: empty\n2:3: a: b"; got != want {
		t.Errorf("ErrorList.Error() = %q, want %q", got, want)
	}
	var target *Error
	if !errors.As(error(list), &target) || target != e {
		t.Error("errors.As does not reach the list's first Error")
	}
}

func TestPathQuotesOddKeys(t *testing.T) {
	got := path("do").index(0).key("get pet").key("with").key("content-type").key("a.b")
	if want := `do[0]["get pet"].with.content-type["a.b"]`; string(got) != want {
		t.Errorf("path = %s, want %s", got, want)
	}
	if got, want := pointer(pointerIndex("/do", 1), "a/b~c"), "/do/1/a~1b~0c"; got != want {
		t.Errorf("pointer = %s, want %s", got, want)
	}
}
