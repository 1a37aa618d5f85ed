package function

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// memStore implements the function part of store.Store in memory; the
// other methods are not used by the registry.
type memStore struct {
	store.Store
	mu   sync.Mutex
	fns  []*store.Function
	tick time.Time
}

func (s *memStore) PutFunction(_ context.Context, fn *store.Function) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fns {
		if f.Namespace == fn.Namespace && f.Name == fn.Name && f.Version == fn.Version {
			if string(f.Spec) != string(fn.Spec) {
				return store.ErrConflict
			}
			return nil
		}
	}
	s.tick = s.tick.Add(time.Second)
	c := *fn
	c.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(s.fns)) * time.Second)
	s.fns = append(s.fns, &c)
	return nil
}

func (s *memStore) GetFunction(_ context.Context, namespace, name, version string) (*store.Function, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *store.Function
	for _, f := range s.fns {
		if f.Namespace == namespace && f.Name == name && (version == "" || f.Version == version) {
			found = f
		}
	}
	if found == nil {
		return nil, store.ErrNotFound
	}
	return found, nil
}

func (s *memStore) ListFunctions(_ context.Context, namespace string) ([]*store.Function, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Function
	for _, f := range s.fns {
		if namespace == "" || f.Namespace == namespace {
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *memStore) DeleteFunction(_ context.Context, namespace, name, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.fns[:0]
	for _, f := range s.fns {
		if !(f.Namespace == namespace && f.Name == name && (version == "" || f.Version == version)) {
			kept = append(kept, f)
		}
	}
	s.fns = kept
	return nil
}

func newTestRegistry(t *testing.T) (*Registry, string) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := OpenBlobs(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return NewRegistry(&memStore{}, blobs), dir
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// minimalModule is the smallest valid WebAssembly module.
var minimalModule = []byte("\x00asm\x01\x00\x00\x00")

func TestRegistryDeployWasmCopiesTheModule(t *testing.T) {
	reg, dir := newTestRegistry(t)
	ctx := context.Background()
	src := writeFile(t, filepath.Join(dir, "f.wasm"), minimalModule)

	var notified []string
	unsubscribe := reg.Subscribe(func(name string) { notified = append(notified, name) })
	defer unsubscribe()

	spec, err := reg.Deploy(ctx, Spec{Name: "hello", Runtime: KindWasm, Artifact: src, Limits: Limits{Timeout: Duration(5 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Version != "1" || !strings.HasPrefix(spec.Artifact, "sha256:") || spec.CreatedAt.IsZero() {
		t.Fatalf("deployed %+v", spec)
	}
	// The deploy survives the source file going away.
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	data, digest, err := reg.Blobs().Read(spec.Artifact)
	if err != nil || string(data) != string(minimalModule) || digest != spec.Artifact {
		t.Fatalf("Read = %q, %s, %v", data, digest, err)
	}
	got, err := reg.Get(ctx, DefaultNamespace, "hello", "")
	if err != nil || got.Limits.Timeout != Duration(5*time.Second) || got.Artifact != spec.Artifact {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if len(notified) != 1 || notified[0] != "hello" {
		t.Errorf("notified %v", notified)
	}
}

func TestRegistryVersioning(t *testing.T) {
	reg, _ := newTestRegistry(t)
	ctx := context.Background()
	base := Spec{Name: "p", Runtime: KindProcess, Command: "python3", Args: []string{"a.py"}}

	v1, err := reg.Deploy(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	again, err := reg.Deploy(ctx, base)
	if err != nil || again.Version != v1.Version {
		t.Fatalf("deploying the same spec again: %+v, %v; want version %s", again, err, v1.Version)
	}
	changed := base
	changed.Args = []string{"b.py"}
	v2, err := reg.Deploy(ctx, changed)
	if err != nil || v2.Version != "2" {
		t.Fatalf("changed spec: %+v, %v; want version 2", v2, err)
	}
	pinned := base
	pinned.Version = "2"
	_, err = reg.Deploy(ctx, pinned)
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeConflict {
		t.Fatalf("redeploying version 2 with other content: %v, want conflict", err)
	}
	newest, err := reg.Get(ctx, DefaultNamespace, "p", "")
	if err != nil || newest.Version != "2" {
		t.Fatalf("newest = %+v, %v", newest, err)
	}
	all, err := reg.List(ctx, DefaultNamespace)
	if err != nil || len(all) != 2 || all[0].Version != "1" || all[1].Version != "2" {
		t.Fatalf("List = %v, %v", all, err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "p", "2"); err != nil {
		t.Fatal(err)
	}
	if newest, err := reg.Get(ctx, DefaultNamespace, "p", ""); err != nil || newest.Version != "1" {
		t.Fatalf("after deleting version 2: %+v, %v", newest, err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "p", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, DefaultNamespace, "p", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after deleting all: %v, want not found", err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "p", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting again: %v, want not found", err)
	}
}

func TestRegistryRejectsBadSpecs(t *testing.T) {
	reg, dir := newTestRegistry(t)
	notWasm := writeFile(t, filepath.Join(dir, "x.wasm"), []byte("#!/bin/sh\necho hi\n"))
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"bad name", Spec{Name: "Hello World", Runtime: KindProcess, Command: "x"}, "name"},
		{"no runtime", Spec{Name: "a"}, "runtime must be"},
		{"wasm without artifact", Spec{Name: "a", Runtime: KindWasm}, "artifact"},
		{"not wasm", Spec{Name: "a", Runtime: KindWasm, Artifact: notWasm}, "not a WebAssembly module"},
		{"missing file", Spec{Name: "a", Runtime: KindWasm, Artifact: filepath.Join(dir, "nope.wasm")}, "no such file"},
		{"process without command", Spec{Name: "a", Runtime: KindProcess}, "command"},
		{"relative url", Spec{Name: "a", Runtime: KindHTTP, URL: "/fn"}, "absolute http(s) url"},
		{"headers on process", Spec{Name: "a", Runtime: KindProcess, Command: "x", Headers: map[string]string{"a": "b"}}, "http functions only"},
		{"negative limit", Spec{Name: "a", Runtime: KindProcess, Command: "x", Limits: Limits{MaxInstances: -1}}, "negative"},
		{"tiny memory", Spec{Name: "a", Runtime: KindProcess, Command: "x", Limits: Limits{Memory: 100}}, "64KiB"},
		{"relative dir grant", Spec{Name: "a", Runtime: KindWasm, Artifact: "sha256:00", Permissions: Permissions{Dirs: []DirGrant{{Host: "data", Guest: "/data"}}}}, "absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reg.Deploy(context.Background(), tc.spec)
			var pr *problem.Problem
			if !errors.As(err, &pr) || pr.Type != problem.TypeValidation || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a validation problem mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRegistryCollectsUnusedBlobs(t *testing.T) {
	reg, dir := newTestRegistry(t)
	ctx := context.Background()
	src := writeFile(t, filepath.Join(dir, "f.wasm"), minimalModule)
	a, err := reg.Deploy(ctx, Spec{Name: "a", Runtime: KindWasm, Artifact: src})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deploy(ctx, Spec{Name: "b", Runtime: KindWasm, Artifact: src}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "a", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Blobs().Read(a.Artifact); err != nil {
		t.Fatalf("blob still used by b was removed: %v", err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "b", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Blobs().Read(a.Artifact); err == nil {
		t.Fatal("unused blob was kept")
	}
}

func TestBlobsDetectCorruption(t *testing.T) {
	reg, dir := newTestRegistry(t)
	digest, err := reg.Blobs().Put(writeFile(t, filepath.Join(dir, "f.wasm"), minimalModule))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := reg.Blobs().path(digest)
	writeFile(t, p, []byte("\x00asm tampered"))
	if _, _, err := reg.Blobs().Read(digest); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Read of a tampered blob: %v", err)
	}
}

func TestSpecJSON(t *testing.T) {
	in := `{"name":"f","runtime":"http","url":"https://example.com/fn","limits":{"timeout":"1m30s","memory":1048576,"maxInstances":3},"warmup":"/healthz"}`
	var s Spec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.EffectiveTimeout() != 90*time.Second || s.EffectiveMaxInstances() != 3 || s.EffectiveMemory() != 1<<20 {
		t.Errorf("limits = %+v", s.Limits)
	}
	if p := s.Validate(); p != nil {
		t.Fatalf("Validate: %v", p)
	}
	var secs Spec
	if err := json.Unmarshal([]byte(`{"limits":{"timeout":2.5}}`), &secs); err != nil || secs.EffectiveTimeout() != 2500*time.Millisecond {
		t.Errorf("numeric timeout: %v, %v", secs.Limits.Timeout, err)
	}
	out, err := specForStore(&Spec{Name: "f", Runtime: KindProcess, Command: "x", CreatedAt: time.Now()})
	if err != nil || strings.Contains(string(out), "createdAt") || strings.Contains(string(out), "limits") {
		t.Errorf("stored spec = %s, %v", out, err)
	}
	var defaults Spec
	if defaults.EffectiveTimeout() != DefaultTimeout || defaults.EffectiveMemory() != DefaultMemory || defaults.EffectiveMaxInstances() != DefaultMaxInstances {
		t.Error("defaults not applied")
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"128MiB", 128 << 20, false},
		{"64Mi", 64 << 20, false},
		{"1G", 1e9, false},
		{"1.5 KiB", 1536, false},
		{"65536", 65536, false},
		{"12 parsecs", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestManagerSeesDeploysThroughTheRegistryAtOnce(t *testing.T) {
	reg, _ := newTestRegistry(t)
	ctx := context.Background()
	rt := &fakeRuntime{}
	m, err := NewManager(reg, map[Kind]Runtime{KindProcess: rt}, Options{SpecTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if _, err := reg.Deploy(ctx, Spec{Name: "f", Runtime: KindProcess, Command: "one"}); err != nil {
		t.Fatal(err)
	}
	if res, err := m.Invoke(ctx, "f", 1); err != nil || res.Version != "1" {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := reg.Deploy(ctx, Spec{Name: "f", Runtime: KindProcess, Command: "two"}); err != nil {
		t.Fatal(err)
	}
	if res, err := m.Invoke(ctx, "f", 1); err != nil || res.Version != "2" {
		t.Fatalf("after deploying version 2: %+v, %v", res, err)
	}
	if err := reg.Delete(ctx, DefaultNamespace, "f", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Invoke(ctx, "f", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after deleting: %v, want not found", err)
	}
	waitUntil(t, func() bool { return rt.closed.Load() == rt.started.Load() })
}

func TestSpecKeepAlive(t *testing.T) {
	for _, tt := range []struct {
		keepAlive string
		ok        bool
	}{
		{"", true},
		{"on-demand", true},
		{"baton+hybrid", true},
		{"fixed:30m", true},
		{"fixed:0s", false},
		{"fixed:soon", false},
		{"hybrid:95", false},
		{"lru", false},
	} {
		s := Spec{Name: "f", Runtime: KindProcess, Command: "x", KeepAlive: tt.keepAlive}
		if p := s.Validate(); (p == nil) != tt.ok {
			t.Errorf("keepAlive %q: Validate = %v, want ok %v", tt.keepAlive, p, tt.ok)
		}
	}
}
