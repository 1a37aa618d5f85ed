// Package policy holds what a namespace is allowed to do on a Baton
// server: which capabilities its workflows and functions may use (shell
// commands, scripts, containers, process functions, host directories and
// host environment), where their calls may connect (egress), the limits
// that bound their resources, and how long finished invocations are kept.
//
// A server has defaults for all of it (its flags); a namespace's policy
// document overrides some of them. Resolve merges the two into an
// Effective policy, which is what the engine, the API and the function
// layer consult.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
)

// Problem types of policy refusals.
const (
	// TypeCapability is a capability the namespace's policy does not
	// allow (HTTP 403).
	TypeCapability = "https://batonflow.dev/problems/capability-not-allowed"
	// TypeLimit is a limit that was reached: too many running
	// invocations (429), a payload too large (413), a subflow too deep,
	// a history too long, a script that ran too long.
	TypeLimit = "https://batonflow.dev/problems/limit-exceeded"
	// TypeEgress is a connection the egress policy refused; it is a
	// communication error for the workflow that made the call.
	TypeEgress = problem.TypeCommunication
)

// Capability names, as written in policy documents and in
// --allow-capabilities.
const (
	CapShell            = "shell"
	CapScript           = "script"
	CapContainer        = "container"
	CapProcessFunctions = "processFunctions"
	CapWasmDirs         = "wasmDirs"
	CapHostEnv          = "hostEnv"
)

// AllCapabilities lists every capability name, in documentation order.
var AllCapabilities = []string{CapShell, CapScript, CapContainer, CapProcessFunctions, CapWasmDirs, CapHostEnv}

// Default limits of a server that sets none.
const (
	DefaultSubflowDepth       = 10
	DefaultRunningInvocations = 10000
	DefaultHistoryEvents      = 25000
	DefaultInputBytes         = 4 << 20
	DefaultOutputBytes        = 4 << 20
	DefaultScriptTimeout      = 5 * time.Minute
	DefaultRetention          = 30 * 24 * time.Hour
	// DefaultFunctionMemoryBudget is the server-wide budget of function
	// memory × instances.
	DefaultFunctionMemoryBudget = 64 << 30
)

// Default expression limits: expr.DefaultLimits, which leave honest
// expressions far from every bound.
var (
	DefaultExpressionSteps = expr.DefaultLimits.Steps
	DefaultExpressionBytes = int64(expr.DefaultLimits.Bytes)
	DefaultExpressionItems = expr.DefaultLimits.Items
)

// Policy is a policy document: a namespace's overrides of the server's
// defaults, or (with every field set) the defaults themselves. A nil field
// inherits.
type Policy struct {
	Capabilities Capabilities `json:"capabilities,omitzero"`
	Egress       Egress       `json:"egress,omitzero"`
	Limits       Limits       `json:"limits,omitzero"`
	// Retention is how long finished invocations and their histories are
	// kept after they end.
	Retention *Duration `json:"retention,omitempty"`
	// QoS is how the namespace's work is scheduled (see package qos).
	QoS QoS `json:"qos,omitzero"`
}

// QoS is a namespace's share of the server and its quotas. Its running
// cap is limits.runningInvocations.
type QoS struct {
	// Weight is the namespace's share of its class against the other
	// namespaces' (default 1; 0.001 to 1000).
	Weight *float64 `json:"weight,omitempty"`
	// Rate caps the workflow starts per second across the server's
	// replicas (0: no cap); Burst is how many may come at once (default
	// the rate rounded up).
	Rate  *float64 `json:"rate,omitempty"`
	Burst *int     `json:"burst,omitempty"`
	// DefaultClass is the class of workflows whose document names none
	// (default standard); Classes the classes its starts may have
	// (default critical, standard and batch).
	DefaultClass *string  `json:"defaultClass,omitempty"`
	Classes      []string `json:"classes,omitempty"`
}

// Capabilities says which host-reaching features are allowed.
type Capabilities struct {
	Shell            *bool `json:"shell,omitempty"`
	Script           *bool `json:"script,omitempty"`
	Container        *bool `json:"container,omitempty"`
	ProcessFunctions *bool `json:"processFunctions,omitempty"`
	WasmDirs         *bool `json:"wasmDirs,omitempty"`
	HostEnv          *bool `json:"hostEnv,omitempty"`
}

