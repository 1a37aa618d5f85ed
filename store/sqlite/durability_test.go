package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// heldSync is a WAL sync that tells when it is called and returns only
// when released, with the error given.
type heldSync struct {
	entered chan struct{}
	release chan error
	// quit lets every sync through, so that a failed test can close its
	// store.
	quit chan struct{}
}

// answerSyncsUntil lets the held syncs through until done delivers, and
// returns what it delivered. A batch that fails is not synced, so waiting
// for a sync alone could wait forever.
func answerSyncsUntil[T any](h *heldSync, done <-chan T) T {
	for {
		select {
		case <-h.entered:
			h.release <- nil
		case v := <-done:
			return v
		}
	}
}

func newHeldSync() *heldSync {
	return &heldSync{entered: make(chan struct{}, 16), release: make(chan error, 16), quit: make(chan struct{})}
}

func (h *heldSync) sync(wal *os.File) error {
	h.entered <- struct{}{}
	select {
	case err := <-h.release:
		if err != nil {
			return err
		}
	case <-h.quit:
	}
	return wal.Sync()
}

// openHeld opens a store whose WAL syncs are held; the test's cleanup
// lets them through before it closes the store.
func openHeld(t *testing.T, path string) (*Store, *heldSync) {
	t.Helper()
	held := newHeldSync()
	s, err := Open(context.Background(), path, withWALSync(held.sync))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	t.Cleanup(func() { close(held.quit) })
	return s, held
}

func testInvocation(id string) *store.Invocation {
	return &store.Invocation{ID: id, Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
}

func started() []core.Event {
	return []core.Event{{Seq: 1, Type: core.InvocationStarted, Time: time.Now()}}
}

// notYet fails the test if ch delivers within a moment: what it carries
// must wait for the held sync.
func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s before the WAL was synced (%v)", what, v)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestAnswersWaitForTheWALSync(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "baton.db")
	s, held := openHeld(t, path)

	created := make(chan error, 1)
	go func() { created <- s.CreateInvocation(ctx, testInvocation("inv-1"), started(), true) }()
	<-held.entered // committed, not yet synced

	// The commit is in the WAL and SQLite shows it to any connection...
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM history_log h JOIN invocations i ON i.ikey = h.ikey WHERE i.id = 'inv-1'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("raw read: %d rows (%v), want the committed one", n, err)
	}
	// ...but neither its writer nor the store's readers hear of it before
	// the fsync.
	notYet(t, created, "the create was acknowledged")
	read := make(chan error, 1)
	go func() {
		_, err := s.History(ctx, "inv-1")
		read <- err
	}()
	notYet(t, read, "the history was read")

	held.release <- nil
	if err := <-created; err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := <-read; err != nil {
		t.Fatalf("history: %v", err)
	}

	// A reader that gives up waiting gets its context's error, not the
	// data.
	appended := make(chan error, 1)
	go func() {
		appended <- s.Append(ctx, "inv-1", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0"}}, true)
	}()
	<-held.entered
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.History(short, "inv-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("history with a short deadline: %v, want the deadline", err)
	}
	held.release <- nil
	if err := <-appended; err != nil {
		t.Fatalf("append: %v", err)
	}
	events, err := s.History(ctx, "inv-1")
	if err != nil || len(events) != 2 {
		t.Fatalf("history: %d events (%v), want 2", len(events), err)
	}
}

// While one batch is being synced, the next is written but not committed:
// there is one fsync per commit, and the writes that arrive meanwhile share
// the next one.
func TestWritesDuringASyncShareTheNextCommit(t *testing.T) {
	ctx := context.Background()
	s, held := openHeld(t, filepath.Join(t.TempDir(), "baton.db"))

	first := make(chan error, 1)
	go func() { first <- s.CreateInvocation(ctx, testInvocation("first"), started(), true) }()
	<-held.entered
	before := s.Stats()

	const n = 5
	rest := make(chan error, n)
	for i := range n {
		go func() {
			rest <- s.CreateInvocation(ctx, testInvocation("next-"+string(rune('a'+i))), started(), true)
		}()
	}
	// All five are queued or written into the open transaction; none is
	// committed while the first batch's fsync is held.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.w.queue.Requests()) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if got := s.Stats(); got.Commits != before.Commits {
		t.Fatalf("commits went from %d to %d while a sync was under way", before.Commits, got.Commits)
	}
	held.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-held.entered
	held.release <- nil
	for range n {
		if err := <-rest; err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Stats(); got.Commits != before.Commits+1 || got.Writes != before.Writes+n {
		t.Fatalf("after the sync: %+v, want one more commit carrying %d writes (before: %+v)", got, n, before)
	}
}

