package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/wasm"
)

func refs(specs []*function.Spec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = function.Qualify(s.Namespace, s.Name) + "@" + s.Version
	}
	return out
}

// A server preloads each wasm function's newest version, the functions
// called most recently first (as the last server saw them), then the
// most recently deployed.
func TestPreloadOrderFollowsLastUse(t *testing.T) {
	st := openTestStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := func(ns, name, version string, kind function.Kind, deployed int) *function.Spec {
		return &function.Spec{Namespace: ns, Name: name, Version: version, Runtime: kind, CreatedAt: t0.Add(time.Duration(deployed) * time.Hour)}
	}
	specs := []*function.Spec{
		spec("", "a", "1", function.KindWasm, 0),
		spec("", "a", "2", function.KindWasm, 3),
		spec("", "b", "1", function.KindWasm, 1),
		spec("", "c", "1", function.KindProcess, 5),
		spec("", "d", "1", function.KindWasm, 4),
		spec("team", "b", "1", function.KindWasm, 2),
	}

	use := newFunctionUse(st)
	if got, want := refs(use.preloadOrder(specs)), []string{"d@1", "a@2", "team/b@1", "b@1"}; !slices.Equal(got, want) {
		t.Fatalf("never called: order %v, want the newest deployments first %v", got, want)
	}
	use.Observe(function.Event{Kind: function.EventBusy, Function: "b", Time: t0.Add(10 * time.Hour)})
	use.Observe(function.Event{Kind: function.EventBusy, Function: "team/b", Time: t0.Add(9 * time.Hour)})
	use.Observe(function.Event{Kind: function.EventIdle, Function: "d", Time: t0.Add(11 * time.Hour)}) // not a call
	want := []string{"b@1", "team/b@1", "d@1", "a@2"}
	if got := refs(use.preloadOrder(specs)); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}

	// Saved, it orders the next server's preload; functions no longer
	// deployed are dropped from the record.
	use.Observe(function.Event{Kind: function.EventBusy, Function: "deleted", Time: t0.Add(12 * time.Hour)})
	if err := use.save(ctx, map[string]bool{"a": true, "b": true, "team/b": true, "d": true}); err != nil {
		t.Fatal(err)
	}
	next := newFunctionUse(st)
	if err := next.load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := refs(next.preloadOrder(specs)); !slices.Equal(got, want) {
		t.Fatalf("after a restart: order %v, want %v", got, want)
	}
	raw, err := st.GetState(ctx, functionUseKey)
	if err != nil {
		t.Fatal(err)
	}
	var saved map[string]time.Time
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if _, ok := saved["deleted"]; ok || len(saved) != 2 {
		t.Fatalf("saved %v, want b and team/b only", saved)
	}

	// Another server sharing the store saved a later call of a: saving
	// merges, keeping the latest of each.
	other := newFunctionUse(st)
	other.Observe(function.Event{Kind: function.EventBusy, Function: "a", Time: t0.Add(20 * time.Hour)})
	if err := other.save(ctx, nil); err != nil {
		t.Fatal(err)
	}
	use.Observe(function.Event{Kind: function.EventBusy, Function: "d", Time: t0.Add(13 * time.Hour)})
	if err := use.save(ctx, nil); err != nil {
		t.Fatal(err)
	}
	last := newFunctionUse(st)
	if err := last.load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := refs(last.preloadOrder(specs)), []string{"a@2", "d@1", "b@1", "team/b@1"}; !slices.Equal(got, want) {
		t.Fatalf("after two servers saved: order %v, want %v", got, want)
	}
}

