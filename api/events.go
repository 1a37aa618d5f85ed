package api

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/batonflow/baton/auth"
	"io"
	"net/http"
	"time"

	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
)

// eventEngine is implemented by engines with an event log
// (*engine.Engine does); without it the event routes answer 501.
type eventEngine interface {
	IngestEvents(ctx context.Context, evs []events.Event) ([]*store.LoggedEvent, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]events.Logged, error)
}

// triggerEngine is implemented by engines that keep triggers.
type triggerEngine interface {
	CreateTrigger(ctx context.Context, t *store.Trigger) (*store.Trigger, error)
	GetTrigger(ctx context.Context, name string) (*store.Trigger, error)
	ListTriggers(ctx context.Context) ([]*store.Trigger, error)
	DeleteTrigger(ctx context.Context, name string) error
	FireHook(ctx context.Context, path string, input any, idempotencyKey string) (*store.Invocation, error)
}

// AcceptedEvent reports where an ingested event is in the log.
type AcceptedEvent struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Seq    int64  `json:"seq"`
	// Duplicate is true when the log held this source and id already.
	Duplicate bool `json:"duplicate,omitempty"`
}

// AcceptedEvents is the body of a successful POST /v1/events.
type AcceptedEvents struct {
	Items []AcceptedEvent `json:"items"`
}

// LoggedEvent is an entry of the event log.
type LoggedEvent struct {
	Seq        int64          `json:"seq"`
	ReceivedAt time.Time      `json:"receivedAt"`
	Event      map[string]any `json:"event"`
}

// EventList is the body of GET /v1/events. Next is the position to pass
// as after= for the following page.
type EventList struct {
	Items []LoggedEvent `json:"items"`
	Next  int64         `json:"next"`
}

