package api

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/batonflow/baton/telemetry"
)

// responseRecorder remembers what a handler sent, for the access log and so
// that a panic after the headers went out is not answered a second time.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *responseRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *responseRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessLog logs every request at debug level.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &responseRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		s.logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("query", r.URL.RawQuery),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// recoverPanics turns a handler's panic into a 500 problem, so that one bad
// request neither kills the connection silently nor the server.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &responseRecorder{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Any("panic", v),
				slog.String("stack", string(debug.Stack())),
			)
			if rec.status != 0 {
				// The response is under way; all that is left is to cut it
				// short so the client sees it is incomplete.
				panic(http.ErrAbortHandler)
			}
			s.writeProblem(w, r, internalError("the server failed while handling the request"))
		}()
		next.ServeHTTP(rec, r)
	})
}

// limitBodies caps request bodies; a handler reading past the cap gets an
// *http.MaxBytesError, which problemFor reports as 413.
func (s *server) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.bodyLimit(r)
		if r.ContentLength > limit {
			s.writeProblem(w, r, problemFor(&http.MaxBytesError{Limit: limit}, "request"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// joinTrace puts the caller's W3C trace context (its traceparent header)
// into the request's context: an invocation the request starts joins the
// caller's trace when the engine traces.
func joinTrace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") != "" {
			r = r.WithContext(telemetry.Extract(r.Context(), r.Header))
		}
		next.ServeHTTP(w, r)
	})
}

// problemsForUnrouted answers requests that match no route with problem
// documents (404, or 405 with an Allow header) instead of the mux's plain
// text; redirects the mux issues for unclean paths pass through.
func (s *server) problemsForUnrouted(next http.Handler, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			next.ServeHTTP(w, r)
			return
		}
		if s.console != nil && consolePath(r.URL.Path) {
			s.console.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&unroutedWriter{ResponseWriter: w, server: s, request: r}, r)
	})
}

// unroutedWriter replaces the mux's plain-text 404 and 405 responses with
// problem documents, keeping the headers (Allow) the mux set.
type unroutedWriter struct {
	http.ResponseWriter
	server      *server
	request     *http.Request
	intercepted bool
}

func (u *unroutedWriter) WriteHeader(status int) {
	switch status {
	case http.StatusNotFound:
		u.intercepted = true
		u.server.writeProblem(u.ResponseWriter, u.request,
			notFound("no route for %s %s", u.request.Method, u.request.URL.Path))
	case http.StatusMethodNotAllowed:
		u.intercepted = true
		u.server.writeProblem(u.ResponseWriter, u.request, problemMethodNotAllowed(u.request,
			u.ResponseWriter.Header().Get("Allow")))
	default:
		u.ResponseWriter.WriteHeader(status)
	}
}

func (u *unroutedWriter) Write(p []byte) (int, error) {
	if u.intercepted {
		return len(p), nil
	}
	return u.ResponseWriter.Write(p)
}

// consolePath reports whether a path the API does not serve belongs to the
// console: everything but the API's own prefixes, which keep answering
// problem documents.
func consolePath(path string) bool {
	switch {
	case strings.HasPrefix(path, "/v1/"), path == "/v1", path == "/healthz", path == "/readyz", path == "/metrics":
		return false
	}
	return true
}
