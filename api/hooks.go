package api

import (
	"encoding/json"
	"net/http"
	"reflect"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// repeatedHook answers a hook request that repeats an earlier one's
// Idempotency-Key, following the IETF Idempotency-Key header draft
// (draft-ietf-httpapi-idempotency-key-header): the same request again gets
// the first answer again (202, the same Location and body) and an
// Idempotent-Replayed header saying so; the key reused with a different
// body is an error, 422, that still names the invocation the key started.
func (s *server) repeatedHook(w http.ResponseWriter, r *http.Request, inv *store.Invocation, input any) {
	w.Header().Set("Location", invocationPath(inv.ID))
	if !sameJSON(inv.Input, input) {
		s.writeProblem(w, r, problem.Newf(problem.TypeConflict, http.StatusUnprocessableEntity, "Idempotency-Key reused",
			"this Idempotency-Key started invocation %s with a different body; use a new key for a new request", inv.ID))
		return
	}
	w.Header().Set("Idempotent-Replayed", "true")
	writeJSON(w, http.StatusAccepted, InvocationID{ID: inv.ID})
}

// sameJSON tells whether two JSON values are equal, whatever Go types
// they were decoded into.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	var va, vb any
	if json.Unmarshal(ja, &va) != nil || json.Unmarshal(jb, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
