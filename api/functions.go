package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
)

// Functions is what the API needs from the function layer: the registry's
// deploy, get, list and delete, and the manager's calls and pool state.
// It is kept apart from Engine so that the engine stays about workflows;
// a struct embedding *function.Registry and *function.Manager satisfies it.
//
// Functions belong to a namespace (function.Spec.Namespace on Deploy); List
// of "" is every namespace's. Invoke, Instances and Events take a
// reference as function.Qualify makes it.
type Functions interface {
	Deploy(ctx context.Context, spec function.Spec) (*function.Spec, error)
	Get(ctx context.Context, namespace, name, version string) (*function.Spec, error)
	List(ctx context.Context, namespace string) ([]*function.Spec, error)
	Delete(ctx context.Context, namespace, name, version string) error
	Invoke(ctx context.Context, ref string, input any) (function.Result, error)
	Instances(ref string) []function.InstanceInfo
	Events(ref string) []function.Event
}

// WithFunctions serves /v1/functions over f. Without it those routes
// answer 501 Not Implemented.
func WithFunctions(f Functions) Option {
	return func(c *config) { c.functions = f }
}

// WithMetrics serves h (a Prometheus handler) at GET /metrics. Without it
// the route answers 501 Not Implemented.
func WithMetrics(h http.Handler) Option {
	return func(c *config) { c.metrics = h }
}

// DefaultMaxModuleBytes caps a WebAssembly module uploaded to POST
// /v1/functions; the other requests keep the smaller DefaultMaxBodyBytes.
const DefaultMaxModuleBytes = 256 << 20

// WithMaxModuleBytes caps uploaded WebAssembly modules.
func WithMaxModuleBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxModuleBytes = n
		}
	}
}

// Multipart field names of a wasm deploy.
const (
	FunctionSpecPart   = "spec"
	FunctionModulePart = "module"
)

// maxSpecBytes caps the spec part of a multipart deploy.
const maxSpecBytes = 1 << 20

// eventsShown is how many of a function's newest lifecycle events GET
// /v1/functions/{name} returns.
const eventsShown = 50

// FunctionRef names a deployed function version: the body of 201 answers
// to POST /v1/functions.
type FunctionRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
}

// FunctionSummary is a function as listed by GET /v1/functions: its newest
// version and every version deployed.
type FunctionSummary struct {
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Runtime   function.Kind `json:"runtime"`
	Version   string        `json:"version"`
	// Versions are oldest first.
	Versions []string `json:"versions"`
	// DeployedAt is when the newest version was deployed.
	DeployedAt time.Time `json:"deployedAt"`
}

// FunctionList is the body of GET /v1/functions.
type FunctionList struct {
	Items []FunctionSummary `json:"items"`
}

// Function is the body of GET /v1/functions/{name} (the newest version)
// and GET /v1/functions/{name}/versions/{version}.
type Function struct {
	Spec *function.Spec `json:"spec"`
	// Versions lists every deployed version, oldest first.
	Versions []string `json:"versions"`
	// Pool is the state of the version's instances on this server.
	Pool FunctionPool `json:"pool"`
}

// FunctionPool is what runs a function version: its live instances and
// their recent lifecycle.
type FunctionPool struct {
	// ByState counts the live instances by state ("busy", "idle").
	ByState map[string]int `json:"byState"`
	// Instances are the live instances.
	Instances []FunctionInstance `json:"instances"`
	// Events are the newest lifecycle events (created, busy, idle,
	// evicted, start-failed), oldest first.
	Events []FunctionEvent `json:"events"`
}

// ColdStart is a cold start split into its phases, in milliseconds.
type ColdStart struct {
	CompileMs     float64 `json:"compileMs"`
	InstantiateMs float64 `json:"instantiateMs"`
	InitMs        float64 `json:"initMs"`
	TotalMs       float64 `json:"totalMs"`
}

// FunctionInstance is a live instance.
type FunctionInstance struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	ColdStart ColdStart `json:"coldStart"`
	Calls     uint64    `json:"calls"`
	IdleSince time.Time `json:"idleSince,omitzero"`
}

// FunctionEvent is one step of an instance's life.
type FunctionEvent struct {
	Kind     function.EventKind `json:"kind"`
	Time     time.Time          `json:"time"`
	Version  string             `json:"version"`
	Instance string             `json:"instance"`
	// ColdStart is set on "created" events.
	ColdStart *ColdStart `json:"coldStart,omitempty"`
	// Reason says why an instance was evicted.
	Reason string `json:"reason,omitempty"`
	// Error says why a start failed or an instance became unhealthy.
	Error string `json:"error,omitempty"`
}

