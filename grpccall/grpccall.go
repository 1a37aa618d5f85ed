// Package grpccall executes the Serverless Workflow DSL's `call: grpc`
// task: it finds the service's method in a proto file (file:// or http(s)://)
// or through the server's reflection service, turns the task's `arguments`
// into the request message with protojson, calls the method, and returns
// the response as JSON data.
package grpccall

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/telemetry"
)

// ReflectionScheme is the scheme of a `proto.endpoint` that asks the
// server for its descriptors instead of reading a proto file:
// `reflection://` asks the called service's own server, and
// `reflection://HOST:PORT` another one.
const ReflectionScheme = "reflection"

// maxProtoBytes bounds a proto file fetched over HTTP.
const maxProtoBytes = 8 << 20

// Client runs `call: grpc` tasks. Its zero value is usable; it keeps one
// connection per target and the descriptors of every proto source it has
// loaded, so Close it when done.
type Client struct {
	// HTTP fetches proto files given by http(s) URL; nil means
	// http.DefaultClient.
	HTTP *http.Client
	// Auth resolves the service's authentication policy into an
	// Authorization header; nil means a fresh httpcall.Client (without a
	// shared token cache).
	Auth *httpcall.Client
	// Logger receives a debug record per call; nil means slog.Default().
	Logger *slog.Logger
	// DialOptions are added to every connection (tests, custom TLS).
	DialOptions []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	protos map[string]*descriptors
	closed bool
	auth   *httpcall.Client
}

// Request is one execution of a `call: grpc` task.
type Request struct {
	// Args is the task's evaluated `with`: proto, service, method,
	// arguments.
	Args            map[string]any
	Authentications map[string]any
	Secrets         map[string]any
	Redact          func(string) string
}

type target struct {
	service string
	host    string
	port    int
	auth    any
	method  string
	proto   *url.URL
	args    map[string]any
}

func (t *target) address() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

func parseArgs(args map[string]any) (*target, *problem.Problem) {
	t := &target{}
	proto, ok := args["proto"].(map[string]any)
	if !ok {
		return nil, problem.Configuration("with.proto must be an external resource with an endpoint")
	}
	var raw string
	switch ep := proto["endpoint"].(type) {
	case string:
		raw = ep
	case map[string]any:
		raw, _ = ep["uri"].(string)
		if ep["authentication"] != nil {
			return nil, problem.Configuration("with.proto.endpoint: authenticated proto documents are not supported")
		}
	}
	if raw == "" {
		return nil, problem.Configuration("with.proto.endpoint must be a URI")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, problem.Configuration("with.proto.endpoint %q is not a URI: %v", raw, err)
	}
	switch u.Scheme {
	case "file", "http", "https", ReflectionScheme:
	default:
		return nil, problem.Configuration("with.proto.endpoint %q: use file://, http(s):// or %s://", raw, ReflectionScheme)
	}
	t.proto = u
	service, ok := args["service"].(map[string]any)
	if !ok {
		return nil, problem.Configuration("with.service must be an object with name, host and port")
	}
	if t.service, _ = service["name"].(string); t.service == "" {
		return nil, problem.Configuration("with.service.name must be a non-empty string")
	}
	if t.host, _ = service["host"].(string); t.host == "" {
		return nil, problem.Configuration("with.service.host must be a non-empty string")
	}
	switch p := service["port"].(type) {
	case nil:
		t.port = 443
	case float64:
		t.port = int(p)
	case int:
		t.port = p
	case string:
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, problem.Configuration("with.service.port %q is not a number", p)
		}
		t.port = n
	default:
		return nil, problem.Configuration("with.service.port must be a number")
	}
	if t.port <= 0 || t.port > 65535 {
		return nil, problem.Configuration("with.service.port %d is out of range", t.port)
	}
	t.auth = service["authentication"]
	if t.method, _ = args["method"].(string); t.method == "" {
		return nil, problem.Configuration("with.method must be a non-empty string")
	}
	if a, has := args["arguments"]; has && a != nil {
		if t.args, ok = a.(map[string]any); !ok {
			return nil, problem.Configuration("with.arguments must be an object")
		}
	}
	return t, nil
}

