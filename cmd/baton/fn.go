package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// functionTarget is where the fn commands act: a server (the default) or,
// with --data, the embedded store of a data directory, the one `baton run`
// uses.
type functionTarget struct {
	server *remote
	data   string
	// namespace is the namespace the functions belong to, whose policy a
	// server checks deploys and calls against; "" is the default one.
	namespace string
}

// functionBackend is what the fn commands need, from a server or from a
// data directory.
type functionBackend interface {
	// deploy deploys spec; a wasm function's module is the file at module.
	deploy(ctx context.Context, spec function.Spec, module string) (*api.FunctionRef, error)
	list(ctx context.Context) ([]api.FunctionSummary, error)
	get(ctx context.Context, name, version string) (*api.Function, error)
	remove(ctx context.Context, name, version string) error
	invoke(ctx context.Context, name, version string, input json.RawMessage) (*api.FunctionResult, error)
	close() error
}

func (t *functionTarget) open(ctx context.Context, stderr io.Writer) (functionBackend, error) {
	if t.data == "" {
		c, err := t.server.client()
		if err != nil {
			return nil, err
		}
		if t.namespace != "" {
			c = c.WithNamespace(t.namespace)
		}
		return remoteFunctions{c}, nil
	}
	ns := t.namespace
	if ns == "" {
		ns = function.DefaultNamespace
	}
	if !policy.ValidNamespace(ns) {
		return nil, fmt.Errorf("namespace %q is not a valid name", ns)
	}
	l, err := openLocalFunctions(ctx, t.data, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return nil, err
	}
	l.namespace = ns
	return l, nil
}

type remoteFunctions struct{ c *client.Client }

func (r remoteFunctions) deploy(ctx context.Context, spec function.Spec, module string) (*api.FunctionRef, error) {
	if module != "" {
		return r.c.DeployModule(ctx, spec, module)
	}
	return r.c.DeployFunction(ctx, spec)
}

func (r remoteFunctions) list(ctx context.Context) ([]api.FunctionSummary, error) {
	return r.c.ListFunctions(ctx)
}

func (r remoteFunctions) get(ctx context.Context, name, version string) (*api.Function, error) {
	return r.c.GetFunction(ctx, name, version)
}

func (r remoteFunctions) remove(ctx context.Context, name, version string) error {
	return r.c.DeleteFunction(ctx, name, version)
}

func (r remoteFunctions) invoke(ctx context.Context, name, version string, input json.RawMessage) (*api.FunctionResult, error) {
	return r.c.InvokeFunction(ctx, name, version, input)
}

func (remoteFunctions) close() error { return nil }

// localFunctions is the function layer of a data directory, run inside the
// command: its instances live as long as the command, so every local
// invoke is a cold start.
type localFunctions struct {
	store *openedStore
	host  *functionHost
	// namespace is the one the commands act in.
	namespace string
}

func openLocalFunctions(ctx context.Context, dir string, logger *slog.Logger) (*localFunctions, error) {
	st, err := openStore(ctx, storeTarget{dataDir: dir}, "fn", logger)
	if err != nil {
		return nil, err
	}
	secrets, err := openSecrets(st, "")
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	host, err := openFunctionHost(ctx, st, secrets, logger, prewarmConfig{}, functionSecurity{})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &localFunctions{store: st, host: host}, nil
}

