package grpccall

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/batonflow/baton/problem"
)

const greeterProto = `
syntax = "proto3";
package demo.v1;

import "google/protobuf/timestamp.proto";

message HelloRequest {
  string name = 1;
  int32 times = 2;
}

message HelloReply {
  string message = 1;
  repeated string echoes = 2;
  google.protobuf.Timestamp at = 3;
}

service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Count (HelloRequest) returns (stream HelloReply);
}
`

// greeter is an in-process gRPC server over the proto above, built from
// its descriptors, with server reflection.
type greeter struct {
	addr            string
	lastAuth        string
	lastTraceparent string
}

func startGreeter(t *testing.T, dir string) *greeter {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "greeter.proto"), []byte(greeterProto), 0o600); err != nil {
		t.Fatal(err)
	}
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{dir}})}
	files, err := compiler.Compile(context.Background(), "greeter.proto")
	if err != nil {
		t.Fatal(err)
	}
	fd := files[0]
	svc := fd.Services().ByName("Greeter")
	sayHello := svc.Methods().ByName("SayHello")
	count := svc.Methods().ByName("Count")
	g := &greeter{}
	reply := func(in *dynamicpb.Message, msg string) *dynamicpb.Message {
		out := dynamicpb.NewMessage(sayHello.Output())
		out.Set(sayHello.Output().Fields().ByName("message"), protoreflect.ValueOfString(msg))
		list := out.Mutable(sayHello.Output().Fields().ByName("echoes")).List()
		for i := int64(0); i < in.Get(sayHello.Input().Fields().ByName("times")).Int(); i++ {
			list.Append(protoreflect.ValueOfString("echo"))
		}
		return out
	}
	desc := grpc.ServiceDesc{
		ServiceName: string(svc.FullName()),
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "SayHello",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := dynamicpb.NewMessage(sayHello.Input())
				if err := dec(in); err != nil {
					return nil, err
				}
				if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("authorization")) > 0 {
					g.lastAuth = md.Get("authorization")[0]
				}
				if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
					g.lastTraceparent = md.Get("traceparent")[0]
				}
				name := in.Get(sayHello.Input().Fields().ByName("name")).String()
				if name == "" {
					return nil, status.Error(codes.InvalidArgument, "name is required")
				}
				if name == "intruder" {
					return nil, status.Error(codes.Unauthenticated, "who are you")
				}
				return reply(in, "Hello, "+name+"!"), nil
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Count",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				in := dynamicpb.NewMessage(count.Input())
				if err := stream.RecvMsg(in); err != nil {
					return err
				}
				n := int(in.Get(count.Input().Fields().ByName("times")).Int())
				for i := 1; i <= n; i++ {
					out := dynamicpb.NewMessage(count.Output())
					out.Set(count.Output().Fields().ByName("message"), protoreflect.ValueOfString(strconv.Itoa(i)))
					if err := stream.SendMsg(out); err != nil {
						return err
					}
				}
				return nil
			},
		}},
	}
	server := grpc.NewServer()
	server.RegisterService(&desc, struct{}{})
	registry := &protoregistry.Files{}
	for i := range fd.Imports().Len() {
		if err := registry.RegisterFile(fd.Imports().Get(i).FileDescriptor); err != nil {
			t.Fatal(err)
		}
	}
	if err := registry.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	rpb.RegisterServerReflectionServer(server, reflection.NewServerV1(reflection.ServerOptions{Services: server, DescriptorResolver: registry}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	g.addr = lis.Addr().String()
	return g
}

func args(protoURI, addr, method string, arguments map[string]any) map[string]any {
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	a := map[string]any{
		"proto":   map[string]any{"endpoint": protoURI},
		"service": map[string]any{"name": "demo.v1.Greeter", "host": host, "port": float64(port)},
		"method":  method,
	}
	if arguments != nil {
		a["arguments"] = arguments
	}
	return a
}

func TestCallFromProtoFileAndReflection(t *testing.T) {
	dir := t.TempDir()
	g := startGreeter(t, dir)
	protoSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(greeterProto))
	}))
	defer protoSrv.Close()
	c := &Client{}
	defer c.Close()
	sources := map[string]string{
		"file":                     "file://" + filepath.ToSlash(filepath.Join(dir, "greeter.proto")),
		"http":                     protoSrv.URL + "/protos/greeter.proto",
		"reflection":               "reflection://",
		"reflection at an address": "reflection://" + g.addr,
	}
	for label, uri := range sources {
		t.Run(label, func(t *testing.T) {
			out, p := c.Do(context.Background(), Request{Args: args(uri, g.addr, "SayHello", map[string]any{"name": "Baton", "times": 2})})
			if p != nil {
				t.Fatal(p)
			}
			reply, ok := out.(map[string]any)
			if !ok || reply["message"] != "Hello, Baton!" {
				t.Fatalf("reply = %v", out)
			}
			echoes, _ := reply["echoes"].([]any)
			if len(echoes) != 2 {
				t.Fatalf("echoes = %v, want 2", reply["echoes"])
			}
		})
	}
	t.Run("server streaming", func(t *testing.T) {
		out, p := c.Do(context.Background(), Request{Args: args("reflection://", g.addr, "Count", map[string]any{"times": 3})})
		if p != nil {
			t.Fatal(p)
		}
		items, _ := out.([]any)
		if len(items) != 3 || items[2].(map[string]any)["message"] != "3" {
			t.Fatalf("stream = %v, want 3 replies", out)
		}
	})
}

