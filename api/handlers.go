package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// DefaultFilename names a workflow document sent without ?filename= in
// error messages.
const DefaultFilename = "request body"

// MaxListLimit is the largest page GET /v1/invocations serves.
const MaxListLimit = 1000

func workflowPath(namespace, name string) string {
	return "/v1/workflows/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

func invocationPath(id string) string {
	return "/v1/invocations/" + url.PathEscape(id)
}

func workflowSubject(namespace, name, version string) string {
	if version == "" {
		return "workflow " + namespace + "/" + name
	}
	return "workflow " + namespace + "/" + name + " version " + version
}

func (s *server) applyWorkflow(w http.ResponseWriter, r *http.Request) {
	filename := r.URL.Query().Get("filename")
	if filename == "" {
		filename = DefaultFilename
	}
	src, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, err, "reading the workflow document")
		return
	}
	if len(bytes.TrimSpace(src)) == 0 {
		s.writeProblem(w, r, badRequest("the request body is empty: send a workflow document (YAML or JSON)"))
		return
	}
	opts := lang.Options{Format: r.URL.Query().Get("format"), Namespace: r.URL.Query().Get("namespace")}
	if opts.Format != "" && opts.Format != lang.DSL && opts.Format != lang.Fission {
		s.writeProblem(w, r, badRequest("format %q: use %s or %s", opts.Format, lang.DSL, lang.Fission))
		return
	}
	wf, err := s.engine.ApplyDocument(r.Context(), filename, src, opts)
	if errors.Is(err, store.ErrConflict) {
		s.writeProblem(w, r, conflict("%s: another document is already stored under the same namespace, name and version; "+
			"change document.version to store a new version", filename))
		return
	}
	if err != nil {
		s.fail(w, r, err, filename)
		return
	}
	w.Header().Set("Location", workflowPath(wf.Namespace, wf.Name)+"/versions/"+url.PathEscape(wf.Version))
	writeJSON(w, http.StatusCreated, WorkflowRef{Namespace: wf.Namespace, Name: wf.Name, Version: wf.Version})
}

func (s *server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	wfs, err := s.engine.ListWorkflows(r.Context())
	if err != nil {
		s.fail(w, r, err, "listing workflows")
		return
	}
	list := WorkflowList{Items: make([]WorkflowSummary, 0, len(wfs))}
	for _, wf := range wfs {
		if !visible(r, auth.Viewer, wf.Namespace) {
			continue
		}
		list.Items = append(list.Items, workflowSummaryFrom(wf))
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	namespace, name, version := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("version")
	subject := workflowSubject(namespace, name, version)
	wf, err := s.engine.GetWorkflow(r.Context(), namespace, name, version)
	if err != nil {
		s.fail(w, r, err, subject)
		return
	}
	all, err := s.engine.ListWorkflows(r.Context())
	if err != nil {
		s.fail(w, r, err, subject)
		return
	}
	out := Workflow{
		Namespace: wf.Namespace,
		Name:      wf.Name,
		Version:   wf.Version,
		Versions:  []string{},
		Format:    wf.Format,
		Source:    string(wf.Source),
		CreatedAt: wf.CreatedAt.UTC(),
	}
	for _, other := range all {
		if other.Namespace == wf.Namespace && other.Name == wf.Name {
			out.Versions = append(out.Versions, other.Version)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteWorkflow(w http.ResponseWriter, r *http.Request) {
	namespace, name, version := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("version")
	subject := workflowSubject(namespace, name, version)
	// Stores may treat deleting nothing as success; the API promises 404
	// for a workflow that does not exist, so look first.
	if _, err := s.engine.GetWorkflow(r.Context(), namespace, name, version); err != nil {
		s.fail(w, r, err, subject)
		return
	}
	if err := s.engine.DeleteWorkflow(r.Context(), namespace, name, version); err != nil {
		s.fail(w, r, err, subject)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) invoke(w http.ResponseWriter, r *http.Request) {
	namespace, name := r.PathValue("namespace"), r.PathValue("name")
	query := r.URL.Query()
	version := query.Get("version")
	wait, prob := parseWait(query.Get("wait"), s.maxWait)
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	r, ok := s.withQoSRequest(w, r, namespace)
	if !ok {
		return
	}
	// An overloaded server's most frequent answer is a refusal: it is
	// decided before the body is read. A keyed start goes the ordinary
	// way, which may answer it with the invocation the key already holds.
	if er, ok := s.engine.(earlyRefuser); ok && r.Header.Get(IdempotencyKeyHeader) == "" {
		if err := er.RefuseEarly(r.Context(), namespace, name, version); err != nil {
			s.fail(w, r, err, workflowSubject(namespace, name, version))
			return
		}
	}
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
	inv, created, err := s.start(r, namespace, name, version, input)
	if err != nil {
		s.fail(w, r, err, workflowSubject(namespace, name, version))
		return
	}
	w.Header().Set("Location", invocationPath(inv.ID))
	if !created {
		// A retry: the invocation may have ended since the first answer.
		w.Header().Set("Idempotent-Replayed", "true")
		if inv.Status != core.StatusRunning {
			writeJSON(w, http.StatusOK, invocationFrom(inv))
			return
		}
	}
	if wait > 0 {
		if ended := s.waitFor(r, inv.ID, wait); ended != nil {
			writeJSON(w, http.StatusOK, invocationFrom(ended))
			return
		}
	}
	writeJSON(w, http.StatusAccepted, InvocationID{ID: inv.ID})
}

// waitFor waits up to d for an invocation to end and returns it, or nil
// when it is still running (or waiting failed: the caller then answers
// as if it had not waited, and the client polls).
func (s *server) waitFor(r *http.Request, id string, d time.Duration) *store.Invocation {
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	stop := context.AfterFunc(s.shutdown, cancel)
	defer stop()
	inv, err := s.engine.Wait(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.WarnContext(r.Context(), "waiting for invocation failed", "id", id, "error", err)
		}
		return nil
	}
	if inv == nil || inv.Status == core.StatusRunning {
		return nil
	}
	return inv
}

// readInput decodes an invocation's input: exactly one JSON value, or
// nothing at all for a null input.
func readInput(body io.Reader) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var input any
	if err := dec.Decode(&input); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return input, nil
}

func parseWait(raw string, limit time.Duration) (time.Duration, *problem.Problem) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, badRequest("wait=%q is not a duration: use a non-negative Go duration such as 30s or 2m", raw)
	}
	return min(d, limit), nil
}

func (s *server) getInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, prob := parseWait(r.URL.Query().Get("wait"), s.maxWait)
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	inv, err := s.engine.GetInvocation(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	if wait > 0 && inv.Status == core.StatusRunning {
		if ended := s.waitFor(r, id, wait); ended != nil {
			inv = ended
		}
	}
	writeJSON(w, http.StatusOK, invocationFrom(inv))
}

var knownStatuses = map[core.Status]bool{
	core.StatusRunning:   true,
	core.StatusCompleted: true,
	core.StatusFaulted:   true,
	core.StatusCancelled: true,
}

// parseInvocationFilter reads GET /v1/invocations's query. workflow is
// NAME or NAMESPACE/NAME; namespace may also be given on its own.
func parseInvocationFilter(q url.Values) (store.InvocationFilter, *problem.Problem) {
	f := store.InvocationFilter{
		Namespace: q.Get("namespace"),
		Status:    core.Status(q.Get("status")),
		Cursor:    q.Get("cursor"),
	}
	if wf := q.Get("workflow"); wf != "" {
		namespace, name, qualified := strings.Cut(wf, "/")
		if !qualified {
			name, namespace = namespace, ""
		}
		if name == "" || strings.Contains(name, "/") || (qualified && namespace == "") {
			return f, badRequest("workflow=%q: expected NAME or NAMESPACE/NAME", wf)
		}
		if namespace != "" && f.Namespace != "" && namespace != f.Namespace {
			return f, badRequest("workflow=%q names namespace %q but namespace=%q", wf, namespace, f.Namespace)
		}
		if namespace != "" {
			f.Namespace = namespace
		}
		f.Workflow = name
	}
	if f.Status != "" && !knownStatuses[f.Status] {
		return f, badRequest("status=%q: expected running, completed, faulted or cancelled", f.Status)
	}
	var prob *problem.Problem
	f.Limit, prob = parseLimit(q)
	return f, prob
}

// parseLimit reads a listing's ?limit=, a page size from 1 to
// MaxListLimit; 0 when absent (the store's default).
func parseLimit(q url.Values) (int, *problem.Problem) {
	raw := q.Get("limit")
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, badRequest("limit=%q: expected an integer from 1 to %d", raw, MaxListLimit)
	}
	return n, nil
}

