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

// IdempotencyKey is the call's key (see the function of that name). A call
// sent out again by a redrive is a new execution of a call that failed or
// was cut short: its key gains "/redrive-N", so that a receiver that
// remembered the failed execution's outcome runs it afresh.
func (c *Call) IdempotencyKey(invocation string) string {
	return IdempotencyKey(invocation, c.Task, c.Attempt) + c.redriveSuffix()
}

// IDSeed is the call's CallIDSeed, marked the same way after a redrive, so
// that a subflow it starts again, or an event it emits again, is a new one.
func (c *Call) IDSeed(invocation string) string {
	return CallIDSeed(invocation, c.Task, c.Attempt) + c.redriveSuffix()
}

func (c *Call) redriveSuffix() string {
	if c.Redrive == 0 {
		return ""
	}
	return "/redrive-" + strconv.Itoa(c.Redrive)
}