func (l *localFunctions) deploy(ctx context.Context, spec function.Spec, module string) (*api.FunctionRef, error) {
	if module != "" {
		spec.Artifact = module
	}
	spec.Namespace = l.namespace
	deployed, err := l.host.Deploy(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &api.FunctionRef{Namespace: deployed.Namespace, Name: deployed.Name, Version: deployed.Version}, nil
}

func (l *localFunctions) list(ctx context.Context) ([]api.FunctionSummary, error) {
	specs, err := l.host.List(ctx, l.namespace)
	if err != nil {
		return nil, err
	}
	return api.FunctionSummaries(specs), nil
}

func (l *localFunctions) get(ctx context.Context, name, version string) (*api.Function, error) {
	spec, err := l.host.Get(ctx, l.namespace, name, version)
	if err != nil {
		return nil, err
	}
	all, err := l.host.List(ctx, l.namespace)
	if err != nil {
		return nil, err
	}
	ref := function.Qualify(l.namespace, name)
	return api.FunctionView(spec, all, l.host.Instances(ref), l.host.Events(ref)), nil
}

func (l *localFunctions) remove(ctx context.Context, name, version string) error {
	return l.host.Delete(ctx, l.namespace, name, version)
}

func (l *localFunctions) invoke(ctx context.Context, name, version string, input json.RawMessage) (*api.FunctionResult, error) {
	target := name
	if version != "" {
		target = name + "@" + version
	}
	if input == nil {
		input = json.RawMessage("null")
	}
	res, err := l.host.Invoke(ctx, function.Qualify(l.namespace, target), input)
	if err != nil {
		return nil, err
	}
	out := api.FunctionResultOf(res)
	return &out, nil
}

func (l *localFunctions) close() error {
	return errors.Join(l.host.Close(), l.store.Close())
}

// run sets cmd's RunE: it checks the -o format (when the command has one),
// opens the target, calls do with it and releases it.
func (t *functionTarget) run(cmd *cobra.Command, out *outputFlag, do func(ctx context.Context, b functionBackend, args []string) error) {
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if out != nil {
			if err := out.validate(); err != nil {
				return err
			}
		}
		backend, err := t.open(cmd.Context(), cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		return errors.Join(do(cmd.Context(), backend, args), backend.close())
	})
}

// functionNotFound rewords a missing function the same way for a server and a data
// directory.
func functionNotFound(err error, name, version string) error {
	var p *problem.Problem
	if errors.Is(err, store.ErrNotFound) || (errors.As(err, &p) && p.Type == problem.TypeNotFound) {
		if version != "" {
			return fmt.Errorf("function %s version %s not found", name, version)
		}
		return fmt.Errorf("function %s not found", name)
	}
	return err
}

func newFunctionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "fn",
		Aliases: []string{"function"},
		Short:   "Build, deploy and call functions",
		Long: "Fn manages the functions Baton runs: WebAssembly modules (--wasm), executables kept\n" +
			"running between calls (--exec) and endpoints on other platforms (--url). Workflows call\n" +
			"them with `call: NAME`.\n\n" +
			"The commands act on a baton server (--server, $" + serverEnv + "), or, when --data is\n" +
			"given, on the database of that data directory directly: the one `baton run --data`\n" +
			"uses. A local invoke starts the function in the command's own process, so every\n" +
			"local call is a cold start; a server keeps instances warm between calls.",
		Args: cobra.NoArgs,
	}
	t := &functionTarget{server: addRemote(cmd)}
	cmd.PersistentFlags().StringVar(&t.data, "data", "", "act on the database of this data directory instead of a server")
	cmd.PersistentFlags().StringVarP(&t.namespace, "namespace", "n", "",
		"the namespace the functions belong to, whose policy a server checks deploys and calls against; workflows call their own namespace's functions (default: default)")
	cmd.AddCommand(
		newFunctionBuildCommand(),
		newFunctionDeployCommand(t),
		newFunctionListCommand(t),
		newFunctionGetCommand(t),
		newFunctionDeleteCommand(t),
		newFunctionInvokeCommand(t),
	)
	return cmd
}

func newFunctionBuildCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR [--out FILE.wasm]",
		Short: "Build a Go function into a WebAssembly module",
		Long: "Build compiles the Go main package in DIR for GOOS=wasip1 GOARCH=wasm: a package that\n" +
			"imports the SDK (" + function.SDKPackage + ") becomes a reactor whose\n" +
			"instance serves call after call, any other a WASI command run once per call. The go\n" +
			"command must be on PATH.",
		Example: "  baton fn build examples/functions/hello-go --out hello-go.wasm",
		Args:    cobra.ExactArgs(1),
	}
	// --out/-O names an output file, as in convert; -o is the output format
	// everywhere else. The old --output/-o still works, with a warning.
	cmd.Flags().StringVarP(&out, "out", "O", "", "the module to write (default DIR's name with .wasm, in the current directory)")
	// (cobra's MarkDeprecated would print its notice on stdout, among the
	// command's output; this one goes to stderr.)
	cmd.Flags().StringVarP(&out, "output", "o", "", "the module to write")
	if err := cmd.Flags().MarkHidden("output"); err != nil {
		panic(err)
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if cmd.Flags().Changed("output") {
			fmt.Fprintln(cmd.ErrOrStderr(), "baton: warning: fn build --output (-o) is deprecated: use --out (-O); -o is the output format of the other commands")
		}
		dir := args[0]
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("%s is not a directory holding a Go package", dir)
		}
		if out == "" {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			out = filepath.Base(abs) + ".wasm"
		}
		begin := time.Now()
		if err := function.BuildGo(cmd.Context(), dir, out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "built %s in %s\n", out, time.Since(begin).Round(time.Millisecond))
		return nil
	})
	return cmd
}

// deployFlags are the flags of fn deploy.
type deployFlags struct {
	wasm, exec, url string
	version         string
	memory          string
	timeout         time.Duration
	maxInstances    int
	maxQueue        int
	env, hostEnv    []string
	mounts          []string
	dir             string
	headers         []string
	secretHeaders   []string
	warmup          string
	keepAlive       string
}

