package policy

import (
	"fmt"
	"net/http"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// runCapability maps a `run` task's kind to the capability it needs;
// `run: workflow` needs none.
var runCapability = map[string]string{
	"shell":     CapShell,
	"script":    CapScript,
	"container": CapContainer,
}

// RunCapability returns the capability a `run` kind needs, or "" for none.
func RunCapability(kind string) string { return runCapability[kind] }

// CheckRun refuses a `run` task of a kind the policy does not allow.
func (e *Effective) CheckRun(kind string) *problem.Problem {
	if c := runCapability[kind]; c != "" && !e.Allows(c) {
		return CapabilityProblem("capability run."+kind, c, e.Namespace)
	}
	return nil
}

// CheckWorkflow refuses a workflow that has a task the policy does not
// allow, naming the first one found. It runs when a workflow is applied;
// the engine checks again when each task runs, so that a policy tightened
// later applies to workflows applied before.
func (e *Effective) CheckWorkflow(def *dsl.Workflow) *problem.Problem {
	var found *problem.Problem
	var walk func(dsl.TaskList)
	walk = func(list dsl.TaskList) {
		for _, nt := range list {
			if found != nil || nt == nil || nt.Task == nil {
				return
			}
			t := nt.Task
			if t.Run != nil {
				if p := e.CheckRun(t.Run.Kind); p != nil {
					c := *p
					c.Detail = fmt.Sprintf("task %s (%s): %s", nt.Name, t.Ref, p.Detail)
					found = &c
					return
				}
			}
			walk(t.Do)
			if t.For != nil {
				walk(t.For.Do)
			}
			if t.Fork != nil {
				walk(t.Fork.Branches)
			}
			if t.Listen != nil && t.Listen.Foreach != nil {
				walk(t.Listen.Foreach.Do)
			}
			if t.Try != nil {
				walk(t.Try.Try)
				if t.Try.Catch != nil {
					walk(t.Try.Catch.Do)
				}
			}
		}
	}
	walk(def.Do)
	return found
}

// CheckFunction refuses a function spec that needs a capability the
// policy does not allow: a process function, host directories or host
// environment variables.
func (e *Effective) CheckFunction(spec *function.Spec) *problem.Problem {
	what := "function " + spec.Name
	switch {
	case spec.Runtime == function.KindProcess && !e.Allows(CapProcessFunctions):
		return CapabilityProblem("process "+what, CapProcessFunctions, e.Namespace)
	case len(spec.Permissions.Dirs) > 0 && !e.Allows(CapWasmDirs):
		return CapabilityProblem(what+" with host directories (permissions.dirs)", CapWasmDirs, e.Namespace)
	case len(spec.Permissions.HostEnv) > 0 && !e.Allows(CapHostEnv):
		return CapabilityProblem(what+" with host environment variables (permissions.hostEnv)", CapHostEnv, e.Namespace)
	}
	return nil
}

// CheckFunctionBudget refuses deploying spec when the memory its pool may
// hold (memory × instances), added to that of the newest version of every
// other deployed function, exceeds the server's budget. deployed is every
// stored version; only the newest of each name counts, because that is
// the version calls go to.
func CheckFunctionBudget(deployed []*function.Spec, spec *function.Spec, budget int64) *problem.Problem {
	if budget <= 0 {
		return nil
	}
	newest := map[string]*function.Spec{}
	for _, s := range deployed {
		if old := newest[s.Name]; old == nil || !s.CreatedAt.Before(old.CreatedAt) {
			newest[s.Name] = s
		}
	}
	newest[spec.Name] = spec
	var total float64 // float: memory × instances can overflow int64
	for _, s := range newest {
		total += float64(s.EffectiveMemory()) * float64(s.EffectiveMaxInstances())
	}
	if total <= float64(budget) {
		return nil
	}
	own := float64(spec.EffectiveMemory()) * float64(spec.EffectiveMaxInstances())
	return LimitProblem(http.StatusForbidden, "--function-memory-budget",
		"function %s needs %s (memory %s × %d instances), which with the functions deployed (%s in all) exceeds the server's function memory budget of %s",
		spec.Name, bytesText(own), bytesText(float64(spec.EffectiveMemory())), spec.EffectiveMaxInstances(),
		bytesText(total), bytesText(float64(budget)))
}

func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if n == float64(int64(n)) {
		return fmt.Sprintf("%d%s", int64(n), units[i])
	}
	return fmt.Sprintf("%.1f%s", n, units[i])
}