func (c *Capabilities) field(name string) **bool {
	switch name {
	case CapShell:
		return &c.Shell
	case CapScript:
		return &c.Script
	case CapContainer:
		return &c.Container
	case CapProcessFunctions:
		return &c.ProcessFunctions
	case CapWasmDirs:
		return &c.WasmDirs
	case CapHostEnv:
		return &c.HostEnv
	}
	return nil
}

// Egress lists where calls may connect. A namespace's lists are consulted
// before the server's; see Guard for the order of the rules.
type Egress struct {
	// Allow and Deny hold host names ("api.example.com", "*.example.com"),
	// IP addresses and CIDR blocks ("10.0.0.0/8", "fd00::/8"), or the
	// keywords "loopback", "private", "link-local", "metadata" and
	// "baton" (this server's own API address).
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
	// Default is "allow" or "deny": what happens to a destination that
	// no rule names.
	Default string `json:"default,omitempty"`
}

// Limits bound a namespace's resources. Zero or nil inherits.
type Limits struct {
	// SubflowDepth is how deep `run: workflow` may nest below a root.
	SubflowDepth *int `json:"subflowDepth,omitempty"`
	// RunningInvocations caps the invocations of the namespace running at
	// once on a server.
	RunningInvocations *int `json:"runningInvocations,omitempty"`
	// HistoryEvents caps one invocation's history.
	HistoryEvents *int `json:"historyEvents,omitempty"`
	// InputBytes and OutputBytes cap an invocation's input and output,
	// as JSON.
	InputBytes  *int64 `json:"inputBytes,omitempty"`
	OutputBytes *int64 `json:"outputBytes,omitempty"`
	// ScriptTimeout bounds one `run: script` execution.
	ScriptTimeout *Duration `json:"scriptTimeout,omitempty"`
	// ExpressionSteps, ExpressionBytes and ExpressionItems bound one
	// evaluation of a jq expression (see expr.Limits): the work it does,
	// the longest string and the longest array or object it builds.
	ExpressionSteps *int64 `json:"expressionSteps,omitempty"`
	ExpressionBytes *int64 `json:"expressionBytes,omitempty"`
	ExpressionItems *int   `json:"expressionItems,omitempty"`
}

// Duration is a time.Duration written as a string: Go's syntax ("90s",
// "12h") plus whole days ("30d").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return json.Marshal(strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d")
	}
	return json.Marshal(td.String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90s\", \"12h\" or \"30d\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads "30d" as 30 days and anything else as Go's
// time.ParseDuration does.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("duration %q: want a whole number of days such as \"30d\"", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return v, nil
}

// Decode reads a policy document (JSON), refusing unknown fields so that
// a misspelt setting is not silently ignored, and validates it.
func Decode(data []byte) (*Policy, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy document: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy document: more than one JSON value")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate reports every error of a document at once.
func (p *Policy) Validate() error {
	var errs []string
	for _, rule := range p.Egress.Allow {
		if _, err := parseRule(rule); err != nil {
			errs = append(errs, "egress.allow: "+err.Error())
		}
	}
	for _, rule := range p.Egress.Deny {
		if _, err := parseRule(rule); err != nil {
			errs = append(errs, "egress.deny: "+err.Error())
		}
	}
	if d := p.Egress.Default; d != "" && d != "allow" && d != "deny" {
		errs = append(errs, fmt.Sprintf("egress.default %q: use allow or deny", d))
	}
	l := p.Limits
	positive := func(name string, v *int) {
		if v != nil && *v <= 0 {
			errs = append(errs, "limits."+name+" must be positive")
		}
	}
	positive("subflowDepth", l.SubflowDepth)
	positive("runningInvocations", l.RunningInvocations)
	positive("historyEvents", l.HistoryEvents)
	positive("expressionItems", l.ExpressionItems)
	if l.HistoryEvents != nil && *l.HistoryEvents < 3 {
		errs = append(errs, "limits.historyEvents must be at least 3")
	}
	for name, v := range map[string]*int64{
		"inputBytes": l.InputBytes, "outputBytes": l.OutputBytes,
		"expressionSteps": l.ExpressionSteps, "expressionBytes": l.ExpressionBytes,
	} {
		if v != nil && *v <= 0 {
			errs = append(errs, "limits."+name+" must be positive")
		}
	}
	if l.ScriptTimeout != nil && *l.ScriptTimeout <= 0 {
		errs = append(errs, "limits.scriptTimeout must be positive")
	}
	if p.Retention != nil && *p.Retention < Duration(time.Second) {
		errs = append(errs, "retention must be at least 1s")
	}
	errs = append(errs, p.QoS.validate()...)
	if len(errs) == 0 {
		return nil
	}
	sort.Strings(errs)
	pr := problem.Validation("invalid policy: %s", strings.Join(errs, "; "))
	pr.Errors = errs
	return pr
}

// ParseCapabilities reads a comma-separated list of capability names (or
// "all", or "none") into a Capabilities with every field set.
func ParseCapabilities(list string) (Capabilities, error) {
	var c Capabilities
	all := false
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "", "none":
			continue
		case "all":
			all = true
			continue
		}
		f := c.field(name)
		if f == nil {
			return c, fmt.Errorf("unknown capability %q: use %s, all or none", name, strings.Join(AllCapabilities, ", "))
		}
		*f = ptr(true)
	}
	for _, name := range AllCapabilities {
		if f := c.field(name); *f == nil {
			*f = ptr(all)
		}
	}
	return c, nil
}

