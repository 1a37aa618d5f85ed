package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// containerExecutor runs `run: container` through a container engine's
// command line (docker, podman: both take the same `run` flags).
type containerExecutor struct {
	runtime string
	base    context.Context
	log     *slog.Logger
}

func (x *containerExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	if x.runtime == "" {
		return CallResult{}, problem.Configuration(
			"run.container: no container runtime is configured: put podman or docker on PATH, or name one with baton's --container-runtime flag or $BATON_CONTAINER_RUNTIME")
	}
	runtime, err := exec.LookPath(x.runtime)
	if err != nil {
		return CallResult{}, problem.Configuration("run.container: the configured container runtime %q cannot be run: %v", x.runtime, err)
	}
	run, err := parseRunArgs("container", req.Args)
	if err != nil {
		return CallResult{}, err
	}
	var workflowName, namespace string
	if req.Workflow != nil {
		workflowName, namespace = req.Workflow.Document.Name, req.Workflow.Document.Namespace
	}
	c, err := containerCommand(run.spec, defaultContainerName(workflowName, namespace, req.Name))
	if err != nil {
		return CallResult{}, err
	}
	p := &process{argv: append([]string{runtime}, c.args...), env: c.env, stdin: c.stdin}
	if c.removeAfter > 0 {
		x.scheduleRemoval(runtime, c.name, c.removeAfter)
	}
	return runProcessTask(ctx, x.base, x.log, req, "container "+c.name, p, run)
}

// scheduleRemoval deletes a container kept with `cleanup: eventually`
// once its time is up. The schedule lives in memory: an engine that stops
// first leaves the container for the operator.
func (x *containerExecutor) scheduleRemoval(runtime, name string, after time.Duration) {
	base := x.base
	if base == nil {
		base = context.Background()
	}
	time.AfterFunc(after, func() {
		if base.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(base, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, runtime, "rm", "-f", name).CombinedOutput()
		if err != nil {
			x.log.Warn("cannot remove container", "container", name, "err", err, "output", strings.TrimSpace(string(out)))
		}
	})
}

// containerRun is a `<runtime> run` command line built from the task.
type containerRun struct {
	name        string
	args        []string // after the runtime's own name
	env         map[string]string
	stdin       *string
	removeAfter time.Duration
}

// defaultContainerName follows the DSL's recommended convention,
// {workflow.name}-{uuid}.{workflow.namespace}-{task.name}, reduced to the
// characters container engines accept.
func defaultContainerName(workflowName, namespace, task string) string {
	raw := fmt.Sprintf("%s-%s.%s-%s", workflowName, uuid.NewString(), namespace, task)
	var b strings.Builder
	for _, r := range raw {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	return strings.TrimLeft(b.String(), "_.-")
}

// containerCommand builds the `run` arguments. Environment values are not
// put on the command line, where any user of the host could read them:
// `-e NAME` makes the runtime copy each from its own environment.
func containerCommand(spec map[string]any, defaultName string) (*containerRun, error) {
	image, ok := spec["image"].(string)
	if !ok || image == "" {
		return nil, problem.Configuration("run.container: image must be a non-empty string")
	}
	args, env, stdin, err := processArgs("container", spec)
	if err != nil {
		return nil, err
	}
	c := &containerRun{name: defaultName, env: env, stdin: stdin}
	if n, ok := spec["name"].(string); ok && n != "" {
		c.name = n
	}
	c.args = []string{"run"}
	keep, removeAfter, err := containerLifetime(spec["lifetime"])
	if err != nil {
		return nil, err
	}
	if !keep {
		c.args = append(c.args, "--rm")
	}
	c.removeAfter = removeAfter
	c.args = append(c.args, "--name", c.name)
	if stdin != nil {
		c.args = append(c.args, "-i")
	}
	if policy, ok := spec["pullPolicy"].(string); ok {
		flag, known := map[string]string{"ifNotPresent": "missing", "always": "always", "never": "never"}[policy]
		if !known {
			return nil, problem.Configuration("run.container: pullPolicy %q is not one of ifNotPresent, always, never", policy)
		}
		c.args = append(c.args, "--pull="+flag)
	}
	for _, name := range sortedKeys(env) {
		c.args = append(c.args, "-e", name)
	}
	for _, m := range []struct{ key, flag string }{{"ports", "-p"}, {"volumes", "-v"}} {
		mappings, err := hostMappings(m.key, spec[m.key])
		if err != nil {
			return nil, err
		}
		for _, mapping := range mappings {
			c.args = append(c.args, m.flag, mapping)
		}
	}
	if command, ok := spec["command"].(string); ok && command != "" {
		// The command is shell text (the DSL's examples read stdin with
		// $(cat) and arguments as $1 $2), so a shell runs it.
		c.args = append(c.args, "--entrypoint", "/bin/sh", image, "-c", command, "sh")
	} else {
		c.args = append(c.args, image)
	}
	c.args = append(c.args, args...)
	return c, nil
}

// containerLifetime reads `lifetime`. Without one the container is removed
// when it exits: a workflow engine that leaves every finished container
// behind would fill its host, so Baton departs from the DSL's default of
// `never` here and keeps containers only when asked.
func containerLifetime(v any) (keep bool, removeAfter time.Duration, err error) {
	if v == nil {
		return false, 0, nil
	}
	lt, ok := v.(map[string]any)
	if !ok {
		return false, 0, problem.Configuration("run.container: lifetime must be an object")
	}
	switch lt["cleanup"] {
	case "always":
		return false, 0, nil
	case "never":
		return true, 0, nil
	case "eventually":
		d, err := durationData(lt["after"])
		if err != nil || d <= 0 {
			return false, 0, problem.Configuration("run.container: lifetime.after must be a positive duration when cleanup is eventually")
		}
		return true, d, nil
	}
	return false, 0, problem.Configuration("run.container: lifetime.cleanup %v is not one of always, never, eventually", lt["cleanup"])
}

// durationData reads a DSL duration kept as data: an object of units or
// an ISO 8601 string.
func durationData(v any) (time.Duration, error) {
	switch d := v.(type) {
	case map[string]any:
		var total time.Duration
		for unit, scale := range map[string]time.Duration{
			"days": 24 * time.Hour, "hours": time.Hour, "minutes": time.Minute,
			"seconds": time.Second, "milliseconds": time.Millisecond,
		} {
			if n, ok := d[unit].(float64); ok {
				total += time.Duration(n * float64(scale))
			}
		}
		return total, nil
	case string:
		return dsl.ParseISODuration(d)
	}
	return 0, fmt.Errorf("not a duration: %T", v)
}

// hostMappings turns `ports` or `volumes` ({host: container}) into the
// runtime's host:container flags, in a stable order.
func hostMappings(key string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, problem.Configuration("run.container: %s must be an object mapping host to container", key)
	}
	out := make([]string, 0, len(m))
	for _, host := range sortedKeys(m) {
		target, ok := scalarText(m[host])
		if !ok || target == "" {
			return nil, problem.Configuration("run.container: %s.%s must be a string or number", key, host)
		}
		out = append(out, host+":"+target)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
