package core

import (
	"strconv"
	"strings"
)

// IdempotencyKey is the key of one execution of a call, the same every time
// that execution is attempted again (after a crash, say):
// <invocation>/<task key>/<attempt>, where the task key is the task's JSON
// pointer without its leading slash, so the key has no empty segment:
// "0193c6e4-…/do/2/store/1". Executors send it on (HTTP Idempotency-Key,
// function call info) for the receiver to drop repeated deliveries.
func IdempotencyKey(invocation, task string, attempt int) string {
	return invocation + "/" + strings.TrimPrefix(task, "/") + "/" + strconv.Itoa(attempt)
}

// CallIDSeed is what identifiers Baton derives from one execution of a call
// are computed from (a subflow's invocation id, an emitted event's id). It
// keeps the form the idempotency key had before it lost its empty segment
// ("<invocation>//do/2/store/1"), because those identifiers are stored: a
// call that was in flight when Baton was upgraded must, executed again,
// find the subflow it started rather than start a second one. It is never
// shown to anyone.
func CallIDSeed(invocation, task string, attempt int) string {
	return invocation + "/" + task + "/" + strconv.Itoa(attempt)
}
