package main

import (
	"context"
	"encoding/json"
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
