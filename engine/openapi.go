package engine

import (
	"context"

	"github.com/batonflow/baton/openapicall"
)

// FunctionOpenAPI is the function name of `call: openapi`.
const FunctionOpenAPI = "openapi"

// openAPIExecutor runs `call: openapi` with the engine's HTTP client, the
// workflow's named authentication policies and the invocation's secrets,
// as `call: http` gets them.
type openAPIExecutor struct {
	client *openapicall.Client
}

func (x *openAPIExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	var auths map[string]any
	if req.Workflow != nil && req.Workflow.Use != nil {
		auths = req.Workflow.Use.Authentications
	}
	out, p := x.client.Do(ctx, openapicall.Request{
		Args: req.Args, IdempotencyKey: req.IdempotencyKey,
		Authentications: auths, Secrets: req.Secrets, Redact: req.Redact,
	})
	if p != nil {
		return CallResult{}, p
	}
	return CallResult{Output: out}, nil
}