// Trigger is a trigger as the API shows it.
type Trigger struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Workflow  string `json:"workflow"`
	// Kind is http, cron, nats or mqtt; Spec the path, expression,
	// subject or topic.
	Kind           string     `json:"kind"`
	Spec           string     `json:"spec"`
	NextRun        *time.Time `json:"nextRun,omitempty"`
	LastRun        *time.Time `json:"lastRun,omitempty"`
	LastInvocation string     `json:"lastInvocation,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// TriggerList is the body of GET /v1/triggers.
type TriggerList struct {
	Items []Trigger `json:"items"`
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func triggerFrom(t *store.Trigger) Trigger {
	return Trigger{
		Name: t.Name, Namespace: t.Namespace, Workflow: t.Workflow, Kind: t.Kind, Spec: t.Spec,
		NextRun: optionalTime(t.NextRun), LastRun: optionalTime(t.LastRun), LastInvocation: t.LastInvocation,
		CreatedAt: t.CreatedAt,
	}
}

func (s *server) eventEngine(w http.ResponseWriter, r *http.Request) eventEngine {
	ee, ok := s.engine.(eventEngine)
	if !ok {
		s.writeProblem(w, r, notImplemented("this server has no event log"))
		return nil
	}
	return ee
}

func (s *server) triggerEngine(w http.ResponseWriter, r *http.Request) triggerEngine {
	te, ok := s.engine.(triggerEngine)
	if !ok {
		s.writeProblem(w, r, notImplemented("this server keeps no triggers"))
		return nil
	}
	return te
}

func (s *server) postEvents(w http.ResponseWriter, r *http.Request) {
	ee := s.eventEngine(w, r)
	if ee == nil {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, err, "reading the events")
		return
	}
	evs, p := events.FromHTTP(r, body)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	logged, err := ee.IngestEvents(r.Context(), evs)
	if err != nil {
		s.fail(w, r, err, "ingesting events")
		return
	}
	out := AcceptedEvents{Items: make([]AcceptedEvent, len(logged))}
	for i, le := range logged {
		out.Items[i] = AcceptedEvent{ID: le.ID, Source: le.Source, Seq: le.Seq, Duplicate: le.Duplicate}
	}
	writeJSON(w, http.StatusAccepted, out)
}

func (s *server) listEvents(w http.ResponseWriter, r *http.Request) {
	ee := s.eventEngine(w, r)
	if ee == nil {
		return
	}
	q := r.URL.Query()
	f := store.EventFilter{Type: q.Get("type"), Source: q.Get("source")}
	var prob *problem.Problem
	if f.After, prob = parseAfter(q, "a log position"); prob == nil {
		f.Limit, prob = parseLimit(q)
	}
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	logged, err := ee.ListEvents(r.Context(), f)
	if err != nil {
		s.fail(w, r, err, "reading the event log")
		return
	}
	out := EventList{Items: make([]LoggedEvent, len(logged)), Next: f.After}
	for i, le := range logged {
		out.Items[i] = LoggedEvent{Seq: le.Seq, ReceivedAt: le.ReceivedAt, Event: le.Event}
		out.Next = le.Seq
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) createTrigger(w http.ResponseWriter, r *http.Request) {
	te := s.triggerEngine(w, r)
	if te == nil {
		return
	}
	var body Trigger
	if p := decodeBody(r.Body, &body); p != nil {
		s.writeProblem(w, r, p)
		return
	}
	ns := body.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if !s.allowedIn(w, r, auth.Developer, ns) {
		return
	}
	t, err := te.CreateTrigger(r.Context(), &store.Trigger{
		Name: body.Name, Namespace: body.Namespace, Workflow: body.Workflow, Kind: body.Kind, Spec: body.Spec,
	})
	if err != nil {
		s.fail(w, r, err, "trigger "+body.Name)
		return
	}
	w.Header().Set("Location", "/v1/triggers/"+t.Name)
	writeJSON(w, http.StatusCreated, triggerFrom(t))
}

func (s *server) listTriggers(w http.ResponseWriter, r *http.Request) {
	te := s.triggerEngine(w, r)
	if te == nil {
		return
	}
	all, err := te.ListTriggers(r.Context())
	if err != nil {
		s.fail(w, r, err, "triggers")
		return
	}
	out := TriggerList{Items: make([]Trigger, 0, len(all))}
	for _, t := range all {
		if visible(r, auth.Viewer, t.Namespace) {
			out.Items = append(out.Items, triggerFrom(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getTrigger(w http.ResponseWriter, r *http.Request) {
	te := s.triggerEngine(w, r)
	if te == nil {
		return
	}
	name := r.PathValue("name")
	t, err := te.GetTrigger(r.Context(), name)
	if err != nil {
		s.fail(w, r, err, "trigger "+name)
		return
	}
	writeJSON(w, http.StatusOK, triggerFrom(t))
}

func (s *server) deleteTrigger(w http.ResponseWriter, r *http.Request) {
	te := s.triggerEngine(w, r)
	if te == nil {
		return
	}
	name := r.PathValue("name")
	if err := te.DeleteTrigger(r.Context(), name); err != nil {
		s.fail(w, r, err, "trigger "+name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fireHook starts the workflow of an HTTP trigger with the request's body
// (JSON) as input. An Idempotency-Key header makes retries safe.
func (s *server) fireHook(w http.ResponseWriter, r *http.Request) {
	te := s.triggerEngine(w, r)
	if te == nil {
		return
	}
	path := r.PathValue("path")
	input, err := readInput(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.fail(w, r, err, "reading the input")
			return
		}
		s.writeProblem(w, r, badRequest("the request body is not valid JSON: %v", err))
		return
	}
	r, ok := s.withQoSRequest(w, r, "")
	if !ok {
		return
	}
	// A hook hands over an event and wants no result: its start is
	// deferred at G1 like a trigger's rather than refused for overload,
	// whose 503 a webhook sender may never retry. Only its namespace's
	// quota refuses it (429 with Retry-After), which the sender can
	// retry and which an overload of other namespaces never causes.
	if req, ok := qos.RequestFrom(r.Context()); ok {
		req.Deferred = true
		r = r.WithContext(qos.WithRequest(r.Context(), req))
	}
	inv, err := te.FireHook(r.Context(), path, input, r.Header.Get("Idempotency-Key"))
	if errors.Is(err, store.ErrConflict) && inv != nil {
		s.repeatedHook(w, r, inv, input)
		return
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.writeProblem(w, r, problem.Newf(problem.TypeConflict, http.StatusConflict, "Conflict",
				"a request with this Idempotency-Key has started an invocation already"))
			return
		}
		s.fail(w, r, err, "hook "+path)
		return
	}
	w.Header().Set("Location", invocationPath(inv.ID))
	writeJSON(w, http.StatusAccepted, InvocationID{ID: inv.ID})
}

// decodeBody decodes a JSON request body into v, refusing unknown fields
// so that a misspelt one is reported rather than ignored.
func decodeBody(body io.Reader, v any) *problem.Problem {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return problemFor(err, "the request body")
		}
		return badRequest("the request body is not a valid JSON document of the expected shape: %v", err)
	}
	return nil
}
