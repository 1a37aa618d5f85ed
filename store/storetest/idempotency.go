package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

func testBlobs(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	blobs, ok := s.(store.Blobs)
	if !ok {
		t.Fatalf("%T does not implement store.Blobs", s)
	}
	a, b := "sha256:"+p+"a", "sha256:"+p+"b"
	module := []byte("\x00asm\x01\x00\x00\x00\xff")
	if _, err := blobs.GetBlob(ctx, a); err == nil {
		t.Fatal("GetBlob of a blob never stored succeeded")
	} else {
		wantErr(t, err, store.ErrNotFound, "GetBlob missing")
	}
	must(t, blobs.PutBlob(ctx, a, module), "PutBlob a")
	must(t, blobs.PutBlob(ctx, a, module), "PutBlob a again")
	must(t, blobs.PutBlob(ctx, b, []byte{}), "PutBlob b")
	got, err := blobs.GetBlob(ctx, a)
	must(t, err, "GetBlob a")
	if !bytes.Equal(got, module) {
		t.Fatalf("GetBlob a = %q, want %q", got, module)
	}
	if got, err := blobs.GetBlob(ctx, b); err != nil || len(got) != 0 {
		t.Fatalf("GetBlob b = %q, %v; want empty", got, err)
	}
	listed := func() []string {
		all, err := blobs.ListBlobs(ctx)
		must(t, err, "ListBlobs")
		var mine []string
		for _, d := range all {
			if len(d) > 7 && d[7:7+len(p)] == p {
				mine = append(mine, d)
			}
		}
		return mine
	}
	if got := listed(); fmt.Sprint(got) != fmt.Sprint([]string{a, b}) {
		t.Fatalf("ListBlobs = %v, want [%s %s]", got, a, b)
	}
	must(t, blobs.DeleteBlob(ctx, a), "DeleteBlob a")
	wantErr(t, blobs.DeleteBlob(ctx, a), store.ErrNotFound, "DeleteBlob a again")
	if got := listed(); fmt.Sprint(got) != fmt.Sprint([]string{b}) {
		t.Fatalf("ListBlobs after delete = %v, want [%s]", got, b)
	}
}

func idempotentStore(t *testing.T, s store.Store) store.IdempotentStarts {
	t.Helper()
	once, ok := s.(store.IdempotentStarts)
	if !ok {
		t.Fatalf("%T does not implement store.IdempotentStarts", s)
	}
	return once
}

func testIdempotentStart(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	once := idempotentStore(t, s)

	first := newInvocation(p+"first", "ns", p+"wf", at(0))
	rec := store.IdempotencyRecord{Key: p + "key", RequestHash: "hash-1", InvocationID: first.ID}
	held, err := once.CreateInvocationOnce(ctx, rec, first, []core.Event{startEvent(first.Input, at(0))})
	must(t, err, "first CreateInvocationOnce")
	if held != nil {
		t.Fatalf("first claim of a key returned a holder %+v", held)
	}
	got, err := s.GetInvocation(ctx, first.ID)
	must(t, err, "GetInvocation first")
	assertInvocation(t, got, first)
	assertHistory(t, s, first.ID, withSeqs([]core.Event{startEvent(first.Input, at(0))}, 1))

	// The same key again, whatever the request: nothing is written and the
	// holder is reported with its hash, for the caller to compare.
	for _, hash := range []string{"hash-1", "hash-2"} {
		second := newInvocation(p+"second-"+hash, "ns", p+"wf", at(1))
		held, err := once.CreateInvocationOnce(ctx, store.IdempotencyRecord{Key: rec.Key, RequestHash: hash, InvocationID: second.ID},
			second, []core.Event{startEvent(nil, at(1))})
		must(t, err, "second CreateInvocationOnce")
		if held == nil || held.InvocationID != first.ID || held.RequestHash != "hash-1" || held.Key != rec.Key {
			t.Fatalf("second claim with %s: holder %+v, want %s with hash-1", hash, held, first.ID)
		}
		if _, err := s.GetInvocation(ctx, second.ID); err == nil {
			t.Fatalf("the second claim with %s created its invocation", hash)
		} else {
			wantErr(t, err, store.ErrNotFound, "GetInvocation second")
		}
	}

	// Another key starts another invocation; its history takes appends.
	other := newInvocation(p+"other", "ns", p+"wf", at(2))
	held, err = once.CreateInvocationOnce(ctx, store.IdempotencyRecord{Key: p + "other", RequestHash: "h", InvocationID: other.ID},
		other, []core.Event{startEvent(nil, at(2))})
	if err != nil || held != nil {
		t.Fatalf("claim of another key = %+v, %v", held, err)
	}
	must(t, s.Append(ctx, other.ID, []core.Event{{Type: core.TaskStarted, Time: at(3), Task: "/do/0"}}, true), "Append")
	assertHistory(t, s, other.ID, withSeqs([]core.Event{startEvent(nil, at(2)), {Type: core.TaskStarted, Time: at(3), Task: "/do/0"}}, 1))

	// A key whose invocation id is taken already writes nothing: the key
	// stays free.
	dup := newInvocation(first.ID, "ns", p+"wf", at(4))
	if _, err := once.CreateInvocationOnce(ctx, store.IdempotencyRecord{Key: p + "dup", RequestHash: "h", InvocationID: dup.ID},
		dup, []core.Event{startEvent(nil, at(4))}); err == nil {
		t.Fatal("an idempotent start reusing an invocation id succeeded")
	} else {
		wantErr(t, err, store.ErrConflict, "reused id")
	}
	fresh := newInvocation(p+"fresh", "ns", p+"wf", at(5))
	held, err = once.CreateInvocationOnce(ctx, store.IdempotencyRecord{Key: p + "dup", RequestHash: "h", InvocationID: fresh.ID},
		fresh, []core.Event{startEvent(nil, at(5))})
	if err != nil || held != nil {
		t.Fatalf("the key of a failed start is not free: %+v, %v", held, err)
	}
}

// testIdempotentStartRace claims one key from many goroutines, and from
// two stores when open shares data: exactly one invocation is created and
// every caller learns its id.
func testIdempotentStartRace(t *testing.T, open func(t *testing.T) store.Store) {
	s1, s2, ctx, p := openStore(t, open), openStore(t, open), ctxOf(t), prefix(t)
	once1, once2 := idempotentStore(t, s1), idempotentStore(t, s2)
	const callers = 16
	var wg sync.WaitGroup
	ids := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := once1
			if i%2 == 1 {
				once = once2
			}
			inv := newInvocation(fmt.Sprintf("%s%d", p, i), "ns", p+"wf", at(0))
			held, err := once.CreateInvocationOnce(ctx,
				store.IdempotencyRecord{Key: p + "key", RequestHash: "h", InvocationID: inv.ID}, inv, []core.Event{startEvent(nil, at(0))})
			switch {
			case err != nil:
				errs[i] = err
			case held == nil:
				ids[i] = inv.ID
			default:
				ids[i] = held.InvocationID
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	winner := ids[0]
	for i, id := range ids {
		if id != winner {
			t.Fatalf("caller %d got %s, caller 0 got %s", i, id, winner)
		}
	}
	created := 0
	for i := range callers {
		if _, err := s1.GetInvocation(ctx, fmt.Sprintf("%s%d", p, i)); err == nil {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d invocations created under one key, want 1", created)
	}
}
