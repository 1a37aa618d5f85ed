package dsl

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/expr"
)

// builtinCalls are the functions the DSL defines; their `with` is required
// and has a known shape.
var builtinCalls = []string{"asyncapi", "grpc", "http", "openapi", "a2a", "mcp"}

// BuiltinCall tells whether `call: name` names a function the DSL defines.
func BuiltinCall(name string) bool { return contains(builtinCalls, name) }

// call reads `call` and `with`. A name that is neither built in nor in
// use.functions is a cataloged function or a function registered with
// Baton, which are resolved at deploy time.
func (p *parser) call(o object, at path) *CallTask {
	c := &CallTask{}
	cn, cat, _ := o.get("call")
	name, ok := p.str(cn, cat)
	if !ok {
		return c
	}
	if strings.TrimSpace(name) == "" {
		p.errorf(cn, cat, "the function name must not be empty")
		return c
	}
	c.Function = name
	wn, wat, hasWith := o.get("with")
	builtin := contains(builtinCalls, name)
	if !hasWith {
		if builtin {
			o.require("with")
		}
		return c
	}
	if !isMap(wn) {
		p.errorf(wn, wat, "expected a map of arguments, got %s", describe(wn))
		return c
	}
	p.dataExprs(wn, wat)
	c.With = p.mapData(wn, wat)
	switch name {
	case "http":
		p.httpArgs(wn, wat)
	case "openapi":
		p.openAPIArgs(wn, wat)
	case "grpc":
		p.grpcArgs(wn, wat)
	case "asyncapi":
		p.asyncAPIArgs(wn, wat)
	case "a2a":
		p.a2aArgs(wn, wat)
	case "mcp":
		p.mcpArgs(wn, wat)
	}
	return c
}

var httpMethod = regexp.MustCompile(`^[A-Za-z]+$`)

func (p *parser) httpArgs(n *yaml.Node, at path) {
	o := p.object(n, at, "method", "endpoint", "headers", "body", "query", "output", "redirect")
	o.require("method", "endpoint")
	if s, sn := o.str("method"); isString(sn) && !expr.IsExpr(s) && !httpMethod.MatchString(s) {
		p.errorf(sn, at.key("method"), "%q is not an HTTP method", s)
	}
	if en, eat, ok := o.get("endpoint"); ok {
		p.endpoint(en, eat)
	}
	for _, key := range []string{"headers", "query"} {
		if vn, vat, ok := o.get(key); ok {
			p.stringMapOrExpr(vn, vat)
		}
	}
	o.enum("output", "raw", "content", "response")
	if rn, rat, ok := o.get("redirect"); ok {
		p.boolean(rn, rat)
	}
}

// stringMapOrExpr checks headers and query parameters: a map of scalars or
// a runtime expression producing one.
func (p *parser) stringMapOrExpr(n *yaml.Node, at path) {
	if isString(n) && expr.IsExpr(resolve(n).Value) {
		return
	}
	entries, ok := p.mapping(n, at)
	if !ok {
		return
	}
	for _, e := range entries {
		if e.val == nil || e.val.Kind != yaml.ScalarNode {
			p.errorf(e.val, at.key(e.key), "expected a string, got %s", describe(e.val))
		}
	}
}

var outputModes = []string{"raw", "content", "response"}

func (p *parser) openAPIArgs(n *yaml.Node, at path) {
	o := p.object(n, at, "document", "operationId", "parameters", "authentication", "output", "redirect")
	o.require("document", "operationId")
	if dn, dat, ok := o.get("document"); ok {
		p.externalResource(dn, dat)
	}
	o.str("operationId")
	if pn, pat, ok := o.get("parameters"); ok {
		p.mapData(pn, pat)
	}
	if an, aat, ok := o.get("authentication"); ok {
		p.referenceableAuthentication(an, aat)
	}
	o.enum("output", outputModes...)
	if rn, rat, ok := o.get("redirect"); ok {
		p.boolean(rn, rat)
	}
}

func (p *parser) grpcArgs(n *yaml.Node, at path) {
	o := p.object(n, at, "proto", "service", "method", "arguments")
	o.require("proto", "service", "method")
	if pn, pat, ok := o.get("proto"); ok {
		p.externalResource(pn, pat)
	}
	if sn, sat, ok := o.get("service"); ok {
		so := p.object(sn, sat, "name", "host", "port", "authentication")
		so.require("name", "host")
		so.str("name")
		so.str("host")
		if pn, pat, ok := so.get("port"); ok {
			if port, ok := p.integer(pn, pat); ok && (port < 0 || port > 65535) {
				p.errorf(pn, pat, "port %d is out of range (0-65535)", port)
			}
		}
		if an, aat, ok := so.get("authentication"); ok {
			p.referenceableAuthentication(an, aat)
		}
	}
	o.str("method")
	if an, aat, ok := o.get("arguments"); ok {
		p.mapData(an, aat)
	}
}

