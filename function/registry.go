package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

const digestPrefix = "sha256:"

// wasmMagic opens every WebAssembly binary.
var wasmMagic = []byte("\x00asm")

// Registry keeps deployed function versions in the store, and wasm modules
// in a blob store (see Blobs).
type Registry struct {
	store store.Store
	blobs *Blobs

	// mu serialises deploys and deletes, so version numbering and blob
	// garbage collection see a stable registry.
	mu sync.Mutex

	subMu  sync.Mutex
	subs   map[int]func(name string)
	nextID int
}

// NewRegistry returns a registry over st keeping artifacts in blobs.
func NewRegistry(st store.Store, blobs *Blobs) *Registry {
	return &Registry{store: st, blobs: blobs, subs: map[int]func(string){}}
}

// Blobs is the registry's artifact store, for runtimes.
func (r *Registry) Blobs() *Blobs { return r.blobs }

// Subscribe registers fn to be called with a function's reference (see
// Qualify) after one of its versions is deployed or deleted through this
// registry; the Manager
// uses it to retire stale pools at once. It returns the unsubscribe
// function.
func (r *Registry) Subscribe(fn func(name string)) (unsubscribe func()) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	id := r.nextID
	r.nextID++
	r.subs[id] = fn
	return func() {
		r.subMu.Lock()
		defer r.subMu.Unlock()
		delete(r.subs, id)
	}
}

func (r *Registry) notify(name string) {
	r.subMu.Lock()
	subs := make([]func(string), 0, len(r.subs))
	for _, fn := range r.subs {
		subs = append(subs, fn)
	}
	r.subMu.Unlock()
	for _, fn := range subs {
		fn(name)
	}
}

// Deploy validates spec, stores a wasm artifact given as a file path in the
// blob directory, and stores the version. A spec without a version gets
// the next number ("1", "2"...), unless it is identical to the newest
// version, which is then returned as it is: deploying twice is harmless.
// Storing an existing version with different content is a conflict.
func (r *Registry) Deploy(ctx context.Context, spec Spec) (*Spec, error) {
	spec.CreatedAt = time.Time{}
	if p := spec.Validate(); p != nil {
		return nil, p
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	if spec.Runtime == KindWasm {
		if err := r.storeArtifact(&spec); err != nil {
			return nil, err
		}
	}

	versions, err := r.versions(ctx, nsOf(&spec), spec.Name)
	if err != nil {
		return nil, err
	}
	if spec.Version == "" {
		if n := len(versions); n > 0 && sameContent(versions[n-1], &spec) {
			return versions[n-1], nil
		}
		spec.Version = nextVersion(versions)
	} else {
		for _, v := range versions {
			if v.Version != spec.Version {
				continue
			}
			if sameContent(v, &spec) {
				return v, nil
			}
			return nil, problem.New(problem.TypeConflict, 409, "Conflict",
				fmt.Sprintf("function %s already exists with different content; deploy a new version", v.Ref()))
		}
	}

	doc, err := specForStore(&spec)
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", spec.Ref(), err)
	}
	if err := r.store.PutFunction(ctx, &store.Function{Namespace: nsOf(&spec), Name: spec.Name, Version: spec.Version, Spec: doc}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, problem.New(problem.TypeConflict, 409, "Conflict",
				fmt.Sprintf("function %s was deployed concurrently with different content", spec.Ref()))
		}
		return nil, fmt.Errorf("deploy %s: %w", spec.Ref(), err)
	}
	stored, err := r.Get(ctx, nsOf(&spec), spec.Name, spec.Version)
	if err != nil {
		return nil, err
	}
	r.notify(spec.key())
	return stored, nil
}

func (r *Registry) storeArtifact(spec *Spec) error {
	if strings.HasPrefix(spec.Artifact, digestPrefix) {
		if !r.blobs.has(spec.Artifact) {
			return problem.Validation("artifact %s is not in the blob store; deploy the .wasm file itself", spec.Artifact)
		}
		return nil
	}
	if err := checkWasmFile(spec.Artifact); err != nil {
		return err
	}
	digest, err := r.blobs.Put(spec.Artifact)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	spec.Artifact = digest
	return nil
}