// Do runs the call and returns the response message as JSON data (a list
// of them for a server-streaming method), or the DSL error the call raised.
func (c *Client) Do(ctx context.Context, req Request) (any, *problem.Problem) {
	t, p := parseArgs(req.Args)
	if p != nil {
		return nil, p
	}
	conn, p := c.conn(ctx, t)
	if p != nil {
		return nil, p
	}
	authHeader, p := c.authClient().Authorization(ctx, t.auth, httpcall.Request{
		Authentications: req.Authentications, Secrets: req.Secrets, Redact: req.Redact,
	})
	if p != nil {
		return nil, p
	}
	if authHeader != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authHeader)
	}
	// The call joins the workflow's trace, as an HTTP call does.
	telemetry.InjectMap(ctx, func(k, v string) { ctx = metadata.AppendToOutgoingContext(ctx, k, v) })
	method, p := c.method(ctx, t, conn)
	if p != nil {
		return nil, p
	}
	if method.IsStreamingClient() {
		return nil, problem.Configuration("%s/%s streams requests; a workflow can call unary and server-streaming methods", t.service, t.method)
	}
	in := dynamicpb.NewMessage(method.Input())
	if t.args != nil {
		data, err := json.Marshal(t.args)
		if err != nil {
			return nil, problem.Configuration("with.arguments is not JSON data: %v", err)
		}
		if err := protojson.Unmarshal(data, in); err != nil {
			return nil, problem.Configuration("with.arguments do not fit %s: %v", method.Input().FullName(), err)
		}
	}
	fullMethod := "/" + string(method.Parent().FullName()) + "/" + string(method.Name())
	var out any
	if method.IsStreamingServer() {
		out, p = c.serverStream(ctx, conn, fullMethod, method, in)
	} else {
		resp := dynamicpb.NewMessage(method.Output())
		if err := conn.Invoke(ctx, fullMethod, in, resp); err != nil {
			return nil, statusProblem(ctx, t, err)
		}
		out, p = toJSON(resp)
	}
	if log := c.logger(); log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "grpc call", slog.String("target", t.address()), slog.String("method", fullMethod))
	}
	return out, p
}

func (c *Client) serverStream(ctx context.Context, conn *grpc.ClientConn, fullMethod string, method protoreflect.MethodDescriptor, in *dynamicpb.Message) (any, *problem.Problem) {
	t := &target{service: string(method.Parent().FullName()), method: string(method.Name())}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod)
	if err != nil {
		return nil, statusProblem(ctx, t, err)
	}
	if err := stream.SendMsg(in); err != nil {
		return nil, statusProblem(ctx, t, err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, statusProblem(ctx, t, err)
	}
	items := []any{}
	for {
		resp := dynamicpb.NewMessage(method.Output())
		err := stream.RecvMsg(resp)
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		if err != nil {
			return nil, statusProblem(ctx, t, err)
		}
		v, p := toJSON(resp)
		if p != nil {
			return nil, p
		}
		items = append(items, v)
	}
}

func toJSON(m *dynamicpb.Message) (any, *problem.Problem) {
	data, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, problem.Runtime("encoding the response %s as JSON: %v", m.Descriptor().FullName(), err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, problem.Runtime("decoding the response %s: %v", m.Descriptor().FullName(), err)
	}
	return v, nil
}

