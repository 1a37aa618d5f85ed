package engine

import (
	"context"

	"github.com/batonflow/baton/grpccall"
)

// FunctionGRPC is the function name of `call: grpc`.
const FunctionGRPC = "grpc"

// grpcExecutor runs `call: grpc` with the workflow's named authentication
// policies and the invocation's secrets; OAuth2 tokens share the cache of
// `call: http`.
type grpcExecutor struct {
	client *grpccall.Client
}

func (x *grpcExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	var auths map[string]any
	if req.Workflow != nil && req.Workflow.Use != nil {
		auths = req.Workflow.Use.Authentications
	}
	out, p := x.client.Do(ctx, grpccall.Request{
		Args: req.Args, Authentications: auths, Secrets: req.Secrets, Redact: req.Redact,
	})
	if p != nil {
		return CallResult{}, p
	}
	return CallResult{Output: out}, nil
}