// FunctionResult is the body of POST /v1/functions/{name}/invoke.
type FunctionResult struct {
	// Output is the function's JSON output, as it wrote it.
	Output json.RawMessage `json:"output"`
	// Cold is true when the call started an instance (or waited for one
	// being started).
	Cold bool `json:"cold"`
	// ColdStart is the serving instance's cold start, when Cold.
	ColdStart *ColdStart `json:"coldStart,omitempty"`
	// DurationMs is the whole call on the server: queueing, cold start and
	// execution.
	DurationMs float64 `json:"durationMs"`
	Instance   string  `json:"instance"`
	Version    string  `json:"version"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ColdStartOf converts a runtime's phases into milliseconds.
func ColdStartOf(p function.Phases) ColdStart {
	return ColdStart{
		CompileMs:     millis(p.Compile),
		InstantiateMs: millis(p.Instantiate),
		InitMs:        millis(p.Init),
		TotalMs:       millis(p.Total()),
	}
}

// FunctionResultOf is the wire form of a call's result.
func FunctionResultOf(res function.Result) FunctionResult {
	out := FunctionResult{
		Output:     res.Raw,
		Cold:       res.Cold,
		DurationMs: millis(res.Duration),
		Instance:   res.Instance,
		Version:    res.Version,
	}
	if len(out.Output) == 0 {
		out.Output = json.RawMessage("null")
	}
	if res.Cold {
		cs := ColdStartOf(res.ColdStart)
		out.ColdStart = &cs
	}
	return out
}

// FunctionSummaries groups deployed versions (as Registry.List returns
// them: by name, oldest first) into one summary per function.
func FunctionSummaries(specs []*function.Spec) []FunctionSummary {
	byName := map[string]*FunctionSummary{}
	var order []string
	for _, s := range specs {
		sum := byName[s.Name]
		if sum == nil {
			sum = &FunctionSummary{Namespace: s.Namespace, Name: s.Name}
			byName[s.Name] = sum
			order = append(order, s.Name)
		}
		sum.Versions = append(sum.Versions, s.Version)
		if !s.CreatedAt.Before(sum.DeployedAt) {
			sum.Runtime, sum.Version, sum.DeployedAt = s.Runtime, s.Version, s.CreatedAt
		}
	}
	sort.Strings(order)
	out := make([]FunctionSummary, 0, len(order))
	for _, name := range order {
		out = append(out, *byName[name])
	}
	return out
}

// FunctionView describes spec with the versions deployed under its name
// (all, as Registry.List returns them for spec's namespace; other names
// are ignored) and the state of its instances: those of spec's version
// only.
func FunctionView(spec *function.Spec, all []*function.Spec, instances []function.InstanceInfo, events []function.Event) *Function {
	view := &Function{
		Spec:     spec,
		Versions: []string{},
		Pool: FunctionPool{
			ByState:   map[string]int{"busy": 0, "idle": 0},
			Instances: []FunctionInstance{},
			Events:    []FunctionEvent{},
		},
	}
	for _, s := range all {
		if s.Name == spec.Name {
			view.Versions = append(view.Versions, s.Version)
		}
	}
	for _, in := range instances {
		if in.Function != spec.Name || in.Version != spec.Version {
			continue
		}
		view.Pool.ByState[in.State]++
		view.Pool.Instances = append(view.Pool.Instances, FunctionInstance{
			ID: in.ID, Version: in.Version, State: in.State, Created: in.Created,
			ColdStart: ColdStartOf(in.ColdStart), Calls: in.Calls, IdleSince: in.IdleSince,
		})
	}
	var mine []FunctionEvent
	for _, e := range events {
		if e.Function != function.Qualify(spec.Namespace, spec.Name) || e.Version != spec.Version {
			continue
		}
		fe := FunctionEvent{Kind: e.Kind, Time: e.Time, Version: e.Version, Instance: e.Instance, Reason: e.Reason, Error: e.Error}
		if e.Kind == function.EventCreated {
			cs := ColdStartOf(e.Phases)
			fe.ColdStart = &cs
		}
		mine = append(mine, fe)
	}
	if len(mine) > eventsShown {
		mine = mine[len(mine)-eventsShown:]
	}
	view.Pool.Events = append(view.Pool.Events, mine...)
	return view
}

// functionPath is where a namespace's function is, its ?namespace= left
// out in the default namespace.
func functionPath(namespace, name, version string) string {
	p := "/v1/functions/" + url.PathEscape(name)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	if namespace != "" && namespace != DefaultNamespace {
		p += "?namespace=" + url.QueryEscape(namespace)
	}
	return p
}

// functionNamespace is the namespace a function request acts in: its
// ?namespace=, "default" when absent. The access check reads the same.
func functionNamespace(r *http.Request) (string, *problem.Problem) {
	ns := queryNamespace(r)
	if !policy.ValidNamespace(ns) {
		return "", badRequest("namespace %q is not a valid name", ns)
	}
	return ns, nil
}

func functionSubject(name, version string) string {
	if version == "" {
		return "function " + name
	}
	return "function " + name + " version " + version
}

// requireFunctions answers 501 when the server runs no functions.
func (s *server) requireFunctions(w http.ResponseWriter, r *http.Request) bool {
	if s.functions == nil {
		s.writeProblem(w, r, notImplemented("this server runs no functions"))
		return false
	}
	return true
}

// bodyLimit is the request body cap: larger for a multipart deploy, which
// carries a WebAssembly module.
func (s *server) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/functions" && isMultipart(r) {
		if s.maxModuleBytes > 0 {
			return s.maxModuleBytes + maxSpecBytes
		}
		return DefaultMaxModuleBytes + maxSpecBytes
	}
	return s.maxBodyBytes
}

func isMultipart(r *http.Request) bool {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mediaType == "multipart/form-data"
}

func (s *server) deployFunction(w http.ResponseWriter, r *http.Request) {
	if !s.requireFunctions(w, r) {
		return
	}
	var (
		spec function.Spec
		p    *problem.Problem
	)
	if isMultipart(r) {
		var cleanup func()
		spec, cleanup, p = s.readModuleDeploy(r)
		defer cleanup()
	} else {
		spec, p = readSpecDeploy(r)
	}
	if p == nil {
		p = placeInNamespace(r, &spec)
	}
	if p == nil {
		p = s.admitDeploy(r, &spec)
	}
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	deployed, err := s.functions.Deploy(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err, functionSubject(spec.Name, spec.Version))
		return
	}
	w.Header().Set("Location", functionPath(deployed.Namespace, deployed.Name, deployed.Version))
	writeJSON(w, http.StatusCreated, FunctionRef{Namespace: deployed.Namespace, Name: deployed.Name, Version: deployed.Version})
}

// placeInNamespace puts a deployed spec in the request's namespace. A spec
// naming another one is refused rather than obeyed: the access check
// authorised ?namespace=, not the body.
func placeInNamespace(r *http.Request, spec *function.Spec) *problem.Problem {
	ns, p := functionNamespace(r)
	if p != nil {
		return p
	}
	if spec.Namespace != "" && spec.Namespace != ns {
		return badRequest("the spec's namespace %q is not the request's %q: deploy with ?namespace=%s", spec.Namespace, ns, spec.Namespace)
	}
	spec.Namespace = ns
	return nil
}

// readSpecDeploy reads a JSON spec. A wasm function deployed this way
// names a module already in the server's blob directory by its content
// address: a file path would let a client make the server read any file.
func readSpecDeploy(r *http.Request) (function.Spec, *problem.Problem) {
	spec, p := decodeSpec(r.Body)
	if p != nil {
		return spec, p
	}
	if spec.Runtime == function.KindWasm && !strings.HasPrefix(spec.Artifact, "sha256:") {
		return spec, badRequest("a wasm function's artifact must be the sha256: address of a module deployed before; "+
			"to upload a module, send multipart/form-data with a %q part (the JSON spec) and a %q part (the .wasm file)",
			FunctionSpecPart, FunctionModulePart)
	}
	return spec, nil
}

func decodeSpec(body io.Reader) (function.Spec, *problem.Problem) {
	var spec function.Spec
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return spec, problemFor(err, "function spec")
		}
		return spec, badRequest("the function spec is not valid JSON: %v", err)
	}
	if dec.More() {
		return spec, badRequest("the function spec must be one JSON object")
	}
	return spec, nil
}

// readModuleDeploy reads a multipart deploy: the JSON spec and the module,
// which is spooled to a temporary file for the registry to store; cleanup
// removes it.
func (s *server) readModuleDeploy(r *http.Request) (function.Spec, func(), *problem.Problem) {
	var spec function.Spec
	cleanup := func() {}
	mr, err := r.MultipartReader()
	if err != nil {
		return spec, cleanup, badRequest("reading the multipart body: %v", err)
	}
	var haveSpec bool
	var modulePath string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return spec, cleanup, multipartProblem(err)
		}
		switch part.FormName() {
		case FunctionSpecPart:
			data, err := io.ReadAll(io.LimitReader(part, maxSpecBytes+1))
			if err != nil {
				return spec, cleanup, multipartProblem(err)
			}
			if len(data) > maxSpecBytes {
				return spec, cleanup, badRequest("the %q part exceeds %d bytes", FunctionSpecPart, maxSpecBytes)
			}
			var p *problem.Problem
			if spec, p = decodeSpec(bytes.NewReader(data)); p != nil {
				return spec, cleanup, p
			}
			haveSpec = true
		case FunctionModulePart:
			if modulePath != "" {
				return spec, cleanup, badRequest("more than one %q part", FunctionModulePart)
			}
			path, err := spoolModule(part)
			if path != "" {
				modulePath = path
				cleanup = func() { _ = os.Remove(path) }
			}
			if err != nil {
				return spec, cleanup, multipartProblem(err)
			}
		default:
			return spec, cleanup, badRequest("unexpected part %q: send %q and %q", part.FormName(), FunctionSpecPart, FunctionModulePart)
		}
	}
	if !haveSpec || modulePath == "" {
		return spec, cleanup, badRequest("a multipart deploy needs a %q part (the JSON spec) and a %q part (the .wasm file)",
			FunctionSpecPart, FunctionModulePart)
	}
	if spec.Runtime == "" {
		spec.Runtime = function.KindWasm
	}
	if spec.Runtime != function.KindWasm || spec.Artifact != "" {
		return spec, cleanup, badRequest("a multipart deploy is for wasm functions: the spec names no artifact, the %q part is the module",
			FunctionModulePart)
	}
	spec.Artifact = modulePath
	return spec, cleanup, nil
}

func spoolModule(part io.Reader) (string, error) {
	f, err := os.CreateTemp("", "baton-module-*.wasm")
	if err != nil {
		return "", fmt.Errorf("storing the module: %w", err)
	}
	_, copyErr := io.Copy(f, part)
	closeErr := f.Close()
	if err := errors.Join(copyErr, closeErr); err != nil {
		return f.Name(), err
	}
	return f.Name(), nil
}

func multipartProblem(err error) *problem.Problem {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return problemFor(err, "function module")
	}
	return badRequest("reading the multipart body: %v", err)
}

func (s *server) listFunctions(w http.ResponseWriter, r *http.Request) {
	if !s.requireFunctions(w, r) {
		return
	}
	ns, p := functionNamespace(r)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	specs, err := s.functions.List(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err, "listing functions")
		return
	}
	writeJSON(w, http.StatusOK, FunctionList{Items: FunctionSummaries(specs)})
}

func (s *server) getFunction(w http.ResponseWriter, r *http.Request) {
	if !s.requireFunctions(w, r) {
		return
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	ns, p := functionNamespace(r)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	spec, err := s.functions.Get(r.Context(), ns, name, version)
	if err != nil {
		s.fail(w, r, err, functionSubject(name, version))
		return
	}
	all, err := s.functions.List(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err, functionSubject(name, version))
		return
	}
	ref := function.Qualify(ns, name)
	writeJSON(w, http.StatusOK, FunctionView(spec, all, s.functions.Instances(ref), s.functions.Events(ref)))
}

func (s *server) deleteFunction(w http.ResponseWriter, r *http.Request) {
	if !s.requireFunctions(w, r) {
		return
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	ns, p := functionNamespace(r)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	if err := s.functions.Delete(r.Context(), ns, name, version); err != nil {
		s.fail(w, r, err, functionSubject(name, version))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) invokeFunction(w http.ResponseWriter, r *http.Request) {
	if !s.requireFunctions(w, r) {
		return
	}
	name, version := r.PathValue("name"), r.URL.Query().Get("version")
	if strings.Contains(name, "@") {
		s.writeProblem(w, r, badRequest("function %q: select a version with ?version=, not NAME@VERSION", name))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, err, "reading the function input")
		return
	}
	input := json.RawMessage(bytes.TrimSpace(body))
	if len(input) == 0 {
		input = json.RawMessage("null")
	} else if !json.Valid(input) {
		s.writeProblem(w, r, badRequest("the request body is not valid JSON: send the function's input"))
		return
	}
	ns, p := functionNamespace(r)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	target := name
	if version != "" {
		target = name + "@" + version
	}
	target = function.Qualify(ns, target)
	ctx, p := s.functionCallContext(r)
	if p != nil {
		s.writeProblem(w, r, p)
		return
	}
	res, err := s.functions.Invoke(ctx, target, input)
	if err != nil {
		s.fail(w, r, invokeError(err), functionSubject(name, version))
		return
	}
	writeJSON(w, http.StatusOK, FunctionResultOf(res))
}

// invokeError answers a function's timeout with 504 rather than the DSL's
// default 408, which would tell HTTP clients that their request was slow.
func invokeError(err error) error {
	var p *problem.Problem
	if errors.As(err, &p) && p.Type == problem.TypeTimeout {
		c := *p
		c.Status = http.StatusGatewayTimeout
		return &c
	}
	return err
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		s.writeProblem(w, r, notImplemented("this server exports no metrics"))
		return
	}
	s.metrics.ServeHTTP(w, r)
}