func TestFailedSyncStopsTheStore(t *testing.T) {
	ctx := context.Background()
	s, held := openHeld(t, filepath.Join(t.TempDir(), "baton.db"))
	if err := s.CreateInvocation(ctx, testInvocation("inv-1"), started(), false); err != nil {
		t.Fatal(err)
	}
	<-held.entered
	held.release <- nil

	appended := make(chan error, 1)
	go func() {
		appended <- s.Append(ctx, "inv-1", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0"}}, true)
	}()
	<-held.entered
	diskErr := errors.New("EIO")
	held.release <- diskErr
	if err := <-appended; !errors.Is(err, errSyncFailed) || !errors.Is(err, diskErr) {
		t.Fatalf("append whose sync failed: %v, want the sync failure", err)
	}
	// The failed append's rows are committed in SQLite but may not be on
	// disk: no read hands them out, and nothing more is written.
	if _, err := s.History(ctx, "inv-1"); !errors.Is(err, errSyncFailed) {
		t.Fatalf("history after a failed sync: %v, want the sync failure", err)
	}
	err := s.Append(ctx, "inv-1", []core.Event{{Type: core.TaskCompleted, Time: time.Now(), Task: "/do/0"}}, true)
	if !errors.Is(err, errSyncFailed) {
		t.Fatalf("append after a failed sync: %v, want the sync failure", err)
	}
	select {
	case <-held.entered:
		t.Fatal("the store synced again after a failed sync")
	default:
	}
}

func TestCloseSyncsUnwaitedWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "baton.db")
	synced := make(chan struct{}, 16)
	s, err := Open(ctx, path, withWALSync(func(wal *os.File) error {
		synced <- struct{}{}
		return wal.Sync()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvocation(ctx, testInvocation("inv-1"), started(), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	default:
		t.Fatal("Close returned without syncing the unwaited write")
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if events, err := s.History(ctx, "inv-1"); err != nil || len(events) != 1 {
		t.Fatalf("history after reopening: %d events (%v), want 1", len(events), err)
	}
}

// Many appends and an op share one transaction (written while the previous
// batch's fsync is held): the op finds every row written before it, and
// every history comes out whole and in order.
func TestQueuedHistoryRowsAreWrittenInOrder(t *testing.T) {
	ctx := context.Background()
	s, held := openHeld(t, filepath.Join(t.TempDir(), "baton.db"))
	const invs = 23
	for i := range invs {
		created := make(chan error, 1)
		go func() { created <- s.CreateInvocation(ctx, testInvocation(fmt.Sprintf("inv-%d", i)), started(), true) }()
		<-held.entered
		held.release <- nil
		if err := <-created; err != nil {
			t.Fatal(err)
		}
	}

	// Hold a sync so that everything below shares one transaction: 1 + i%3
	// rows for each invocation, and an op after them that counts what is
	// in the table.
	first := make(chan error, 1)
	go func() {
		first <- s.Append(ctx, "inv-0", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0"}}, true)
	}()
	<-held.entered
	// Unwaited appends are queued when Append returns, so the op below
	// comes after all of them in the same transaction.
	for i := range invs {
		var evs []core.Event
		for k := range 1 + i%3 {
			evs = append(evs, core.Event{Type: core.TaskCompleted, Time: time.Now(), Task: fmt.Sprintf("/do/%d", k)})
		}
		if err := s.Append(ctx, fmt.Sprintf("inv-%d", i), evs, false); err != nil {
			t.Fatal(err)
		}
	}
	counted := make(chan int, 1)
	opDone := make(chan error, 1)
	go func() {
		opDone <- s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
			var n int
			err := conn.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM history_log`).Scan(&n)
			counted <- n
			return err
		})
	}()
	held.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := answerSyncsUntil(held, opDone); err != nil {
		t.Fatal(err)
	}
	// The starts, inv-0's first append, then 1 + i%3 events each.
	want := invs + 1
	for i := range invs {
		want += 1 + i%3
	}
	if n := <-counted; n != want {
		t.Errorf("the op counted %d history events, want %d", n, want)
	}
	for i := range invs {
		events, err := s.History(ctx, fmt.Sprintf("inv-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := 2 + i%3
		if i == 0 {
			want++
		}
		if len(events) != want {
			t.Fatalf("inv-%d: %d events, want %d", i, len(events), want)
		}
		for k, ev := range events {
			if ev.Seq != int64(k+1) {
				t.Fatalf("inv-%d: event %d has seq %d", i, k, ev.Seq)
			}
		}
	}
}

// An invocation that ends and is redriven within one transaction is looked
// up again after its end (the writer forgets ended invocations); the
// lookup must find the rows the batch wrote for it.
func TestRedriveInTheBatchOfTheEnd(t *testing.T) {
	ctx := context.Background()
	s, held := openHeld(t, filepath.Join(t.TempDir(), "baton.db"))
	created := make(chan error, 1)
	go func() { created <- s.CreateInvocation(ctx, testInvocation("inv"), started(), true) }()
	<-held.entered // the rest shares the next transaction
	for _, ev := range []core.Event{
		{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0"},
		{Type: core.InvocationFaulted, Time: time.Now(), Error: problem.New("https://example.com/boom", 500, "Boom", "")},
		{Type: core.InvocationRedriven, Time: time.Now()},
	} {
		if err := s.Append(ctx, "inv", []core.Event{ev}, false); err != nil {
			t.Fatal(err)
		}
	}
	last := make(chan error, 1)
	go func() {
		last <- s.Append(ctx, "inv", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0", Attempt: 2}}, true)
	}()
	held.release <- nil
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err := answerSyncsUntil(held, last); err != nil {
		t.Fatal(err)
	}
	events, err := s.History(ctx, "inv")
	if err != nil {
		t.Fatal(err)
	}
	var types []core.EventType
	for i, ev := range events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		types = append(types, ev.Type)
	}
	want := []core.EventType{core.InvocationStarted, core.TaskStarted, core.InvocationFaulted, core.InvocationRedriven, core.TaskStarted}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	inv, err := s.GetInvocation(ctx, "inv")
	if err != nil || inv.Status != core.StatusRunning {
		t.Fatalf("invocation after the redrive: %+v (%v), want it running", inv, err)
	}
}

// An unwaited append and the next append to the same invocation in the
// same transaction take one history_log row; one left alone is written
// at the commit, and a later append that fails does not take it down.
func TestUnwaitedAppendSharesTheNextAppendsRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, held := openHeld(t, filepath.Join(t.TempDir(), "baton.db"))
	for _, id := range []string{"a", "b"} {
		created := make(chan error, 1)
		go func() { created <- s.CreateInvocation(ctx, testInvocation(id), started(), true) }()
		<-held.entered
		held.release <- nil
		if err := <-created; err != nil {
			t.Fatal(err)
		}
	}
	task := func(typ core.EventType, n int) []core.Event {
		return []core.Event{{Type: typ, Time: time.Now(), Task: fmt.Sprintf("/do/%d", n)}}
	}
	first := make(chan error, 1)
	go func() { first <- s.Append(ctx, "a", task(core.TaskStarted, 0), true) }()
	<-held.entered // what follows shares the next transaction

	if err := s.Append(ctx, "a", task(core.TaskStarted, 1), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "b", task(core.TaskStarted, 0), false); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 2)
	go func() { waited <- s.Append(ctx, "a", task(core.TaskCompleted, 1), true) }()
	go func() {
		conflict := task(core.TaskCompleted, 0)
		conflict[0].Seq = 7
		waited <- s.Append(ctx, "b", conflict, true)
	}()
	held.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var errs []error
	for range 2 {
		errs = append(errs, answerSyncsUntil(held, waited))
	}
	if errs[0] != nil && errs[1] != nil || errs[0] == nil && errs[1] == nil {
		t.Fatalf("waited appends: %v; want a's to succeed and b's to fail", errs)
	}
	if err := errors.Join(errs...); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("b's append with seq 7: %v, want a conflict", err)
	}

	rows := func(id string) string {
		t.Helper()
		q, err := s.readDB.QueryContext(ctx, `SELECT h.seq, h.n FROM history_log h JOIN invocations i ON i.ikey = h.ikey WHERE i.id = ? ORDER BY h.seq`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		var out []string
		for q.Next() {
			var seq, n int64
			if err := q.Scan(&seq, &n); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d+%d", seq, n))
		}
		if err := q.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, " ")
	}
	// a: the start, the waited dispatch, the unwaited dispatch sharing the
	// result's row. b: the start, its dispatch alone.
	if got, want := rows("a"), "1+1 2+1 3+2"; got != want {
		t.Errorf("a's rows (seq+n): %s, want %s", got, want)
	}
	if got, want := rows("b"), "1+1 2+1"; got != want {
		t.Errorf("b's rows (seq+n): %s, want %s", got, want)
	}
	for id, want := range map[string]string{
		"a": "InvocationStarted TaskStarted TaskStarted TaskCompleted",
		"b": "InvocationStarted TaskStarted",
	} {
		events, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for i, ev := range events {
			if ev.Seq != int64(i+1) {
				t.Fatalf("%s: event %d has seq %d", id, i, ev.Seq)
			}
			types = append(types, string(ev.Type))
		}
		if got := strings.Join(types, " "); got != want {
			t.Errorf("%s's history: %s, want %s", id, got, want)
		}
	}
}
