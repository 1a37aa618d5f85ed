package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
)

// deployedFunctions is what validate knows of a function registry: the
// deployed functions' versions by namespace and name, read the first time
// a document of the namespace asks, or why it could not read them.
type deployedFunctions struct {
	where  string // "on http://…" or "in DIR", for messages
	cmd    *cobra.Command
	target functionTarget
	byNS   map[string]*namespaceFunctions
	// unavailable is why no namespace can be read at all.
	unavailable error
	told        bool // the unavailable warning has been given
}

// namespaceFunctions are one namespace's deployed functions.
type namespaceFunctions struct {
	versions    map[string]map[string]bool
	unavailable error
	told        bool
}

// functionsOf reads the registry that --data or --server names; nil when
// neither is given.
func functionsOf(cmd *cobra.Command, t *functionTarget) *deployedFunctions {
	d := &deployedFunctions{cmd: cmd, target: *t, byNS: map[string]*namespaceFunctions{}}
	switch {
	case t.data != "":
		d.where = "in " + t.data
		// Validate only reads: it must not create a data directory.
		if _, err := os.Stat(filepath.Join(t.data, databaseFile)); err != nil {
			d.unavailable = fmt.Errorf("%s holds no %s", t.data, databaseFile)
		}
		return d
	case t.server.url != "":
		d.where = "on " + t.server.url
		return d
	}
	return nil
}

// in returns a namespace's functions: a workflow calls its own
// namespace's, never another's.
func (d *deployedFunctions) in(namespace string) *namespaceFunctions {
	if namespace == "" {
		namespace = function.DefaultNamespace
	}
	if nf := d.byNS[namespace]; nf != nil {
		return nf
	}
	nf := &namespaceFunctions{}
	d.byNS[namespace] = nf
	t := d.target
	t.namespace = namespace
	b, err := t.open(d.cmd.Context(), io.Discard)
	if err != nil {
		nf.unavailable = err
		return nf
	}
	items, err := b.list(d.cmd.Context())
	if err = errors.Join(err, b.close()); err != nil {
		nf.unavailable = err
		return nf
	}
	nf.versions = make(map[string]map[string]bool, len(items))
	for _, fn := range items {
		vs := make(map[string]bool, len(fn.Versions))
		for _, v := range fn.Versions {
			vs[v] = true
		}
		nf.versions[fn.Name] = vs
	}
	return nf
}

// check warns about each call in wf of a Baton function that is not
// deployed (or not in the version it pins with NAME@VERSION).
func (d *deployedFunctions) check(file string, wf *dsl.Workflow) []finding {
	if d == nil {
		return nil
	}
	if d.unavailable != nil {
		if d.told {
			return nil
		}
		d.told = true
		return []finding{{File: file, Severity: severityWarning,
			Message: "cannot check the called functions: " + oneLine(d.unavailable.Error())}}
	}
	nf := d.in(wf.Document.Namespace)
	if nf.unavailable != nil {
		if nf.told {
			return nil
		}
		nf.told = true
		return []finding{{File: file, Severity: severityWarning,
			Message: "cannot check the called functions" + nsNote(wf.Document.Namespace) + ": " + oneLine(nf.unavailable.Error())}}
	}
	var found []finding
	var walk func(tasks dsl.TaskList)
	walk = func(tasks dsl.TaskList) {
		for _, nt := range tasks {
			t := nt.Task
			if t == nil {
				continue
			}
			if t.Call != nil {
				if msg := d.missing(wf, nf, t.Call.Function); msg != "" {
					found = append(found, finding{File: file, Line: t.Pos.Line, Column: t.Pos.Col,
						Path: pointerPath(t.Ref) + ".call", Message: msg, Severity: severityWarning})
				}
			}
			walk(t.Do)
			if t.For != nil {
				walk(t.For.Do)
			}
			if t.Fork != nil {
				walk(t.Fork.Branches)
			}
			if t.Try != nil {
				walk(t.Try.Try)
				if t.Try.Catch != nil {
					walk(t.Try.Catch.Do)
				}
			}
		}
	}
	walk(wf.Do)
	return found
}

// missing says why `call: name` would find no deployed function, or ""
// when it would (or names no Baton function: a built-in, one of
// use.functions, or a catalog's NAME:VERSION@CATALOG).
func (d *deployedFunctions) missing(wf *dsl.Workflow, nf *namespaceFunctions, name string) string {
	if dsl.BuiltinCall(name) || strings.Contains(name, ":") {
		return ""
	}
	if wf.Use != nil {
		if _, defined := wf.Use.Functions[name]; defined {
			return ""
		}
	}
	fn, version, pinned := strings.Cut(name, "@")
	versions, ok := nf.versions[fn]
	// Outside the default namespace the messages say which one: a
	// function deployed in another is as good as none.
	where, deploy := d.where, "baton fn deploy "+fn
	if ns := wf.Document.Namespace; ns != "" && ns != function.DefaultNamespace {
		where, deploy = "in namespace "+ns+" "+d.where, deploy+" -n "+ns
	}
	switch {
	case !ok:
		return fmt.Sprintf("function %q is not deployed %s; deploy it with `%s` before running", fn, where, deploy)
	case pinned && !versions[version]:
		return fmt.Sprintf("function %q has no version %q deployed %s", fn, version, where)
	}
	return ""
}

// nsNote names a namespace other than the default one in a message.
func nsNote(ns string) string {
	if ns == "" || ns == function.DefaultNamespace {
		return ""
	}
	return " of namespace " + ns
}

// pointerPath renders a task's JSON pointer (/do/1/getPet) the way the
// parser's messages locate things (do[1].getPet).
func pointerPath(ref string) string {
	var b strings.Builder
	for _, seg := range strings.Split(strings.TrimPrefix(ref, "/"), "/") {
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
