// Package dsl is the Serverless Workflow DSL 1.0 model: the types a workflow
// document parses into, the parser that reads YAML or JSON with line and
// column positions, and the validator that reports every problem at once.
//
// The model keeps two views of a document. Typed fields drive execution; the
// Raw fields keep the parsed document as plain JSON data (map[string]any,
// []any, string, float64, bool, nil) because the DSL exposes definitions to
// runtime expressions ($workflow.definition, $task.definition) and because
// call arguments (`with`) are data with expressions inside, evaluated at run
// time.
package dsl

import "time"

// Pos is a position in a source document. Line and Col are 1-based.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Workflow is a parsed DSL 1.0 document.
type Workflow struct {
	Document Document
	Input    *Input
	Use      *Use
	Do       TaskList
	Timeout  *Timeout // resolved: a reference to use.timeouts is replaced by its value
	Output   *Output
	Schedule *Schedule
	Evaluate *Evaluate

	// Raw is the whole document as plain JSON data.
	Raw map[string]any
	// Source is the file name the document came from, for error messages.
	Source string
}

// Document is the workflow's identity and metadata.
type Document struct {
	DSL       string
	Namespace string
	Name      string
	Version   string
	Title     string
	Summary   string
	Tags      map[string]string
	Metadata  map[string]any
}

// Evaluate configures runtime expressions.
type Evaluate struct {
	Language string // "jq" (the default and the only one supported)
	Mode     string // "strict" (default) or "loose"
}

// Use holds the workflow's reusable components.
type Use struct {
	Authentications map[string]any
	Errors          map[string]*ErrorDef
	Retries         map[string]*RetryPolicy
	Timeouts        map[string]*Timeout
	Functions       map[string]*Task
	Secrets         []string
	Catalogs        map[string]any
	Extensions      []map[string]any
}

// Schedule configures when the workflow starts on its own.
type Schedule struct {
	Every *Duration
	Cron  string
	After *Duration
	On    map[string]any // event consumption strategy, kept as data
}

// Input configures the transformation (and schema) of an input.
type Input struct {
	Schema *Schema
	From   any // a runtime expression string or data with expressions inside
}

// Output configures the transformation (and schema) of an output.
type Output struct {
	Schema *Schema
	As     any // a runtime expression string or data with expressions inside
}

// Export configures how a task's output updates the workflow context.
type Export struct {
	Schema *Schema
	As     any
}

// Timeout is a limit on how long a workflow or task may run.
type Timeout struct {
	After Duration
}

// Duration is a DSL duration: either fields (days, hours, ...) or an ISO 8601
// string, both already converted to D, or a runtime expression (Expr) that
// computes one of those when the task runs; D is zero then.
type Duration struct {
	D    time.Duration
	Expr string
}

// IsExpr reports whether the duration is computed when the task runs.
func (d *Duration) IsExpr() bool { return d != nil && d.Expr != "" }

// TaskList is an ordered list of named tasks (`do`, `try`, `fork.branches`...).
type TaskList []*NamedTask

// NamedTask is one entry of a task list.
type NamedTask struct {
	Name string
	Task *Task
}

// Index returns the position of the task with the given name, or -1.
func (l TaskList) Index(name string) int {
	for i, t := range l {
		if t.Name == name {
			return i
		}
	}
	return -1
}

// Kind names a task type.
type Kind string

const (
	KindCall   Kind = "call"
	KindDo     Kind = "do"
	KindEmit   Kind = "emit"
	KindFor    Kind = "for"
	KindFork   Kind = "fork"
	KindListen Kind = "listen"
	KindRaise  Kind = "raise"
	KindRun    Kind = "run"
	KindSet    Kind = "set"
	KindSwitch Kind = "switch"
	KindTry    Kind = "try"
	KindWait   Kind = "wait"
)

// Flow directives for Task.Then and SwitchCase.Then; any other value names a
// task in the same list.
const (
	FlowContinue = "continue"
	FlowExit     = "exit"
	FlowEnd      = "end"
)

