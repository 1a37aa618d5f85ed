package function

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/problem"
)

// Kind names the runtime that runs a function.
type Kind string

const (
	// KindWasm runs a WebAssembly module in the embedded wazero runtime.
	KindWasm Kind = "wasm"
	// KindProcess runs an executable kept alive between calls, speaking
	// JSON lines over its stdin and stdout.
	KindProcess Kind = "process"
	// KindHTTP calls a function served elsewhere (OpenFaaS, Knative,
	// Fission, a Lambda function URL...).
	KindHTTP Kind = "http"
)

// Defaults applied to a Spec's zero limits.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMemory       = 128 << 20
	DefaultMaxInstances = 10
)

// Spec is a deployed function version: everything a runtime needs to start
// instances of it. It is the JSON document the store keeps as
// store.Function.Spec.
type Spec struct {
	// Namespace is the tenancy unit the function belongs to ("" is
	// DefaultNamespace): workflows call the functions of their own
	// namespace only.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	Runtime   Kind   `json:"runtime"`

	// Artifact is the WebAssembly module of a wasm function: a file path
	// when a spec is written, and the module's content address
	// ("sha256:<hex>") in the registry's blob directory once deployed.
	Artifact string `json:"artifact,omitempty"`

	// Command and Args start a process function.
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Dir is the working directory of a process function; relative paths
	// in Command and Args are relative to it. The CLI sets it to the
	// directory deploy was run from.
	Dir string `json:"dir,omitempty"`

	// URL is where an http function receives its POSTed input.
	URL string `json:"url,omitempty"`
	// Headers are sent with every request of an http function.
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders maps a header name to the name of a secret whose value
	// is sent in that header, so credentials stay out of the registry.
	SecretHeaders map[string]string `json:"secretHeaders,omitempty"`
	// Warmup is requested (GET) when an http function is prepared or its
	// first instance starts; a path is resolved against URL.
	Warmup string `json:"warmup,omitempty"`

	Limits Limits `json:"limits,omitzero"`
	// KeepAlive names the keep-alive policy of this function's idle
	// instances (one of KeepAlivePolicies, "fixed" optionally with its
	// duration, "fixed:30m"); empty leaves the choice to the host
	// (`baton server --keep-alive`).
	KeepAlive string `json:"keepAlive,omitempty"`
	// Env is the environment the function sees. A wasm function sees
	// nothing else; a process function also sees PATH, HOME and the
	// variables listed in Permissions.HostEnv.
	Env         map[string]string `json:"env,omitempty"`
	Permissions Permissions       `json:"permissions,omitzero"`

	// CreatedAt is when the version was deployed; it is filled from the
	// store and never written into the stored document.
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Limits bound what one function may use.
type Limits struct {
	// Memory caps a wasm instance's linear memory, in bytes (rounded down
	// to whole 64 KiB pages).
	Memory int64 `json:"memory,omitempty"`
	// Timeout bounds one call, from the moment an instance is acquired.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxInstances caps the instances of the function's pool: the
	// function's concurrency.
	MaxInstances int `json:"maxInstances,omitempty"`
	// MaxQueue caps the calls waiting for an instance; zero means no cap
	// (waiting is still bounded by the caller's context).
	MaxQueue int `json:"maxQueue,omitempty"`
}

// Permissions are what a wasm function may reach beyond its input. The
// default is nothing: no files, no host environment, no network.
type Permissions struct {
	Dirs []DirGrant `json:"dirs,omitempty"`
	// HostEnv lists host environment variables passed through by name.
	HostEnv []string `json:"hostEnv,omitempty"`
}

// DirGrant mounts a host directory into a wasm function's filesystem.
type DirGrant struct {
	Host     string `json:"host"`
	Guest    string `json:"guest"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// EffectiveTimeout is the call timeout with the default applied.
func (s *Spec) EffectiveTimeout() time.Duration {
	if s.Limits.Timeout > 0 {
		return time.Duration(s.Limits.Timeout)
	}
	return DefaultTimeout
}

// EffectiveMemory is the memory limit with the default applied.
func (s *Spec) EffectiveMemory() int64 {
	if s.Limits.Memory > 0 {
		return s.Limits.Memory
	}
	return DefaultMemory
}

// EffectiveMaxInstances is the pool size with the default applied.
func (s *Spec) EffectiveMaxInstances() int {
	if s.Limits.MaxInstances > 0 {
		return s.Limits.MaxInstances
	}
	return DefaultMaxInstances
}

// Ref is "name@version", the identity of a deployed version in events,
// logs and instance names.
func (s *Spec) Ref() string {
	if s.Version == "" {
		return s.Name
	}
	return s.Name + "@" + s.Version
}

var (
	namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)
	// namespacePattern is the namespaces' syntax everywhere in Baton (see
	// policy.ValidNamespace); it has no '/', which Qualify relies on.
	namespacePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$`)
	versionPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
)

