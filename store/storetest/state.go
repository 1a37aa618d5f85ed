package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/batonflow/baton/store"
)

func testState(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)

	if _, err := s.GetState(ctx, p+"missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetState of a key never written = %v, want ErrNotFound", err)
	}
	if err := s.PutState(ctx, "", []byte("x")); err == nil {
		t.Fatal("PutState with an empty key succeeded")
	}

	binary := []byte{0, 1, 2, 0xff, 0}
	must(t, s.PutState(ctx, p+"a", []byte(`{"v":1}`)), "PutState a")
	must(t, s.PutState(ctx, p+"b", binary), "PutState b")
	must(t, s.PutState(ctx, p+"empty", nil), "PutState empty")
	// Putting again replaces the value.
	must(t, s.PutState(ctx, p+"a", []byte(`{"v":2}`)), "PutState a again")

	for key, want := range map[string][]byte{p + "a": []byte(`{"v":2}`), p + "b": binary, p + "empty": {}} {
		got, err := s.GetState(ctx, key)
		must(t, err, "GetState "+key)
		if !bytes.Equal(got, want) {
			t.Errorf("GetState %s = %q, want %q", key, got, want)
		}
		if got == nil {
			t.Errorf("GetState %s = nil, want a non-nil slice", key)
		}
	}

	// Concurrent writers of one key leave one of their values, whole.
	var wg sync.WaitGroup
	values := [][]byte{bytes.Repeat([]byte("x"), 4096), bytes.Repeat([]byte("y"), 4096), bytes.Repeat([]byte("z"), 4096)}
	for _, v := range values {
		wg.Go(func() {
			if err := s.PutState(ctx, p+"race", v); err != nil {
				t.Errorf("concurrent PutState: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetState(ctx, p+"race")
	must(t, err, "GetState race")
	whole := false
	for _, v := range values {
		whole = whole || bytes.Equal(got, v)
	}
	if !whole {
		t.Fatalf("GetState after concurrent puts = %d bytes starting %q, want one of the values put", len(got), got[:min(len(got), 8)])
	}
}

// testStateReopen checks that state outlives the store that wrote it.
func testStateReopen(t *testing.T, open func(t *testing.T) store.Store) {
	ctx, p := ctxOf(t), prefix(t)
	first := open(t)
	must(t, first.PutState(ctx, p+"stats", []byte("learned")), "PutState")
	must(t, first.Close(), "Close")

	second := openStore(t, open)
	got, err := second.GetState(ctx, p+"stats")
	must(t, err, "GetState after reopen")
	if string(got) != "learned" {
		t.Fatalf("GetState after reopen = %q, want %q", got, "learned")
	}
}