// Task is one task of any kind. Kind says which of the kind-specific fields
// is set.
type Task struct {
	Kind Kind
	// Ref is the task's JSON pointer in the document, e.g. "/do/1/getPet".
	Ref string
	// Pos is where the task's definition starts in the source.
	Pos Pos

	// Properties common to every task.
	If       string // runtime expression; "" when absent
	Input    *Input
	Output   *Output
	Export   *Export
	Timeout  *Timeout // resolved from use.timeouts when given by name
	Then     string   // "" means continue
	Metadata map[string]any

	Call   *CallTask
	Do     TaskList
	Emit   *EmitTask
	For    *ForTask
	Fork   *ForkTask
	Listen *ListenTask
	Raise  *RaiseTask
	Run    *RunTask
	Set    any // map with expressions inside, or a runtime expression string
	Switch []*SwitchCase
	Try    *TryTask
	Wait   *Duration
	Graph  *GraphTask // KindGraph only: see graph.go

	// Raw is the task's definition (what stands under its name) as plain
	// JSON data.
	Raw map[string]any
}

// CallTask is `call` with its `with` arguments kept as data: they may hold
// runtime expressions and are evaluated when the task runs.
type CallTask struct {
	// Function is what `call` names: "http", "grpc", "openapi", "asyncapi",
	// "a2a", "mcp", a function of use.functions, or a Baton function.
	Function string
	With     map[string]any
}

// EmitTask is `emit`.
type EmitTask struct {
	Event map[string]any // emit.event.with, as data
}

// ForTask is `for` with its optional `while`.
type ForTask struct {
	Each  string // variable for the item; defaults to "item"
	In    string // runtime expression producing the collection
	At    string // variable for the index; defaults to "index"
	While string // runtime expression; "" when absent
	Do    TaskList
}

// ForkTask is `fork`.
type ForkTask struct {
	Branches TaskList
	Compete  bool
}

// ListenTask is `listen` with its task-level `foreach`. The consumption
// strategy (`to`) is kept as data: its filters are matched against events
// by the engine's event layer, not evaluated by the core.
type ListenTask struct {
	To      map[string]any
	Read    string // data (default), envelope or raw
	Foreach *SubscriptionIterator
}

// SubscriptionIterator processes each consumed event (or message) as it
// arrives: `do` runs with the event as its input and the event bound to
// Item (index to At); output.as and export.as apply per event.
type SubscriptionIterator struct {
	Item   string // defaults to "item"
	At     string // defaults to "index"
	Do     TaskList
	Output *Output
	Export *Export
}

// RaiseTask is `raise`.
type RaiseTask struct {
	Error *ErrorDef // resolved from use.errors when given by name
}

// RunTask is `run`, with the process kind and its definition kept as data.
type RunTask struct {
	Kind   string // container, script, shell or workflow
	Spec   map[string]any
	Await  *bool
	Return string // stdout (default), stderr, code, all, none
}

// SwitchCase is one case of `switch`.
type SwitchCase struct {
	Name string
	When string // runtime expression; "" for the default case
	Then string
}

// TryTask is `try` with its `catch`.
type TryTask struct {
	Try   TaskList
	Catch *Catch
}

// Catch configures which errors a try catches and what it does with them.
type Catch struct {
	Errors     *ErrorFilter
	As         string // variable name; defaults to "error"
	When       string
	ExceptWhen string
	Retry      *RetryPolicy // resolved from use.retries when given by name
	Do         TaskList
}

// ErrorFilter matches errors by their properties; unset fields match anything.
type ErrorFilter struct {
	Type     string
	Status   int
	Instance string
	Title    string
	Detail   string
}

// ErrorDef is an error to raise. Title and Detail (and Type) may be runtime
// expressions.
type ErrorDef struct {
	Type     string
	Status   int
	Instance string
	Title    string
	Detail   string
}

// RetryPolicy says when and how often to retry a failed try block.
type RetryPolicy struct {
	When       string
	ExceptWhen string
	Delay      *Duration
	Backoff    Backoff
	Limit      RetryLimit
	Jitter     *Jitter
}

// Backoff is how the delay grows between attempts.
type Backoff string

const (
	BackoffConstant    Backoff = "constant"
	BackoffLinear      Backoff = "linear"
	BackoffExponential Backoff = "exponential"
)

// RetryLimit bounds retries. Zero values mean no limit.
type RetryLimit struct {
	// AttemptCount is the number of retries after the first attempt
	// (count 2: run, retry, retry, then fault), the way sdk-java, Synapse
	// and lemline read limit.attempt.count; nil means no limit.
	AttemptCount *int
	// AttemptDuration bounds each single attempt.
	AttemptDuration *Duration
	// Duration bounds the whole retrying, from the first attempt on.
	Duration *Duration
}

// Jitter adds a random duration in [From, To] to each delay.
type Jitter struct {
	From Duration
	To   Duration
}