// Validate reports every problem of a spec at once, as a validation
// problem whose Errors list them.
func (s *Spec) Validate() *problem.Problem {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if s.Namespace != "" && !namespacePattern.MatchString(s.Namespace) {
		add("namespace %q must be 1-128 letters, digits, '.', '_' or '-', starting and ending with a letter or digit", s.Namespace)
	}
	if !namePattern.MatchString(s.Name) {
		add("name %q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit", s.Name)
	}
	if s.Version != "" && !versionPattern.MatchString(s.Version) {
		add("version %q must be 1-64 letters, digits, '.', '_', '+' or '-'", s.Version)
	}
	switch s.Runtime {
	case KindWasm:
		if s.Artifact == "" {
			add("a wasm function needs an artifact (the .wasm module)")
		}
		if s.Command != "" || s.URL != "" {
			add("a wasm function takes no command or url")
		}
		for i, d := range s.Permissions.Dirs {
			if d.Host == "" || !filepath.IsAbs(d.Host) {
				add("permissions.dirs[%d].host must be an absolute path", i)
			}
			if d.Guest == "" || !strings.HasPrefix(d.Guest, "/") {
				add("permissions.dirs[%d].guest must be an absolute guest path", i)
			}
		}
	case KindProcess:
		if s.Command == "" {
			add("a process function needs a command")
		}
		if s.Artifact != "" || s.URL != "" {
			add("a process function takes no artifact or url")
		}
	case KindHTTP:
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("an http function needs an absolute http(s) url, got %q", s.URL)
		}
		if s.Artifact != "" || s.Command != "" {
			add("an http function takes no artifact or command")
		}
	default:
		add("runtime must be %q, %q or %q, got %q", KindWasm, KindProcess, KindHTTP, s.Runtime)
	}
	if s.Runtime != KindHTTP && (len(s.Headers) > 0 || len(s.SecretHeaders) > 0 || s.Warmup != "") {
		add("headers, secretHeaders and warmup apply to http functions only")
	}
	for _, name := range s.Permissions.HostEnv {
		if !HostEnvAllowed(name) {
			add("permissions.hostEnv: %s is Baton's own variable and is never passed to functions", name)
		}
	}
	if s.Runtime != KindWasm && len(s.Permissions.Dirs) > 0 {
		add("permissions.dirs apply to wasm functions only")
	}
	if _, _, err := ParseKeepAlive(s.KeepAlive); s.KeepAlive != "" && err != nil {
		add("%v", err)
	}
	if s.Limits.Memory < 0 || s.Limits.Timeout < 0 || s.Limits.MaxInstances < 0 || s.Limits.MaxQueue < 0 {
		add("limits must not be negative")
	}
	if s.Limits.Memory > 4<<30 {
		add("limits.memory must be at most 4GiB (a wasm32 address space)")
	}
	if s.Limits.Memory != 0 && s.Limits.Memory < 64<<10 {
		add("limits.memory must be at least 64KiB (one wasm page)")
	}
	if len(errs) == 0 {
		return nil
	}
	p := problem.Validation("invalid function spec: %s", strings.Join(errs, "; "))
	p.Errors = errs
	return p
}

// Duration is a time.Duration written as a Go duration string ("30s") in
// JSON; plain numbers are read as seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration must be a string like \"30s\" or a number of seconds: %w", err)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// ParseBytes reads a size such as "128MiB", "64Mi", "1G" or "65536": the
// form the CLI's --memory flag takes.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := byteUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative number", s)
	}
	return int64(v * float64(mult)), nil
}

// specForStore is the spec as written into store.Function.Spec: identity
// and deployment time live in the store's own columns.
func specForStore(s *Spec) ([]byte, error) {
	c := *s
	// The store keeps the namespace in its own column.
	c.CreatedAt, c.Namespace = time.Time{}, ""
	return json.Marshal(&c)
}