func TestPreloadFlags(t *testing.T) {
	for _, tc := range []struct {
		cfg  preloadConfig
		want wasm.PreloadLimits
	}{
		{preloadConfig{}, wasm.PreloadLimits{}},
		{preloadConfig{set: true, modules: 8, mib: 64}, wasm.PreloadLimits{Modules: 8, Bytes: 64 << 20}},
		{preloadConfig{set: true, modules: 0, mib: 64}, wasm.PreloadLimits{Modules: -1, Bytes: -1}},
		{preloadConfig{set: true, modules: 8, mib: 0}, wasm.PreloadLimits{Modules: -1, Bytes: -1}},
	} {
		if got := tc.cfg.limits(); got != tc.want {
			t.Errorf("%+v: limits %+v, want %+v", tc.cfg, got, tc.want)
		}
	}
}

// A server's function layer preloads a deployed wasm version in the
// background, a new version in the old one's place; deleting a version
// lets its module go; the calls it served are saved for the next boot.
func TestServerPreloadsDeployedModules(t *testing.T) {
	// The smallest WASI command: an empty _start, which answers null. A
	// Go module would spend most of the test in compiling under -race.
	module := filepath.Join(t.TempDir(), "empty.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"+
		"\x01\x04\x01\x60\x00\x00"+ // type 0: () -> ()
		"\x03\x02\x01\x00"+ // function 0 of type 0
		"\x07\x0a\x01\x06_start\x00\x00"+ // exported as _start
		"\x0a\x04\x01\x02\x00\x0b"), 0o644); err != nil { // an empty body
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, storeTarget{dataDir: t.TempDir()}, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host, err := openFunctionHost(ctx, st, nil, slog.New(slog.DiscardHandler), prewarmConfig{preload: preloadConfig{set: true, modules: 4, mib: 64}}, functionSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			host.Close()
		}
	}()
	host.preloadDeployed(ctx)
	select {
	case <-host.bootPreloaded: // nothing deployed: the boot preload ends at once
	case <-time.After(30 * time.Second):
		t.Fatal("the boot preload has not ended: the server would stay warming")
	}
	waitHeld := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !slices.Equal(host.wasm.Preloaded(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("preloaded %v, want %v", host.wasm.Preloaded(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	deploy := func(memory int64) {
		t.Helper()
		if _, err := host.Deploy(ctx, function.Spec{Name: "hello", Runtime: function.KindWasm, Artifact: module, Limits: function.Limits{Memory: memory}}); err != nil {
			t.Fatal(err)
		}
	}
	deploy(64 << 20)
	waitHeld("hello@1")
	deploy(96 << 20)
	waitHeld("hello@2")

	if res, err := host.Invoke(ctx, "hello", map[string]string{"name": "Ada"}); err != nil || string(res.Raw) != "null" {
		t.Fatalf("call: %+v, %v", res, err)
	}
	if err := host.Delete(ctx, "", "hello", "2"); err != nil {
		t.Fatal(err)
	}
	waitHeld()

	closed = true
	if err := host.Close(); err != nil {
		t.Fatal(err)
	}
	use := newFunctionUse(st)
	if err := use.load(ctx); err != nil {
		t.Fatal(err)
	}
	if use.last["hello"].IsZero() {
		t.Fatalf("last use %v: want hello's call saved", use.last)
	}
}

// A server reports itself not ready while its boot-time preload runs, and
// for at most bootPreloadReadyWait, so that traffic waits for its modules
// only as long as the operator can bound.
func TestWarmingWhileTheBootPreloadRuns(t *testing.T) {
	began := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &functionHost{}
	if err := h.warming(began); err != nil {
		t.Fatalf("no preload asked for: %v, want ready", err)
	}
	h.bootPreloaded, h.bootPreloadBegan = make(chan struct{}), began
	for _, tc := range []struct {
		after   time.Duration
		warming bool
	}{
		{0, true},
		{bootPreloadReadyWait - time.Millisecond, true},
		{bootPreloadReadyWait, false},
	} {
		if err := h.warming(began.Add(tc.after)); (err != nil) != tc.warming {
			t.Errorf("%v into the preload: warming %v, want warming %v", tc.after, err, tc.warming)
		}
	}
	close(h.bootPreloaded)
	if err := h.warming(began); err != nil {
		t.Fatalf("preload ended: %v, want ready", err)
	}
}