func newFunctionDeployCommand(t *functionTarget) *cobra.Command {
	f := &deployFlags{}
	var (
		out    *outputFlag
		spec   function.Spec
		module string
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME (--wasm FILE | --exec \"CMD ARGS\" | --url URL)",
		Short: "Deploy a new version of a function",
		Long: "Deploy stores a new version of a function; calls go to the newest version. Deploying\n" +
			"the same thing twice returns the existing version.\n\n" +
			"  --wasm FILE       a WebAssembly module (see `baton fn build`); it is copied, so the\n" +
			"                    file may change afterwards\n" +
			"  --exec \"CMD ARGS\" an executable speaking JSON lines on stdin/stdout, started once and\n" +
			"                    kept running; split into words like a shell would (quotes, no\n" +
			"                    expansion) and run in --dir (default: the current directory)\n" +
			"  --url URL         an endpoint that takes the input as a POSTed JSON body\n\n" +
			"Process functions run on the machine of the server (or of this command with --data).",
		Example: "  baton fn deploy hello --wasm hello-go.wasm --memory 64MiB --timeout 5s\n" +
			"  baton fn deploy hello-py --exec \"python3 examples/functions/python/handler.py\"\n" +
			"  baton fn deploy resize --url http://gateway:8080/function/resize --secret-header Authorization=openfaas-token\n" +
			"  baton fn deploy hello --wasm hello-go.wasm --data ./data",
		Args: cobra.ExactArgs(1),
	}
	out = addOutputFlag(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.wasm, "wasm", "", "WebAssembly module of a wasm function")
	fl.StringVar(&f.exec, "exec", "", "command line of a process function")
	fl.StringVar(&f.url, "url", "", "endpoint of an http function")
	fl.StringVar(&f.version, "version", "", "version name (default the next number)")
	fl.StringVar(&f.memory, "memory", "", "memory limit of a wasm instance, e.g. 64MiB (default 128MiB)")
	fl.DurationVar(&f.timeout, "timeout", 0, "limit of one call, e.g. 5s (default 30s)")
	fl.IntVar(&f.maxInstances, "max-instances", 0, "instances running at once: the function's concurrency (default 10)")
	fl.IntVar(&f.maxQueue, "max-queue", 0, "calls waiting for an instance before more are refused (default no cap)")
	fl.StringVar(&f.keepAlive, "keep-alive", "", "keep-alive policy of this function's idle instances: on-demand, fixed, fixed:DURATION, hybrid, baton or baton+hybrid (default: the server's --keep-alive)")
	fl.StringArrayVar(&f.env, "env", nil, "K=V environment variable of the function (repeatable)")
	fl.StringArrayVar(&f.hostEnv, "host-env", nil, "host environment variable passed through by name (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "wasm: HOST:GUEST[:ro] directory the module may use (repeatable)")
	fl.StringVar(&f.dir, "dir", "", "process: working directory (default the current directory)")
	fl.StringArrayVar(&f.headers, "header", nil, "http: K=V header sent with every call (repeatable)")
	fl.StringArrayVar(&f.secretHeaders, "secret-header", nil, "http: K=SECRET header whose value is the named secret (repeatable)")
	fl.StringVar(&f.warmup, "warmup", "", "http: path or URL requested with GET when an instance starts")
	// The flags are checked before the target is opened: a mistake costs
	// no upload and no database.
	cmd.PreRunE = runE(func(cmd *cobra.Command, args []string) error {
		var err error
		spec, module, err = f.spec(cmd, args[0])
		return err
	})
	t.run(cmd, out, func(ctx context.Context, b functionBackend, args []string) error {
		ref, err := b.deploy(ctx, spec, module)
		if err != nil {
			return err
		}
		if out.format != formatTable {
			return out.print(cmd.OutOrStdout(), ref, nil)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "function %s version %s deployed\n", ref.Name, ref.Version)
		return err
	})
	return cmd
}

// spec builds the function spec from the flags; module is the wasm file to
// upload, if any.
func (f *deployFlags) spec(cmd *cobra.Command, name string) (spec function.Spec, module string, err error) {
	spec = function.Spec{Name: name, Version: f.version}
	given := 0
	for _, flag := range []string{"wasm", "exec", "url"} {
		if cmd.Flags().Changed(flag) {
			given++
		}
	}
	if given != 1 {
		return spec, "", errors.New("give exactly one of --wasm, --exec and --url")
	}
	switch {
	case f.wasm != "":
		spec.Runtime = function.KindWasm
		if _, err := os.Stat(f.wasm); err != nil {
			return spec, "", fmt.Errorf("--wasm: %w", readFailure(err))
		}
		module = f.wasm
	case f.exec != "":
		spec.Runtime = function.KindProcess
		words, err := splitCommandLine(f.exec)
		if err != nil {
			return spec, "", fmt.Errorf("--exec: %w", err)
		}
		spec.Command, spec.Args = words[0], words[1:]
		dir := f.dir
		if dir == "" {
			dir = "."
		}
		if spec.Dir, err = filepath.Abs(dir); err != nil {
			return spec, "", fmt.Errorf("--dir: %w", err)
		}
	default:
		spec.Runtime, spec.URL, spec.Warmup = function.KindHTTP, f.url, f.warmup
	}
	if f.dir != "" && spec.Runtime != function.KindProcess {
		return spec, "", errors.New("--dir applies to --exec functions only")
	}
	if f.warmup != "" && spec.Runtime != function.KindHTTP {
		return spec, "", errors.New("--warmup applies to --url functions only")
	}
	if f.memory != "" {
		if spec.Limits.Memory, err = function.ParseBytes(f.memory); err != nil {
			return spec, "", fmt.Errorf("--memory: %w", err)
		}
	}
	spec.Limits.Timeout = function.Duration(f.timeout)
	spec.Limits.MaxInstances = f.maxInstances
	spec.Limits.MaxQueue = f.maxQueue
	spec.KeepAlive = f.keepAlive
	if spec.Env, err = keyValues("--env", f.env); err != nil {
		return spec, "", err
	}
	if spec.Headers, err = keyValues("--header", f.headers); err != nil {
		return spec, "", err
	}
	if spec.SecretHeaders, err = keyValues("--secret-header", f.secretHeaders); err != nil {
		return spec, "", err
	}
	spec.Permissions.HostEnv = f.hostEnv
	for _, m := range f.mounts {
		grant, err := parseMount(m)
		if err != nil {
			return spec, "", err
		}
		spec.Permissions.Dirs = append(spec.Permissions.Dirs, grant)
	}
	// The registry validates again; checking here reports every mistake
	// before a module is uploaded. A wasm artifact is checked once stored.
	check := spec
	if check.Runtime == function.KindWasm {
		check.Artifact = module
	}
	if p := check.Validate(); p != nil {
		return spec, "", p
	}
	return spec, module, nil
}

// keyValues reads repeated K=V flags.
func keyValues(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, item)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: %q given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// parseMount reads HOST:GUEST[:ro]; the host directory is made absolute.
func parseMount(m string) (function.DirGrant, error) {
	parts := strings.Split(m, ":")
	var grant function.DirGrant
	switch {
	case len(parts) == 3 && parts[2] == "ro":
		grant.ReadOnly = true
	case len(parts) == 2:
	default:
		return grant, fmt.Errorf("--mount %q: want HOST:GUEST or HOST:GUEST:ro", m)
	}
	host, err := filepath.Abs(parts[0])
	if err != nil || parts[0] == "" || parts[1] == "" {
		return grant, fmt.Errorf("--mount %q: want HOST:GUEST or HOST:GUEST:ro", m)
	}
	grant.Host, grant.Guest = host, parts[1]
	return grant, nil
}

// splitCommandLine splits a command line into words the way a POSIX shell
// does, without any expansion: blanks separate words, single quotes keep
// everything literal, double quotes keep blanks, and a backslash escapes
// the next character (outside single quotes).
func splitCommandLine(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("unterminated quote or trailing backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("the command is empty")
	}
	return words, nil
}

func newFunctionListCommand(t *functionTarget) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List deployed functions",
		Example: "  baton fn list\n  baton fn list --data ./data -o json",
		Args:    cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	t.run(cmd, out, func(ctx context.Context, b functionBackend, args []string) error {
		items, err := b.list(ctx)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.FunctionList{Items: items}, func(w io.Writer) error {
			row(w, "NAME", "RUNTIME", "VERSION", "VERSIONS", "DEPLOYED")
			for _, fn := range items {
				row(w, fn.Name, string(fn.Runtime), fn.Version, strconv.Itoa(len(fn.Versions)), formatTime(fn.DeployedAt))
			}
			return nil
		})
	})
	return cmd
}