func ptr[T any](v T) *T { return &v }

// Effective is a namespace's policy with the server's defaults applied:
// every setting has a value.
type Effective struct {
	Namespace    string
	Capabilities map[string]bool
	Egress       *Guard
	Limits       EffectiveLimits
	Retention    time.Duration
	QoS          EffectiveQoS
}

// EffectiveQoS is QoS with every value set.
type EffectiveQoS struct {
	Weight       float64
	Rate         float64
	Burst        int
	DefaultClass qos.Class
	// Classes are the allowed classes.
	Classes []qos.Class
}

// EffectiveLimits are Limits with every value set.
type EffectiveLimits struct {
	SubflowDepth       int           `json:"subflowDepth"`
	RunningInvocations int           `json:"runningInvocations"`
	HistoryEvents      int           `json:"historyEvents"`
	InputBytes         int64         `json:"inputBytes"`
	OutputBytes        int64         `json:"outputBytes"`
	ScriptTimeout      time.Duration `json:"-"`
	ExpressionSteps    int64         `json:"expressionSteps"`
	ExpressionBytes    int64         `json:"expressionBytes"`
	ExpressionItems    int           `json:"expressionItems"`
}

// Expression returns the expression limits as package expr takes them,
// each naming its policy setting so that an expression stopped by one
// says which to raise. Time, a safety net rather than a policy, is left
// to the evaluator's default.
func (l EffectiveLimits) Expression() expr.Limits {
	return expr.Limits{
		Steps: l.ExpressionSteps,
		Bytes: int(min(l.ExpressionBytes, math.MaxInt)),
		Items: l.ExpressionItems,
		Settings: expr.LimitSettings{
			Steps: "policy limits.expressionSteps",
			Bytes: "policy limits.expressionBytes",
			Items: "policy limits.expressionItems",
		},
	}
}

// Allows reports whether a capability is allowed.
func (e *Effective) Allows(capability string) bool { return e.Capabilities[capability] }

// Document is the effective policy written as a complete policy document,
// for GET /v1/namespaces/{ns}/policy.
func (e *Effective) Document() *Policy {
	var p Policy
	for _, name := range AllCapabilities {
		*p.Capabilities.field(name) = ptr(e.Capabilities[name])
	}
	p.Egress = e.Egress.document()
	l := e.Limits
	p.Limits = Limits{
		SubflowDepth: ptr(l.SubflowDepth), RunningInvocations: ptr(l.RunningInvocations),
		HistoryEvents: ptr(l.HistoryEvents), InputBytes: ptr(l.InputBytes), OutputBytes: ptr(l.OutputBytes),
		ScriptTimeout:   ptr(Duration(l.ScriptTimeout)),
		ExpressionSteps: ptr(l.ExpressionSteps), ExpressionBytes: ptr(l.ExpressionBytes), ExpressionItems: ptr(l.ExpressionItems),
	}
	p.Retention = ptr(Duration(e.Retention))
	q := e.QoS
	p.QoS = QoS{Weight: ptr(q.Weight), Rate: ptr(q.Rate), Burst: ptr(q.Burst), DefaultClass: ptr(q.DefaultClass.String())}
	for _, c := range q.Classes {
		p.QoS.Classes = append(p.QoS.Classes, c.String())
	}
	return &p
}

