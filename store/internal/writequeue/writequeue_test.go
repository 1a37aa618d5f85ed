package writequeue

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batonflow/baton/store"
)

var errTestClosed = errors.New("closed")

func TestSubmitWaitsForOutcome(t *testing.T) {
	q := New[chan error](1, errTestClosed)
	want := errors.New("write failed")
	go func() {
		for done := range q.Requests() {
			done <- want
		}
	}()
	done := DoneChan(true)
	if err := q.Submit(context.Background(), done, done); !errors.Is(err, want) {
		t.Fatalf("Submit = %v, want %v", err, want)
	}
	if !q.Close() || q.Close() {
		t.Fatal("Close should report true once, then false")
	}
	if err := q.Submit(context.Background(), nil, nil); !errors.Is(err, errTestClosed) {
		t.Fatalf("Submit after Close = %v", err)
	}
}

func TestSubmitUnwaitedAndCancelled(t *testing.T) {
	q := New[int](1, errTestClosed)
	if DoneChan(false) != nil {
		t.Fatal("unwaited request got a done channel")
	}
	if err := q.Submit(context.Background(), 1, nil); err != nil {
		t.Fatalf("unwaited Submit = %v", err)
	}
	// The queue is full and nobody drains it: a cancelled caller gives up.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Submit(ctx, 2, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit on a full queue with a cancelled context = %v", err)
	}
}

func TestUnwaited(t *testing.T) {
	var u Unwaited
	if err := u.Take(); err != nil {
		t.Fatalf("Take with nothing collected = %v", err)
	}
	first := errors.New("first")
	for i := 0; i < maxUnwaited+3; i++ {
		u.Add(first)
	}
	err := u.Take()
	if !errors.Is(err, store.ErrUnwaitedWriteFailed) || !errors.Is(err, first) || !strings.Contains(err.Error(), "3 more unwaited writes failed") {
		t.Fatalf("Take = %v", err)
	}
	if err := u.Take(); err != nil {
		t.Fatalf("second Take = %v, want nothing left", err)
	}
}
