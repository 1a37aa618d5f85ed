package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// SecretSource provides secret values by name. The engine asks it for the
// secrets a workflow declares in use.secrets each time an invocation starts
// or resumes, so a secret changed meanwhile is seen by the next invocation
// (or by a resumed one) without restarting the engine. *secret.Store is the
// implementation; StaticSecrets serves embedders and tests.
type SecretSource interface {
	// Secrets returns the named secrets that exist; names that do not
	// are left out.
	Secrets(ctx context.Context, names []string) (map[string]any, error)
}

// NamespacedSecrets is a SecretSource whose secrets belong to namespaces
// (*secret.Store is one): a workflow then reads only its own namespace's.
type NamespacedSecrets interface {
	SecretsIn(ctx context.Context, namespace string, names []string) (map[string]any, error)
}

// StaticSecrets is a SecretSource over a fixed map.
type StaticSecrets map[string]any

// Secrets implements SecretSource.
func (s StaticSecrets) Secrets(_ context.Context, names []string) (map[string]any, error) {
	out := make(map[string]any, len(names))
	for _, name := range names {
		if v, ok := s[name]; ok {
			out[name] = v
		}
	}
	return out, nil
}

// minRedactedLength keeps very short secret values out of redaction: masking
// every "1" or "on" in the history would destroy it and reveal the value
// anyway by the holes it leaves.
const minRedactedLength = 4

// redactedText replaces secret values in Baton's own records.
const redactedText = "[redacted]"

// loadSecrets fetches the secrets def declares. A workflow sees only those
// (DSL: use.secrets), so one workflow cannot read another's credentials by
// naming them in an expression. When strict, a declared secret that does
// not exist is an error; a resuming invocation is not strict, because
// refusing to resume would leave it running forever.
func (e *Engine) loadSecrets(ctx context.Context, def *dsl.Workflow, strict bool) (map[string]any, error) {
	if def.Use == nil || len(def.Use.Secrets) == 0 {
		return nil, nil
	}
	names := def.Use.Secrets
	if e.opts.Secrets == nil {
		if strict {
			return nil, problem.Configuration("workflow %s/%s declares secrets (%s) but this engine has no secret store",
				def.Document.Namespace, def.Document.Name, strings.Join(names, ", "))
		}
		return nil, nil
	}
	var got map[string]any
	var err error
	if ns, ok := e.opts.Secrets.(NamespacedSecrets); ok {
		got, err = ns.SecretsIn(ctx, def.Document.Namespace, names)
	} else {
		got, err = e.opts.Secrets.Secrets(ctx, names)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the secrets of %s/%s: %w", def.Document.Namespace, def.Document.Name, err)
	}
	var missing []string
	for _, name := range names {
		if _, ok := got[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		if strict {
			return nil, problem.Configuration("workflow %s/%s declares secrets that are not set: %s (set them with `baton secret set`)",
				def.Document.Namespace, def.Document.Name, strings.Join(missing, ", "))
		}
		e.log.Warn("resuming without secrets that are no longer set",
			"workflow", def.Document.Namespace+"/"+def.Document.Name, "missing", missing)
	}
	return got, nil
}

// redactor masks secret values in what Baton itself records (errors,
// execution info, the request echo of `output: response`) and logs. Task
// outputs and the workflow's output are the author's data and are left
// alone: a workflow that copies a secret into its output chose to.
type redactor struct {
	values []string // longest first, so that a secret containing another is masked whole
}

func newRedactor(secrets map[string]any) *redactor {
	seen := map[string]bool{}
	var collect func(v any)
	collect = func(v any) {
		switch x := v.(type) {
		case string:
			if len(x) >= minRedactedLength {
				seen[x] = true
			}
		case map[string]any:
			for _, item := range x {
				collect(item)
			}
		case []any:
			for _, item := range x {
				collect(item)
			}
		}
	}
	for _, v := range secrets {
		collect(v)
	}
	if len(seen) == 0 {
		return nil
	}
	values := slices.Collect(maps.Keys(seen))
	sort.Slice(values, func(i, j int) bool {
		if len(values[i]) != len(values[j]) {
			return len(values[i]) > len(values[j])
		}
		return values[i] < values[j]
	})
	return &redactor{values: values}
}

// String masks every secret value in s. A nil redactor masks nothing.
func (r *redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redactedText)
		}
	}
	return s
}

// problem returns p with secret values masked, p itself when none occur.
func (r *redactor) problem(p *problem.Problem) *problem.Problem {
	if r == nil || p == nil {
		return p
	}
	c := *p
	c.Title, c.Detail, c.Instance = r.String(p.Title), r.String(p.Detail), r.String(p.Instance)
	if len(p.Errors) > 0 {
		c.Errors = make([]string, len(p.Errors))
		for i, e := range p.Errors {
			c.Errors[i] = r.String(e)
		}
	}
	return &c
}

// data returns v with secret values masked in every string, copying only
// what changes.
func (r *redactor) data(v any) any {
	if r == nil {
		return v
	}
	switch x := v.(type) {
	case string:
		return r.String(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[r.String(k)] = r.data(item)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = r.data(item)
		}
		return out
	}
	return v
}

// event masks secret values in the parts of a history event that Baton
// writes: errors and execution info.
func (r *redactor) event(ev *core.Event) {
	if r == nil {
		return
	}
	ev.Error = r.problem(ev.Error)
	if ev.Info != nil {
		ev.Info, _ = r.data(ev.Info).(map[string]any)
	}
}