func newFunctionGetCommand(t *functionTarget) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a function version, its versions and its instances",
		Long: "Get shows a function's newest version (or --version): its spec, every deployed version,\n" +
			"and on a server its live instances and their recent lifecycle (created with the cold\n" +
			"start by phase, busy, idle, evicted).",
		Example: "  baton fn get hello\n  baton fn get hello --version 2 -o json",
		Args:    cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().StringVar(&version, "version", "", "version to show (default the newest)")
	t.run(cmd, out, func(ctx context.Context, b functionBackend, args []string) error {
		fn, err := b.get(ctx, args[0], version)
		if err != nil {
			return functionNotFound(err, args[0], version)
		}
		return out.print(cmd.OutOrStdout(), fn, functionTable(fn))
	})
	return cmd
}

func functionTable(fn *api.Function) func(io.Writer) error {
	return func(w io.Writer) error {
		s := fn.Spec
		row(w, "NAME", s.Name)
		row(w, "VERSION", s.Version)
		row(w, "VERSIONS", strings.Join(fn.Versions, ", "))
		row(w, "RUNTIME", string(s.Runtime))
		switch s.Runtime {
		case function.KindWasm:
			row(w, "MODULE", s.Artifact)
		case function.KindProcess:
			row(w, "COMMAND", strings.Join(append([]string{s.Command}, s.Args...), " "))
			row(w, "DIR", s.Dir)
		case function.KindHTTP:
			row(w, "URL", s.URL)
		}
		limits := fmt.Sprintf("timeout %s, max instances %d", s.EffectiveTimeout(), s.EffectiveMaxInstances())
		if s.Runtime == function.KindWasm {
			limits = fmt.Sprintf("memory %dMiB, ", s.EffectiveMemory()>>20) + limits
		}
		if s.Limits.MaxQueue > 0 {
			limits += fmt.Sprintf(", max queue %d", s.Limits.MaxQueue)
		}
		row(w, "LIMITS", limits)
		if s.KeepAlive != "" {
			row(w, "KEEP-ALIVE", s.KeepAlive)
		}
		if len(s.Env) > 0 {
			keys := make([]string, 0, len(s.Env))
			for k := range s.Env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			row(w, "ENV", strings.Join(keys, ", "))
		}
		row(w, "DEPLOYED", formatTime(s.CreatedAt))
		row(w, "INSTANCES", fmt.Sprintf("%d busy, %d idle", fn.Pool.ByState["busy"], fn.Pool.ByState["idle"]))
		for _, in := range fn.Pool.Instances {
			row(w, "  "+in.ID, fmt.Sprintf("%s, %d calls, cold start %s", in.State, in.Calls, coldStartLine(in.ColdStart)))
		}
		if len(fn.Pool.Events) > 0 {
			row(w, "EVENTS", "")
			for _, e := range fn.Pool.Events {
				detail := string(e.Kind) + " " + e.Instance
				switch {
				case e.ColdStart != nil:
					detail += ", cold start " + coldStartLine(*e.ColdStart)
				case e.Reason != "":
					detail += " (" + e.Reason + ")"
				}
				if e.Error != "" {
					detail += ": " + truncate(oneLine(e.Error), maxDetailWidth)
				}
				row(w, "  "+formatTime(e.Time), detail)
			}
		}
		return nil
	}
}