// statusProblem maps a gRPC status to the DSL error a workflow can catch:
// communication errors with the HTTP status that gRPC's own mapping gives,
// timeouts as timeouts, refused credentials as authentication errors.
func statusProblem(ctx context.Context, t *target, err error) *problem.Problem {
	st, _ := status.FromError(err)
	where := t.service + "/" + t.method
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded {
		return problem.Timeout("%s: no response before the deadline", where)
	}
	httpStatus := map[codes.Code]int{
		codes.Canceled:           499,
		codes.InvalidArgument:    http.StatusBadRequest,
		codes.NotFound:           http.StatusNotFound,
		codes.AlreadyExists:      http.StatusConflict,
		codes.PermissionDenied:   http.StatusForbidden,
		codes.ResourceExhausted:  http.StatusTooManyRequests,
		codes.FailedPrecondition: http.StatusBadRequest,
		codes.Aborted:            http.StatusConflict,
		codes.OutOfRange:         http.StatusBadRequest,
		codes.Unimplemented:      http.StatusNotImplemented,
		codes.Unavailable:        http.StatusServiceUnavailable,
		codes.Unauthenticated:    http.StatusUnauthorized,
	}[st.Code()]
	if httpStatus == 0 {
		httpStatus = http.StatusInternalServerError
	}
	detail := fmt.Sprintf("%s: %s: %s", where, st.Code(), st.Message())
	switch st.Code() {
	case codes.Unauthenticated:
		return problem.New(problem.TypeAuthentication, httpStatus, "Authentication Error", detail)
	case codes.PermissionDenied:
		return problem.New(problem.TypeAuthorization, httpStatus, "Authorization Error", detail)
	}
	return problem.Communication(httpStatus, "%s", detail)
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) authClient() *httpcall.Client {
	if c.Auth != nil {
		return c.Auth
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auth == nil {
		c.auth = &httpcall.Client{HTTP: c.HTTP}
	}
	return c.auth
}

// conn returns the connection to a target, dialling it the first time.
// Port 443 gets TLS with the system's roots; any other port is plaintext
// (HTTP/2 cleartext), the common case inside a cluster.
func (c *Client) conn(ctx context.Context, t *target) (*grpc.ClientConn, *problem.Problem) {
	return c.connTo(ctx, t.address(), t.port == 443)
}

// connTo returns the connection to address. Under an egress guard (in
// ctx) connections are kept per guard and every dial is checked by it.
func (c *Client) connTo(ctx context.Context, address string, secure bool) (*grpc.ClientConn, *problem.Problem) {
	guard := policy.GuardFrom(ctx)
	host, _, splitErr := net.SplitHostPort(address)
	if splitErr != nil {
		host = address
	}
	if guard != nil {
		if err := guard.CheckName(host); err != nil {
			return nil, problem.Communication(503, "cannot connect to %s: %v", address, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, problem.Runtime("the gRPC client is closed")
	}
	key := address + "|" + strconv.FormatBool(secure)
	if guard != nil {
		key += "|" + guard.Key()
	}
	if conn := c.conns[key]; conn != nil {
		return conn, nil
	}
	creds := insecure.NewCredentials()
	if secure {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, c.DialOptions...)
	if guard != nil {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return guard.DialAs(ctx, nil, host, "tcp", addr)
		}))
	}
	conn, err := grpc.NewClient("dns:///"+address, opts...)
	if err != nil {
		return nil, problem.Configuration("cannot connect to %s: %v", address, err)
	}
	if c.conns == nil {
		c.conns = make(map[string]*grpc.ClientConn)
	}
	c.conns[key] = conn
	return conn, nil
}

// Close closes every connection. Calls made afterwards fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for key, conn := range c.conns {
		errs = append(errs, conn.Close())
		delete(c.conns, key)
	}
	return errors.Join(errs...)
}

// method finds the called method's descriptor in the proto source.
func (c *Client) method(ctx context.Context, t *target, conn *grpc.ClientConn) (protoreflect.MethodDescriptor, *problem.Problem) {
	var descs *descriptors
	var p *problem.Problem
	if t.proto.Scheme == ReflectionScheme {
		reflectConn := conn
		if t.proto.Host != "" {
			port := t.proto.Port()
			secure := port == "443"
			if reflectConn, p = c.connTo(ctx, t.proto.Host, secure); p != nil {
				return nil, p
			}
		}
		descs, p = reflect(ctx, reflectConn, t.service)
	} else {
		descs, p = c.protoFile(ctx, t.proto)
	}
	if p != nil {
		return nil, p
	}
	svc, p := descs.service(t.service)
	if p != nil {
		return nil, p
	}
	m := svc.Methods().ByName(protoreflect.Name(t.method))
	if m == nil {
		var names []string
		for i := range svc.Methods().Len() {
			names = append(names, string(svc.Methods().Get(i).Name()))
		}
		return nil, problem.Configuration("service %s has no method %q (it has %s)", svc.FullName(), t.method, strings.Join(names, ", "))
	}
	return m, nil
}

