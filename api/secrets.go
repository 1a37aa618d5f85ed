package api

import (
	"context"

	"encoding/json"
	"errors"
	"github.com/batonflow/baton/auth"
	"net/http"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/secret"
)

// Secrets is what the API needs from the secret store; *secret.Store
// satisfies it. Values go in and never come out: the API lists names only.
// Every secret belongs to a namespace (?namespace=, "default" when absent).
type Secrets interface {
	SetIn(ctx context.Context, namespace, name string, value any) error
	NamesIn(ctx context.Context, namespace string) ([]string, error)
	DeleteIn(ctx context.Context, namespace, name string) error
}

// WithSecrets serves /v1/secrets over s. Without it those routes answer
// 501 Not Implemented.
func WithSecrets(s Secrets) Option {
	return func(c *config) { c.secrets = s }
}

// SecretValue is the body of PUT /v1/secrets/{name}: any JSON value, a
// string or an object (such as {username, password} for an authentication
// policy's `use: secret`).
type SecretValue struct {
	Value any `json:"value"`
}

// SecretRef names a stored secret.
type SecretRef struct {
	Name string `json:"name"`
}

// SecretList is the body of GET /v1/secrets.
type SecretList struct {
	Items []SecretRef `json:"items"`
}

// LifecycleEvents is the body of GET /v1/invocations/{id}/events.
type LifecycleEvents struct {
	Items []map[string]any `json:"items"`
}

// lifecycleSource is implemented by engines that can rebuild the DSL
// lifecycle events of an invocation (*engine.Engine does).
type lifecycleSource interface {
	LifecycleEvents(ctx context.Context, id string) ([]map[string]any, error)
}

func notImplemented(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusNotImplemented, "Not Implemented", format, args...)
}

func (s *server) putSecret(w http.ResponseWriter, r *http.Request) {
	if s.secrets == nil {
		s.writeProblem(w, r, notImplemented("this server keeps no secrets"))
		return
	}
	ns, ok := s.secretNamespace(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := secret.ValidateName(name); err != nil {
		s.writeProblem(w, r, badRequest("%v", err))
		return
	}
	var body SecretValue
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.fail(w, r, err, "secret "+name)
			return
		}
		// The decoder's message may quote the body, which holds the
		// secret: it is not repeated.
		s.writeProblem(w, r, badRequest(`the body must be a JSON object {"value": ...}`))
		return
	}
	if body.Value == nil {
		s.writeProblem(w, r, badRequest("the secret's value must not be null"))
		return
	}
	if err := s.secrets.SetIn(r.Context(), ns, name, body.Value); err != nil {
		s.fail(w, r, err, "secret "+name)
		return
	}
	writeJSON(w, http.StatusOK, SecretRef{Name: name})
}

func (s *server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if s.secrets == nil {
		s.writeProblem(w, r, notImplemented("this server keeps no secrets"))
		return
	}
	ns, ok := s.secretNamespace(w, r)
	if !ok {
		return
	}
	names, err := s.secrets.NamesIn(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err, "secrets")
		return
	}
	list := SecretList{Items: make([]SecretRef, 0, len(names))}
	for _, n := range names {
		list.Items = append(list.Items, SecretRef{Name: n})
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	if s.secrets == nil {
		s.writeProblem(w, r, notImplemented("this server keeps no secrets"))
		return
	}
	ns, ok := s.secretNamespace(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := s.secrets.DeleteIn(r.Context(), ns, name); err != nil {
		s.fail(w, r, err, "secret "+name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) lifecycleEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	src, ok := s.engine.(lifecycleSource)
	if !ok {
		s.writeProblem(w, r, notImplemented("this engine does not derive lifecycle events"))
		return
	}
	events, err := src.LifecycleEvents(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	if events == nil {
		events = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, LifecycleEvents{Items: events})
}

// secretNamespace reads ?namespace= of the secret routes: one namespace,
// never "*".
func (s *server) secretNamespace(w http.ResponseWriter, r *http.Request) (string, bool) {
	ns := queryNamespace(r)
	if err := auth.ValidateNamespace(ns); err != nil || ns == auth.AllNamespaces {
		s.writeProblem(w, r, badRequest("namespace %q: secrets belong to one namespace (letters, digits, -, _ and .)", ns))
		return "", false
	}
	return ns, true
}