func coldStartLine(c api.ColdStart) string {
	return fmt.Sprintf("%.1fms (compile %.1fms, instantiate %.1fms, init %.1fms)", c.TotalMs, c.CompileMs, c.InstantiateMs, c.InitMs)
}

func newFunctionDeleteCommand(t *functionTarget) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a function, or one of its versions",
		Example: "  baton fn delete hello\n  baton fn delete hello --version 1",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&version, "version", "", "delete only this version (default every version)")
	t.run(cmd, nil, func(ctx context.Context, b functionBackend, args []string) error {
		if err := b.remove(ctx, args[0], version); err != nil {
			return functionNotFound(err, args[0], version)
		}
		if version != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "function %s version %s deleted\n", args[0], version)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "function %s deleted\n", args[0])
		}
		return nil
	})
	return cmd
}

func newFunctionInvokeCommand(t *functionTarget) *cobra.Command {
	var version, input string
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Call a function and print its output",
		Long: "Invoke calls a function with the input and prints its JSON output on stdout. With -o json\n" +
			"or -o yaml it prints the whole result: the output, whether the call was cold, the cold\n" +
			"start by phase (compile, instantiate, init), the duration, the instance and the version.\n" +
			"A failed call prints the error and exits 1.",
		Example: "  baton fn invoke hello --input '{\"name\": \"Ada\"}'\n" +
			"  baton fn invoke hello --input @input.json -o json\n" +
			"  baton fn invoke hello --data ./data --input '{}'",
		Args: cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().StringVar(&version, "version", "", "version to call (default the newest)")
	cmd.Flags().StringVar(&input, "input", "", "function input: JSON, or @FILE to read it from a file (@- for stdin)")
	var raw json.RawMessage
	cmd.PreRunE = runE(func(cmd *cobra.Command, args []string) error {
		var err error
		raw, err = readInput(input)
		return err
	})
	t.run(cmd, out, func(ctx context.Context, b functionBackend, args []string) error {
		res, err := b.invoke(ctx, args[0], version, raw)
		if err != nil {
			return functionNotFound(err, args[0], version)
		}
		if out.format == formatTable {
			var compact bytes.Buffer
			if err := json.Compact(&compact, res.Output); err != nil {
				return fmt.Errorf("the function's output is not JSON: %w", err)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), compact.String())
			return err
		}
		return out.print(cmd.OutOrStdout(), res, nil)
	})
	return cmd
}