// checkWasmFile rejects what is plainly not a WebAssembly module before it
// is stored, so the mistake shows at deploy time rather than at the first
// call.
func checkWasmFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return problem.Validation("artifact: %v", err)
	}
	defer f.Close()
	head := make([]byte, len(wasmMagic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, wasmMagic) {
		return problem.Validation("artifact %s is not a WebAssembly module (it does not start with \\0asm)", path)
	}
	return nil
}

func sameContent(a, b *Spec) bool {
	ca, cb := *a, *b
	ca.Version, cb.Version = "", ""
	ja, err1 := specForStore(&ca)
	jb, err2 := specForStore(&cb)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// nextVersion numbers versions 1, 2, 3...; versions named otherwise by
// their deployer do not take part in the count.
func nextVersion(versions []*Spec) string {
	highest := 0
	for _, v := range versions {
		if n, err := strconv.Atoi(v.Version); err == nil && n > highest {
			highest = n
		}
	}
	return strconv.Itoa(highest + 1)
}

// Get returns a version of a namespace's function, or the newest one when
// version is "". A missing function is a NotFound error, and so is another
// namespace's.
func (r *Registry) Get(ctx context.Context, namespace, name, version string) (*Spec, error) {
	fn, err := r.store.GetFunction(ctx, namespace, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(name, version)
	}
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	return decodeStored(fn)
}

// List returns every deployed version of a namespace's functions, or of
// every namespace's when namespace is "", ordered by namespace, name and
// deployment.
func (r *Registry) List(ctx context.Context, namespace string) ([]*Spec, error) {
	fns, err := r.store.ListFunctions(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	specs := make([]*Spec, 0, len(fns))
	for _, fn := range fns {
		s, err := decodeStored(fn)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	sort.SliceStable(specs, func(i, j int) bool {
		if specs[i].Namespace != specs[j].Namespace {
			return specs[i].Namespace < specs[j].Namespace
		}
		if specs[i].Name != specs[j].Name {
			return specs[i].Name < specs[j].Name
		}
		return specs[i].CreatedAt.Before(specs[j].CreatedAt)
	})
	return specs, nil
}

func (r *Registry) versions(ctx context.Context, namespace, name string) ([]*Spec, error) {
	all, err := r.List(ctx, namespace)
	if err != nil {
		return nil, err
	}
	var out []*Spec
	for _, s := range all {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out, nil
}

// Delete removes a version of a namespace's function, or every version
// when version is "", and the artifacts no remaining version (of any
// namespace: blobs are content-addressed and shared) uses.
func (r *Registry) Delete(ctx context.Context, namespace, name, version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.Get(ctx, namespace, name, version); err != nil {
		return err
	}
	if err := r.store.DeleteFunction(ctx, namespace, name, version); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return NotFound(name, version)
		}
		return fmt.Errorf("delete function %s: %w", name, err)
	}
	r.notify(Qualify(namespace, name))
	return r.collectGarbage(ctx)
}

func (r *Registry) collectGarbage(ctx context.Context) error {
	all, err := r.List(ctx, "")
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, s := range all {
		if s.Runtime == KindWasm {
			used[s.Artifact] = true
		}
	}
	stored, err := r.blobs.list()
	if err != nil {
		return fmt.Errorf("function blobs: %w", err)
	}
	for _, digest := range stored {
		if !used[digest] {
			if err := r.blobs.remove(digest); err != nil {
				return fmt.Errorf("function blobs: %w", err)
			}
		}
	}
	return nil
}

func decodeStored(fn *store.Function) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(fn.Spec, &s); err != nil {
		return nil, fmt.Errorf("function %s@%s: stored spec is unreadable: %w", fn.Name, fn.Version, err)
	}
	s.Namespace, s.Name, s.Version, s.CreatedAt = fn.Namespace, fn.Name, fn.Version, fn.CreatedAt
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	return &s, nil
}