var asyncAPIProtocols = []string{"amqp", "amqp1", "anypointmq", "googlepubsub", "http", "ibmmq", "jms", "kafka", "mercure", "mqtt", "mqtt5", "nats", "pulsar", "redis", "sns", "solace", "sqs", "stomp", "ws"}

func (p *parser) asyncAPIArgs(n *yaml.Node, at path) {
	o := p.object(n, at, "document", "channel", "operation", "server", "protocol", "message", "subscription", "authentication")
	if !o.ok {
		return
	}
	o.require("document")
	o.requireOne("operation", "channel")
	o.requireOne("message", "subscription")
	if dn, dat, ok := o.get("document"); ok {
		p.externalResource(dn, dat)
	}
	o.str("operation")
	o.str("channel")
	if sn, sat, ok := o.get("server"); ok {
		so := p.object(sn, sat, "name", "variables")
		so.require("name")
		so.str("name")
		if vn, vat, ok := so.get("variables"); ok {
			p.mapData(vn, vat)
		}
	}
	o.enum("protocol", asyncAPIProtocols...)
	if mn, mat, ok := o.get("message"); ok {
		mo := p.object(mn, mat, "payload", "headers")
		for _, k := range []string{"payload", "headers"} {
			if vn, vat, ok := mo.get(k); ok {
				p.mapData(vn, vat)
			}
		}
	}
	if sn, sat, ok := o.get("subscription"); ok {
		so := p.object(sn, sat, "filter", "consume", "foreach")
		if fn, fat, ok := so.get("filter"); ok {
			p.exprField(fn, fat)
		}
		if so.require("consume") {
			cn, cat, _ := so.get("consume")
			co := p.object(cn, cat, "for", "amount", "while", "until")
			switch co.requireOne("amount", "while", "until") {
			case "amount":
				an, aat, _ := co.get("amount")
				if v, ok := p.integer(an, aat); ok && v < 0 {
					p.errorf(an, aat, "the amount cannot be negative")
				}
			case "while", "until":
				key := "while"
				if co.has("until") {
					key = "until"
				}
				wn, wat, _ := co.get(key)
				p.exprField(wn, wat)
			}
			if fn, fat, ok := co.get("for"); ok {
				p.duration(fn, fat)
			}
		}
		if fn, fat, ok := so.get("foreach"); ok {
			// Tasks run per consumed message are validated like any
			// other; the call keeps them as data.
			p.subscriptionIterator(fn, fat, "")
		}
	}
	if an, aat, ok := o.get("authentication"); ok {
		p.referenceableAuthentication(an, aat)
	}
}

var a2aMethods = []string{"message/send", "message/stream", "tasks/get", "tasks/list", "tasks/cancel", "tasks/resubscribe", "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete", "agent/getAuthenticatedExtendedCard"}

func (p *parser) a2aArgs(n *yaml.Node, at path) {
	o := p.object(n, at, "agentCard", "server", "method", "parameters")
	if o.require("method") {
		o.enum("method", a2aMethods...)
	}
	if an, aat, ok := o.get("agentCard"); ok {
		p.externalResource(an, aat)
	}
	if sn, sat, ok := o.get("server"); ok {
		p.endpoint(sn, sat)
	}
	if pn, pat, ok := o.get("parameters"); ok && !isString(pn) && !isMap(pn) {
		p.errorf(pn, pat, "expected a map or a runtime expression, got %s", describe(pn))
	}
}

var mcpMethods = []string{"tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/read", "resources/templates/list"}