// parseAfter reads ?after=, a position in a log (what names it in the
// error); 0 when absent.
func parseAfter(q url.Values, what string) (int64, *problem.Problem) {
	raw := q.Get("after")
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("after=%q: expected %s (a non-negative integer)", raw, what)
	}
	return n, nil
}

func (s *server) listInvocations(w http.ResponseWriter, r *http.Request) {
	f, prob := parseInvocationFilter(r.URL.Query())
	if prob == nil {
		prob = scopeInvocations(r, &f)
	}
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	invs, next, err := s.engine.ListInvocations(r.Context(), f)
	if err != nil {
		s.fail(w, r, err, "listing invocations")
		return
	}
	list := InvocationList{Items: make([]Invocation, 0, len(invs)), NextCursor: next}
	for _, inv := range invs {
		list.Items = append(list.Items, invocationFrom(inv))
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) history(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	events, err := s.engine.History(r.Context(), id)
	if err == nil && len(events) == 0 {
		// Every invocation's history opens with InvocationStarted, so an
		// empty one means the id is unknown to a store that does not say so.
		_, err = s.engine.GetInvocation(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	if events == nil {
		events = []core.Event{}
	}
	writeJSON(w, http.StatusOK, History{Items: events})
}

// CancelRequest is the optional body of POST /v1/invocations/{id}/cancel.
type CancelRequest struct {
	// Reason is recorded on the CancelRequested event and in the error the
	// invocation ends with; at most MaxCancelReason characters.
	Reason string `json:"reason,omitempty"`
}

// MaxCancelReason bounds the reason of a cancellation, in characters: it
// is copied into the history and the invocation's error, and a note for
// people, not a document.
const MaxCancelReason = 1000

func (s *server) cancelInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req CancelRequest
	if prob := decodeOptionalBody(r.Body, &req); prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	if n := utf8.RuneCountInString(req.Reason); n > MaxCancelReason {
		s.writeProblem(w, r, badRequest("reason: %d characters, more than the %d allowed", n, MaxCancelReason))
		return
	}
	err := s.engine.CancelInvocation(r.Context(), id, req.Reason)
	if errors.Is(err, store.ErrConflict) {
		s.writeProblem(w, r, conflict("invocation %s has already ended", id))
		return
	}
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	w.Header().Set("Location", invocationPath(id))
	writeJSON(w, http.StatusAccepted, InvocationID{ID: id})
}
