package rowcodec

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		position int64
		id       string
	}{{0, "a"}, {1732578276123456789, "inv:with:colons"}, {-5, ""}} {
		pos, id, err := DecodeCursor(EncodeCursor(tc.position, tc.id))
		if err != nil || pos != tc.position || id != tc.id {
			t.Errorf("round trip of (%d, %q) = (%d, %q, %v)", tc.position, tc.id, pos, id, err)
		}
	}
}

func TestDecodeCursorRejectsMangled(t *testing.T) {
	for _, c := range []string{"!!!", EncodeCursor(1, "x")[:2], "MTIz" /* "123", no colon */, "YWJjOmlk" /* "abc:id" */} {
		_, _, err := DecodeCursor(c)
		var p *problem.Problem
		if !errors.As(err, &p) || p.Status != http.StatusBadRequest {
			t.Errorf("DecodeCursor(%q) = %v, want a 400 problem", c, err)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{-1, 100}, {0, 100}, {1, 1}, {1000, 1000}, {1001, 1000}} {
		if got := PageLimit(tc.in); got != tc.want {
			t.Errorf("PageLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestNanosKeepsZeroTime(t *testing.T) {
	if n := Nanos(time.Time{}); n != 0 {
		t.Fatalf("Nanos(zero) = %d", n)
	}
	if !FromNanos(0).IsZero() {
		t.Fatal("FromNanos(0) is not the zero time")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	if got := FromNanos(Nanos(at)); !got.Equal(at) || got.Location() != time.UTC {
		t.Fatalf("round trip of %v = %v", at, got)
	}
}

func TestJSONNullStaysNull(t *testing.T) {
	if b, err := EncodeJSON(nil); b != nil || err != nil {
		t.Fatalf("EncodeJSON(nil) = %q, %v", b, err)
	}
	if b, err := EncodeProblem(nil); b != nil || err != nil {
		t.Fatalf("EncodeProblem(nil) = %q, %v", b, err)
	}
	inv := &store.Invocation{ID: "i"}
	if err := DecodeInvocationValues(inv, nil, []byte(`{"a":1}`), []byte(`{"status":500}`)); err != nil {
		t.Fatal(err)
	}
	if inv.Input != nil || inv.Output.(map[string]any)["a"] != 1.0 || inv.Error.Status != 500 {
		t.Fatalf("decoded %+v", inv)
	}
	if err := DecodeInvocationValues(inv, []byte(`{`), nil, nil); err == nil {
		t.Fatal("broken input JSON decoded without error")
	}
}

func TestEncodeEvents(t *testing.T) {
	end := time.Unix(100, 0)
	enc, term, err := EncodeEvents("i", []core.Event{
		{Type: core.InvocationStarted, Seq: 1},
		{Type: core.InvocationFaulted, Time: end, Error: &problem.Problem{Status: 500}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != 2 || enc[0].Seq != 1 || enc[1].Seq != 0 {
		t.Fatalf("encoded %+v", enc)
	}
	ev, err := DecodeEvent(7, enc[1].Data)
	if err != nil || ev.Seq != 7 || ev.Type != core.InvocationFaulted {
		t.Fatalf("decoded %+v, %v", ev, err)
	}
	if term == nil || term.Status != core.StatusFaulted || !term.EndedAt.Equal(end) || term.Output != nil || term.Error == nil {
		t.Fatalf("terminal %+v", term)
	}

	_, _, err = EncodeEvents("i", []core.Event{{Type: core.InvocationCompleted}, {Type: core.TaskCompleted}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("event after terminal: %v, want ErrConflict", err)
	}
}

func TestEncodeCreation(t *testing.T) {
	if _, _, _, err := EncodeCreation(&store.Invocation{}, nil); err == nil {
		t.Fatal("creation without id accepted")
	}
	row, _, term, err := EncodeCreation(&store.Invocation{ID: "i"}, nil)
	if err != nil || row.Status != core.StatusRunning || row.StartedAt.IsZero() || term != nil {
		t.Fatalf("defaults: %+v, %+v, %v", row, term, err)
	}
	ended := time.Unix(5, 0)
	_, _, term, err = EncodeCreation(&store.Invocation{ID: "i", Status: core.StatusCompleted, Output: "done", EndedAt: ended}, nil)
	if err != nil || term == nil || term.Status != core.StatusCompleted || string(term.Output) != `"done"` || !term.EndedAt.Equal(ended) {
		t.Fatalf("finished creation: %+v, %v", term, err)
	}
}

func TestCheckSeqs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		last    int64
		seqs    []int64
		wantErr bool
	}{
		{"unnumbered", 3, []int64{0, 0}, false},
		{"continues", 3, []int64{4, 5}, false},
		{"mixed", 3, []int64{0, 5}, false},
		{"gap", 3, []int64{5}, true},
		{"repeat", 3, []int64{3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events []EncodedEvent
			for _, s := range tc.seqs {
				events = append(events, EncodedEvent{Seq: s})
			}
			err := CheckSeqs("i", tc.last, events)
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, store.ErrConflict)) {
				t.Fatalf("CheckSeqs = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

type fakeRows struct {
	vals []int
	i    int
	err  error
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.vals) }
func (r *fakeRows) Err() error { return r.err }
func (r *fakeRows) Scan(dest ...any) error {
	*dest[0].(*int) = r.vals[r.i-1]
	return nil
}

func TestCollect(t *testing.T) {
	scan := func(sc Scanner) (int, error) {
		var v int
		err := sc.Scan(&v)
		return v, err
	}
	got, err := Collect(&fakeRows{vals: []int{1, 2, 3}}, scan)
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Fatalf("Collect = %v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := Collect(&fakeRows{vals: []int{1}, err: boom}, scan); !errors.Is(err, boom) {
		t.Fatalf("iteration error lost: %v", err)
	}
}