// Server is a server's defaults and the facts about the server that
// policies refer to.
type Server struct {
	// Defaults apply to every namespace that does not override them.
	Defaults Policy
	// Self is the server's own API addresses (host:port), denied to
	// egress unless a rule allows "baton".
	Self []string
	// FunctionMemoryBudget caps the sum, over deployed functions, of
	// memory × instances (see CheckFunctionBudget); zero means no cap.
	FunctionMemoryBudget int64
}

// Resolve merges a namespace's document (nil for none) over the server's
// defaults.
func (s *Server) Resolve(namespace string, ns *Policy) (*Effective, error) {
	if ns == nil {
		ns = &Policy{}
	}
	d := &s.Defaults
	e := &Effective{Namespace: namespace, Capabilities: make(map[string]bool, len(AllCapabilities))}
	for _, name := range AllCapabilities {
		if v := *ns.Capabilities.field(name); v != nil {
			e.Capabilities[name] = *v
		} else if v := *d.Capabilities.field(name); v != nil {
			e.Capabilities[name] = *v
		}
	}
	e.Limits = EffectiveLimits{
		SubflowDepth:       pick(ns.Limits.SubflowDepth, d.Limits.SubflowDepth, DefaultSubflowDepth),
		RunningInvocations: pick(ns.Limits.RunningInvocations, d.Limits.RunningInvocations, DefaultRunningInvocations),
		HistoryEvents:      pick(ns.Limits.HistoryEvents, d.Limits.HistoryEvents, DefaultHistoryEvents),
		InputBytes:         pick(ns.Limits.InputBytes, d.Limits.InputBytes, DefaultInputBytes),
		OutputBytes:        pick(ns.Limits.OutputBytes, d.Limits.OutputBytes, DefaultOutputBytes),
		ScriptTimeout:      time.Duration(pick(ns.Limits.ScriptTimeout, d.Limits.ScriptTimeout, Duration(DefaultScriptTimeout))),
		ExpressionSteps:    pick(ns.Limits.ExpressionSteps, d.Limits.ExpressionSteps, DefaultExpressionSteps),
		ExpressionBytes:    pick(ns.Limits.ExpressionBytes, d.Limits.ExpressionBytes, DefaultExpressionBytes),
		ExpressionItems:    pick(ns.Limits.ExpressionItems, d.Limits.ExpressionItems, DefaultExpressionItems),
	}
	e.Retention = time.Duration(pick(ns.Retention, d.Retention, Duration(DefaultRetention)))
	e.QoS = resolveQoS(&ns.QoS, &d.QoS)
	g, err := newGuard(namespace, ns.Egress, d.Egress, s.Self)
	if err != nil {
		return nil, err
	}
	e.Egress = g
	return e, nil
}

// pick is a namespace's own setting, else the server's default, else
// Baton's built-in value.
func pick[T any](own, serverDefault *T, builtin T) T {
	switch {
	case own != nil:
		return *own
	case serverDefault != nil:
		return *serverDefault
	}
	return builtin
}

// Unrestricted is the policy of a local `baton run`: the user's own
// process with the user's own privileges, so every capability is allowed;
// the default limits and egress rules (no link-local or metadata
// addresses) still apply.
func Unrestricted() *Effective {
	caps, _ := ParseCapabilities("all")
	s := &Server{Defaults: Policy{Capabilities: caps}}
	e, err := s.Resolve("", nil)
	if err != nil {
		panic(err) // the defaults are constants
	}
	return e
}

// CapabilityProblem is the refusal of a capability: a 403 naming the
// setting that would allow it.
func CapabilityProblem(what, capability, namespace string) *problem.Problem {
	return problem.Newf(TypeCapability, http.StatusForbidden, "Capability Not Allowed",
		"%s is not allowed in namespace %s (policy capabilities.%s)", what, nsName(namespace), capability)
}

// LimitProblem is a limit reached; setting names it ("limits.subflowDepth").
func LimitProblem(status int, setting, format string, args ...any) *problem.Problem {
	return problem.Newf(TypeLimit, status, "Limit Exceeded", "%s (policy %s)", fmt.Sprintf(format, args...), setting)
}

func nsName(namespace string) string {
	if namespace == "" {
		return "(none)"
	}
	return namespace
}
