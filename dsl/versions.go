package dsl

import (
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A document is read against the DSL version it declares. The 1.0.x
// releases of the schema (serverlessworkflow/specification, the schema
// whose $id names each version) differ in what matters here as follows:
//
//   - up to 1.0.2, run.shell.arguments and run.script.arguments are maps
//     (their descriptions say "a list", their type says object); 1.0.3 makes
//     them lists of strings passed as argv, and adds stdin to shell, script
//     and container, and arguments and pullPolicy to container;
//   - 1.0.1 adds the a2a and mcp calls and durations computed by runtime
//     expressions (1.0.0 has only literal durations); 1.0.2 renames the
//     schema and changes nothing else.
//
// Additions are accepted in every 1.0.x document, as every runtime that
// reads the newer schema does; only the arguments, whose meaning changed,
// depend on the declared version. Both forms are read as they were meant:
// a list is argv, a map is the older named arguments (see NamedArguments).

// NamedArgumentsKey is where a 1.0.0-1.0.2 `arguments` map stands in a
// RunTask's Spec once read: a list of [name, value] pairs in document
// order, so that executors keep the order the map was written in.
const NamedArgumentsKey = "baton.namedArguments"

// listArgumentsSince is the first DSL version whose process arguments are
// a list of strings.
var listArgumentsSince = [3]int{1, 0, 3}

// versionNumbers reads major.minor.patch from a semantic version; a
// pre-release (1.0.0-alpha5) counts as before its release.
func versionNumbers(v string) (nums [3]int, pre bool, ok bool) {
	core, _, _ := strings.Cut(v, "+")
	core, preTag, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return nums, false, false
	}
	for i, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nums, false, false
		}
		nums[i] = n
	}
	return nums, hasPre && preTag != "", true
}

// versionBefore reports whether the declared version v comes before want.
// An unreadable version (reported elsewhere) counts as the newest.
func versionBefore(v string, want [3]int) bool {
	nums, pre, ok := versionNumbers(v)
	if !ok {
		return false
	}
	for i := range nums {
		if nums[i] != want[i] {
			return nums[i] < want[i]
		}
	}
	return pre
}

// mapArgumentsAllowed reports whether the document's DSL version reads
// process arguments as a map.
func (p *parser) mapArgumentsAllowed() bool {
	return versionBefore(p.dsl, listArgumentsSince)
}

// jsIdentifier is what a named script argument must be for the script to
// see it as a variable.
var jsIdentifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// processArguments checks a process's arguments: a list of strings in
// every version, or a map in documents before 1.0.3. It returns the map's
// entries as [name, value] pairs in document order, nil for a list.
func (p *parser) processArguments(n *yaml.Node, at path, kind string) []any {
	r := resolve(n)
	if r == nil || r.Kind != yaml.MappingNode || kind == "container" {
		p.stringList(n, at)
		return nil
	}
	if !p.mapArgumentsAllowed() {
		p.errorf(n, at, "arguments must be a list of strings since DSL 1.0.3 (this document declares %s); a map of named arguments was valid up to 1.0.2", p.dsl)
		return nil
	}
	entries, ok := p.mapping(r, at)
	if !ok {
		return nil
	}
	pairs := make([]any, 0, len(entries))
	for _, e := range entries {
		eat := at.key(e.key)
		if kind == "script" && !jsIdentifier.MatchString(e.key) {
			p.errorf(e.keyNode, eat, "named argument %q must be an identifier: the script sees it as a variable of that name", e.key)
			continue
		}
		pairs = append(pairs, []any{e.key, p.data(e.val, eat)})
	}
	return pairs
}