func TestCallErrorsAndAuthentication(t *testing.T) {
	dir := t.TempDir()
	g := startGreeter(t, dir)
	c := &Client{}
	defer c.Close()
	file := "file://" + filepath.ToSlash(filepath.Join(dir, "greeter.proto"))

	a := args(file, g.addr, "SayHello", map[string]any{"name": "Baton"})
	a["service"].(map[string]any)["authentication"] = map[string]any{"use": "token"}
	_, p := c.Do(context.Background(), Request{
		Args:            a,
		Authentications: map[string]any{"token": map[string]any{"bearer": map[string]any{"use": "apiToken"}}},
		Secrets:         map[string]any{"apiToken": map[string]any{"token": "t0ken"}},
	})
	if p != nil {
		t.Fatal(p)
	}
	if g.lastAuth != "Bearer t0ken" {
		t.Fatalf("the server got authorization %q, want the bearer token", g.lastAuth)
	}

	tests := []struct {
		name     string
		args     map[string]any
		wantType string
		wantText string
	}{
		{"status mapped", args(file, g.addr, "SayHello", map[string]any{"name": ""}), problem.TypeCommunication, "InvalidArgument"},
		{"unauthenticated", args(file, g.addr, "SayHello", map[string]any{"name": "intruder"}), problem.TypeAuthentication, "who are you"},
		{"unknown method", args(file, g.addr, "Wave", nil), problem.TypeConfiguration, "no method"},
		{"unknown field", args(file, g.addr, "SayHello", map[string]any{"nickname": "x"}), problem.TypeConfiguration, "nickname"},
		{"unknown service", func() map[string]any {
			a := args(file, g.addr, "SayHello", nil)
			a["service"].(map[string]any)["name"] = "Nope"
			return a
		}(), problem.TypeConfiguration, "no service"},
		{"missing proto file", args("file:///nonexistent/x.proto", g.addr, "SayHello", nil), problem.TypeConfiguration, "x.proto"},
		{"bad scheme", args("ftp://x/y.proto", g.addr, "SayHello", nil), problem.TypeConfiguration, "ftp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p := c.Do(context.Background(), Request{Args: tc.args})
			if p == nil {
				t.Fatal("the call succeeded")
			}
			if p.Type != tc.wantType || !strings.Contains(p.Detail, tc.wantText) {
				t.Fatalf("problem = %s %q, want %s mentioning %q", p.Type, p.Detail, tc.wantType, tc.wantText)
			}
		})
	}
	// A closed server is unavailable.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	_, p = c.Do(context.Background(), Request{Args: args(file, closed, "SayHello", map[string]any{"name": "x"})})
	if p == nil || p.Type != problem.TypeCommunication || p.Status != http.StatusServiceUnavailable {
		t.Fatalf("calling a closed port: %v, want a 503 communication error", p)
	}
}

// TestCallCarriesTraceContext: a call made under a span sends the span's
// traceparent as gRPC metadata.
func TestCallCarriesTraceContext(t *testing.T) {
	dir := t.TempDir()
	g := startGreeter(t, dir)
	c := &Client{}
	defer c.Close()
	file := "file://" + filepath.ToSlash(filepath.Join(dir, "greeter.proto"))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	if _, p := c.Do(ctx, Request{Args: args(file, g.addr, "SayHello", map[string]any{"name": "Baton"})}); p != nil {
		t.Fatal(p)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; g.lastTraceparent != want {
		t.Fatalf("the server got traceparent %q, want %q", g.lastTraceparent, want)
	}
}