// descriptors are the files a proto source yields.
type descriptors struct {
	files []protoreflect.FileDescriptor
}

// service finds a service by its full name, or by its simple name when
// exactly one file's service has it.
func (d *descriptors) service(name string) (protoreflect.ServiceDescriptor, *problem.Problem) {
	var bySimple []protoreflect.ServiceDescriptor
	var all []string
	for _, f := range d.files {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			all = append(all, string(s.FullName()))
			if string(s.FullName()) == name {
				return s, nil
			}
			if string(s.Name()) == name {
				bySimple = append(bySimple, s)
			}
		}
	}
	switch len(bySimple) {
	case 1:
		return bySimple[0], nil
	case 0:
		return nil, problem.Configuration("no service %q in the proto source (it defines %s)", name, strings.Join(all, ", "))
	default:
		return nil, problem.Configuration("service name %q is ambiguous; give its full name (package.Service)", name)
	}
}

// protoFile compiles a proto file, once per source. Imports of a file://
// source resolve relative to its directory; those of an http(s) source
// only to the well-known types, which every compile knows.
func (c *Client) protoFile(ctx context.Context, u *url.URL) (*descriptors, *problem.Problem) {
	key := u.String()
	c.mu.Lock()
	if d := c.protos[key]; d != nil {
		c.mu.Unlock()
		return d, nil
	}
	c.mu.Unlock()

	var resolver protocompile.Resolver
	var name string
	switch u.Scheme {
	case "file":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		dir, base := filepath.Split(filepath.FromSlash(p))
		name = base
		resolver = &protocompile.SourceResolver{ImportPaths: []string{dir}}
	default:
		content, p := c.fetch(ctx, u)
		if p != nil {
			return nil, p
		}
		name = path.Base(u.Path)
		if name == "" || name == "/" || name == "." {
			name = "service.proto"
		}
		resolver = &protocompile.SourceResolver{Accessor: func(p string) (io.ReadCloser, error) {
			if p == name {
				return io.NopCloser(strings.NewReader(string(content))), nil
			}
			return nil, fmt.Errorf("%s: %w (imports of a proto file fetched over HTTP must be well-known types)", p, os.ErrNotExist)
		}}
	}
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(resolver)}
	files, err := compiler.Compile(ctx, name)
	if err != nil {
		return nil, problem.Configuration("proto file %s: %v", u.Redacted(), err)
	}
	d := &descriptors{}
	for _, f := range files {
		d.files = append(d.files, f)
	}
	c.mu.Lock()
	if c.protos == nil {
		c.protos = make(map[string]*descriptors)
	}
	c.protos[key] = d
	c.mu.Unlock()
	return d, nil
}

func (c *Client) fetch(ctx context.Context, u *url.URL) ([]byte, *problem.Problem) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, problem.Configuration("cannot request %s: %v", u.Redacted(), err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, problem.Communication(http.StatusServiceUnavailable, "fetching proto file %s: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, problem.Communication(resp.StatusCode, "fetching proto file %s: %s", u.Redacted(), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProtoBytes+1))
	if err != nil {
		return nil, problem.Communication(http.StatusServiceUnavailable, "fetching proto file %s: %v", u.Redacted(), err)
	}
	if len(data) > maxProtoBytes {
		return nil, problem.Configuration("proto file %s is larger than %d bytes", u.Redacted(), maxProtoBytes)
	}
	return data, nil
}
