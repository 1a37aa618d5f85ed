package rowcodec

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// encodeEvent must write exactly what encoding/json writes for the event,
// so that rows written before and after it are alike.
func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 7, 6, 30, 1, 123456789, time.UTC)
	events := []core.Event{
		{Seq: 1, Type: core.InvocationStarted, Time: at, Input: map[string]any{"b": 1.5, "a": []any{"x", nil}}},
		{Seq: 2, Type: core.TaskStarted, Time: at, Task: "/do/0/step0", Ref: "/do/0/step0", Attempt: 1},
		{Seq: 3, Type: core.TaskCompleted, Time: at.In(time.FixedZone("X", 3600)), Task: "/do/0/a<b>&c", Attempt: 2,
			Output: map[string]any{}, Info: map[string]any{"durationMs": 0.25, "cold": true}},
		{Seq: 4, Type: core.TaskFailed, Task: "t\u2028\"quoted\"\\ é \xff", Error: problem.New(problem.TypeInternal, 500, "boom", "detail")},
		{Seq: 5, Type: core.TimerScheduled, Timer: "wait#1", FireAt: at.Add(time.Hour)},
		{Seq: 6, Type: core.InvocationCompleted, Output: []any{}, Info: map[string]any{}},
		{Seq: -7, Type: core.InvocationCompleted, Output: false},
	}
	for _, ev := range events {
		want, wantErr := json.Marshal(&ev)
		got, err := encodeEvent(&ev)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("event %d:\n got %s (%v)\nwant %s (%v)", ev.Seq, got, err, want, wantErr)
		}
	}
	bad := core.Event{Type: core.TaskStarted, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := encodeEvent(&bad); err == nil {
		t.Error("a time past year 9999 encoded")
	}
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add(int64(3), "TaskStarted", "/do/0/x", "/do/0/x", 1, "", int64(1765089000123456789), "out")
	f.Add(int64(0), "", "<&>", "\u2028", -1, "t\x00", int64(0), "\xff")
	f.Fuzz(func(t *testing.T, seq int64, typ, task, ref string, attempt int, timer string, nanos int64, out string) {
		ev := core.Event{Seq: seq, Type: core.EventType(typ), Time: time.Unix(0, nanos).UTC(), Task: task, Ref: ref,
			Attempt: attempt, Timer: timer}
		if out != "" {
			ev.Output = map[string]any{out: out}
		}
		want, wantErr := json.Marshal(&ev)
		got, err := encodeEvent(&ev)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, err, want, wantErr)
		}
	})
}