// mcpArgs checks an MCP call; the schema leaves its arguments open to
// additions, so unknown properties are kept.
func (p *parser) mcpArgs(n *yaml.Node, at path) {
	o := p.openObject(n, at)
	if o.require("method") {
		o.enum("method", mcpMethods...)
	}
	o.str("protocolVersion")
	if pn, pat, ok := o.get("parameters"); ok && !isString(pn) && !isMap(pn) {
		p.errorf(pn, pat, "expected a map or a runtime expression, got %s", describe(pn))
	}
	if tn, tat, ok := o.get("timeout"); ok {
		p.duration(tn, tat)
	}
	if o.require("transport") {
		tn, tat, _ := o.get("transport")
		to := p.openObject(tn, tat)
		switch to.requireOne("http", "stdio") {
		case "http":
			hn, hat, _ := to.get("http")
			if ho := p.openObject(hn, hat); ho.require("endpoint") {
				en, eat, _ := ho.get("endpoint")
				p.endpoint(en, eat)
			}
		case "stdio":
			sn, sat, _ := to.get("stdio")
			so := p.openObject(sn, sat)
			if so.require("command") {
				so.str("command")
			}
			if an, aat, ok := so.get("arguments"); ok {
				p.stringList(an, aat)
			}
		}
	}
	if cn, cat, ok := o.get("client"); ok {
		co := p.openObject(cn, cat)
		if co.require("name") {
			co.str("name")
		}
	}
}

func (p *parser) run(n *yaml.Node, at path) *RunTask {
	r := &RunTask{Return: "stdout"}
	o := p.object(n, at, "await", "return", "container", "script", "shell", "workflow")
	if !o.ok {
		return r
	}
	if an, aat, ok := o.get("await"); ok {
		if b, ok := p.boolean(an, aat); ok {
			r.Await = &b
		}
	}
	if o.has("return") {
		r.Return = o.enum("return", "stdout", "stderr", "code", "all", "none")
	}
	r.Kind = o.requireOne("container", "script", "shell", "workflow")
	if r.Kind == "" {
		return r
	}
	sn, sat, _ := o.get(r.Kind)
	var named []any
	switch r.Kind {
	case "container":
		p.container(sn, sat)
	case "script":
		named = p.script(sn, sat)
	case "shell":
		so := p.object(sn, sat, "command", "stdin", "arguments", "environment")
		if so.require("command") {
			so.str("command")
		}
		named = p.processIO(so, "shell")
	case "workflow":
		// The schema requires version, the reference gives it a default
		// of "latest"; the default wins.
		wo := p.object(sn, sat, "namespace", "name", "version", "input")
		wo.require("namespace", "name")
		for _, k := range []string{"namespace", "name", "version"} {
			wo.str(k)
		}
		if in, iat, ok := wo.get("input"); ok {
			p.mapData(in, iat)
		}
	}
	p.dataExprs(sn, sat)
	r.Spec = p.mapData(sn, sat)
	if named != nil && r.Spec != nil {
		delete(r.Spec, "arguments")
		r.Spec[NamedArgumentsKey] = named
	}
	return r
}

func (p *parser) container(n *yaml.Node, at path) {
	o := p.object(n, at, "image", "name", "command", "ports", "volumes", "environment", "stdin", "arguments", "lifetime", "pullPolicy")
	if o.require("image") {
		o.str("image")
	}
	o.str("name")
	o.str("command")
	for _, k := range []string{"ports", "volumes"} {
		if vn, vat, ok := o.get(k); ok {
			p.mapData(vn, vat)
		}
	}
	p.processIO(o, "container")
	o.enum("pullPolicy", "ifNotPresent", "always", "never")
	if ln, lat, ok := o.get("lifetime"); ok {
		lo := p.object(ln, lat, "cleanup", "after")
		if lo.require("cleanup") {
			cleanup := lo.enum("cleanup", "always", "never", "eventually")
			an, aat, hasAfter := lo.get("after")
			switch {
			case cleanup == "eventually" && !hasAfter:
				p.errorf(lo.node, lat, `missing required property "after" (cleanup is "eventually")`)
			case cleanup != "eventually" && cleanup != "" && hasAfter:
				p.errorf(lo.fields["after"].keyNode, lat, `"after" applies only when cleanup is "eventually"`)
			case hasAfter:
				p.duration(an, aat)
			}
		}
	}
}

func (p *parser) script(n *yaml.Node, at path) []any {
	o := p.object(n, at, "language", "code", "source", "stdin", "arguments", "environment")
	if o.require("language") {
		o.str("language")
	}
	switch o.requireOne("code", "source") {
	case "code":
		o.str("code")
	case "source":
		sn, sat, _ := o.get("source")
		p.externalResource(sn, sat)
	}
	return p.processIO(o, "script")
}

// processIO checks the stdin, arguments and environment every process kind
// shares. It returns the named arguments of a pre-1.0.3 document, if any.
func (p *parser) processIO(o object, kind string) []any {
	o.str("stdin")
	var named []any
	if an, aat, ok := o.get("arguments"); ok {
		named = p.processArguments(an, aat, kind)
	}
	if en, eat, ok := o.get("environment"); ok {
		p.mapData(en, eat)
	}
	return named
}
