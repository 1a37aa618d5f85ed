package grpccall

import (
	"context"
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/batonflow/baton/problem"
)

// reflect asks a server's reflection service (grpc.reflection.v1) for the
// file that defines service and every file it depends on. Descriptors are
// asked for on every call, not cached, so that a redeployed server's new
// methods are seen at once.
func reflect(ctx context.Context, conn *grpc.ClientConn, service string) (*descriptors, *problem.Problem) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, reflectionProblem(service, err)
	}
	defer func() { _ = stream.CloseSend() }()
	ask := func(req *rpb.ServerReflectionRequest) ([]*descriptorpb.FileDescriptorProto, *problem.Problem) {
		if err := stream.Send(req); err != nil {
			return nil, reflectionProblem(service, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, reflectionProblem(service, err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			return nil, problem.Configuration("server reflection does not know %s: %s", service, e.GetErrorMessage())
		}
		fdr := resp.GetFileDescriptorResponse()
		if fdr == nil {
			return nil, problem.Communication(http.StatusBadGateway, "server reflection answered no file descriptors for %s", service)
		}
		out := make([]*descriptorpb.FileDescriptorProto, 0, len(fdr.GetFileDescriptorProto()))
		for _, raw := range fdr.GetFileDescriptorProto() {
			fdp := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fdp); err != nil {
				return nil, problem.Communication(http.StatusBadGateway, "server reflection sent a malformed descriptor: %v", err)
			}
			out = append(out, fdp)
		}
		return out, nil
	}

	protos := map[string]*descriptorpb.FileDescriptorProto{}
	first, p := ask(&rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: service},
	})
	if p != nil {
		return nil, p
	}
	var root string
	for i, fdp := range first {
		if i == 0 {
			root = fdp.GetName()
		}
		protos[fdp.GetName()] = fdp
	}
	// Servers usually send the dependencies along; ask for any missing.
	for pending := missingDeps(protos); len(pending) > 0; pending = missingDeps(protos) {
		for _, name := range pending {
			got, p := ask(&rpb.ServerReflectionRequest{
				MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: name},
			})
			if p != nil {
				return nil, p
			}
			for _, fdp := range got {
				protos[fdp.GetName()] = fdp
			}
			if protos[name] == nil {
				return nil, problem.Communication(http.StatusBadGateway, "server reflection did not send %s", name)
			}
		}
	}
	files := &protoregistry.Files{}
	var build func(name string) (protoreflect.FileDescriptor, error)
	build = func(name string) (protoreflect.FileDescriptor, error) {
		if fd, err := files.FindFileByPath(name); err == nil {
			return fd, nil
		}
		fdp := protos[name]
		if fdp == nil {
			return protoregistry.GlobalFiles.FindFileByPath(name)
		}
		for _, dep := range fdp.GetDependency() {
			fd, err := build(dep)
			if err != nil {
				return nil, fmt.Errorf("%s imports %s: %w", name, dep, err)
			}
			if _, err := files.FindFileByPath(dep); err != nil {
				if err := files.RegisterFile(fd); err != nil {
					return nil, err
				}
			}
		}
		fd, err := protodesc.NewFile(fdp, files)
		if err != nil {
			return nil, err
		}
		if err := files.RegisterFile(fd); err != nil {
			return nil, err
		}
		return fd, nil
	}
	fd, err := build(root)
	if err != nil {
		return nil, problem.Configuration("descriptors from server reflection for %s do not link: %v", service, err)
	}
	return &descriptors{files: []protoreflect.FileDescriptor{fd}}, nil
}

// missingDeps lists imports that neither the server has sent nor the
// well-known types provide.
func missingDeps(protos map[string]*descriptorpb.FileDescriptorProto) []string {
	var out []string
	seen := map[string]bool{}
	for _, fdp := range protos {
		for _, dep := range fdp.GetDependency() {
			if protos[dep] != nil || seen[dep] {
				continue
			}
			if _, err := protoregistry.GlobalFiles.FindFileByPath(dep); err == nil {
				continue
			}
			seen[dep] = true
			out = append(out, dep)
		}
	}
	return out
}

func reflectionProblem(service string, err error) *problem.Problem {
	return problem.Communication(http.StatusServiceUnavailable, "server reflection for %s: %v", service, err)
}
