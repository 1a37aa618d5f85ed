package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// redriver is an engine that retries and reruns invocations
// (engine.Engine.RedriveInvocation and RerunInvocation).
type redriver interface {
	RedriveInvocation(ctx context.Context, id, reason string) (*store.Invocation, error)
	RerunInvocation(ctx context.Context, id string, input any, withInput bool) (*store.Invocation, error)
}

// RetryRequest is the optional body of POST /v1/invocations/{id}/retry.
type RetryRequest struct {
	// Reason is recorded on the InvocationRedriven event.
	Reason string `json:"reason,omitempty"`
}

// RerunRequest is the optional body of POST /v1/invocations/{id}/rerun.
type RerunRequest struct {
	// Input replaces the original invocation's input when present (null
	// included); absent, the rerun gets the same input.
	Input json.RawMessage `json:"input,omitempty"`
}

// retryInvocation is POST /v1/invocations/{id}/retry: the faulted or
// cancelled invocation goes on, as itself, from the task that ended it.
func (s *server) retryInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rd, ok := s.engine.(redriver)
	if !ok {
		s.writeProblem(w, r, notImplemented("this engine does not retry invocations"))
		return
	}
	wait, prob := parseWait(r.URL.Query().Get("wait"), s.maxWait)
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	var req RetryRequest
	if prob := decodeOptionalBody(r.Body, &req); prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	inv, err := rd.RedriveInvocation(r.Context(), id, req.Reason)
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	s.answerStarted(w, r, inv.ID, wait)
}

// rerunInvocation is POST /v1/invocations/{id}/rerun: a new invocation of
// the same workflow version, with the same input or the one in the body.
func (s *server) rerunInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rd, ok := s.engine.(redriver)
	if !ok {
		s.writeProblem(w, r, notImplemented("this engine does not rerun invocations"))
		return
	}
	wait, prob := parseWait(r.URL.Query().Get("wait"), s.maxWait)
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	var req RerunRequest
	if prob := decodeOptionalBody(r.Body, &req); prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	var input any
	withInput := req.Input != nil
	if withInput {
		if err := json.Unmarshal(req.Input, &input); err != nil {
			s.writeProblem(w, r, badRequest("input: %v", err))
			return
		}
	}
	inv, err := rd.RerunInvocation(r.Context(), id, input, withInput)
	if err != nil {
		s.fail(w, r, err, "invocation "+id)
		return
	}
	s.answerStarted(w, r, inv.ID, wait)
}

// answerStarted answers a request that set an invocation running: 202
// with its id, or 200 with the invocation when it ended within wait.
func (s *server) answerStarted(w http.ResponseWriter, r *http.Request, id string, wait time.Duration) {
	w.Header().Set("Location", invocationPath(id))
	if wait > 0 {
		if ended := s.waitFor(r, id, wait); ended != nil {
			writeJSON(w, http.StatusOK, invocationFrom(ended))
			return
		}
	}
	writeJSON(w, http.StatusAccepted, InvocationID{ID: id})
}

// decodeOptionalBody is decodeBody for a body that may be left out.
func decodeOptionalBody(body io.Reader, v any) *problem.Problem {
	data, err := io.ReadAll(body)
	if err != nil {
		return problemFor(err, "the request body")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return decodeBody(bytes.NewReader(data), v)
}
