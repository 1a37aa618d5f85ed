package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
)

// ProblemContentType is the media type of RFC 7807 problem documents.
const ProblemContentType = "application/problem+json"

func badRequest(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request", format, args...)
}

func notFound(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeNotFound, http.StatusNotFound, "Not Found", format, args...)
}

func conflict(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeConflict, http.StatusConflict, "Conflict", format, args...)
}

// unavailable is the problem of a server that takes no work now; clients
// retry after Retry-After (see writeProblemDocument).
func unavailable(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeInternal, http.StatusServiceUnavailable, "Service Unavailable", format, args...)
}

func internalError(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeInternal, http.StatusInternalServerError, "Internal Server Error", format, args...)
}

// validationProblem turns the parser's findings into one problem that lists
// each of them as `file:line:col: path: msg`, the same lines `baton
// validate` prints.
func validationProblem(list dsl.ErrorList) *problem.Problem {
	p := problem.New(problem.TypeValidation, http.StatusBadRequest, "Invalid Workflow Document", "")
	for _, e := range list {
		p.Errors = append(p.Errors, e.Error())
	}
	switch len(list) {
	case 0:
		p.Detail = "the workflow document is invalid"
	case 1:
		p.Detail = "the workflow document has 1 error"
	default:
		p.Detail = fmt.Sprintf("the workflow document has %d errors", len(list))
	}
	return p
}

// problemFor maps an error from the engine (or from reading the request) to
// the problem the client sees. subject names what the request was about
// ("workflow default/hello") so that a missing resource is reported the
// way the CLI prints it: "workflow default/hello not found".
func problemFor(err error, subject string) *problem.Problem {
	var (
		list     dsl.ErrorList
		single   *dsl.Error
		tooLarge *http.MaxBytesError
		prob     *problem.Problem
	)
	switch {
	case errors.As(err, &list):
		return validationProblem(list)
	case errors.As(err, &single):
		return validationProblem(dsl.ErrorList{single})
	case errors.As(err, &tooLarge):
		return problem.Newf(problem.TypeBadRequest, http.StatusRequestEntityTooLarge, "Request Entity Too Large",
			"the request body exceeds %d bytes", tooLarge.Limit)
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", subject)
	case errors.Is(err, store.ErrConflict):
		return conflict("%s: %v", subject, err)
	case errors.As(err, &prob):
		c := *prob
		// A workflow error may carry a status that is no HTTP error code
		// (the DSL lets documents choose); the response must still be one.
		if c.Status < 400 || c.Status > 599 {
			c.Status = http.StatusInternalServerError
		}
		return &c
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return problem.Newf(problem.TypeInternal, http.StatusServiceUnavailable, "Service Unavailable",
			"%s: the request was cancelled before it finished", subject)
	default:
		return internalError("%s: %v", subject, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		// Bodies are built from JSON data the engine already stored, so this
		// means a value that JSON cannot express slipped in (a NaN, a
		// channel); the client still deserves a problem document.
		writeProblemDocument(w, internalError("encoding the response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeProblemDocument(w http.ResponseWriter, p *problem.Problem) {
	data, err := json.Marshal(p)
	if err != nil {
		data = []byte(`{"type":"` + problem.TypeInternal + `","status":500,"title":"Internal Server Error"}`)
		p = &problem.Problem{Status: http.StatusInternalServerError}
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	if p.Status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		// Unavailable is passing (a drain, a restart): say when to retry.
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(data, '\n'))
}

// writeProblem sends p, naming the request path as the instance when the
// problem does not already point somewhere more precise (a workflow error
// points into its definition).
func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	if p.Instance == "" {
		c := *p
		c.Instance = r.URL.Path
		p = &c
	}
	writeProblemDocument(w, p)
}

// fail reports err to the client and, for server-side failures, to the log.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error, subject string) {
	if rej, ok := qos.AsRejection(err); ok {
		s.writeRejection(w, r, rej)
		return
	}
	p := problemFor(err, subject)
	// 503 is a passing state (a drain, a client that gave up), not a fault.
	if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	s.writeProblem(w, r, p)
}

func problemMethodNotAllowed(r *http.Request, allow string) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusMethodNotAllowed, "Method Not Allowed",
		"%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
}
