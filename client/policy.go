package client

import (
	"context"
	"net/http"

	"github.com/batonflow/baton/api"
)

// Policy returns a namespace's policy document and the policy in force.
func (c *Client) Policy(ctx context.Context, namespace string) (*api.NamespacePolicy, error) {
	var p api.NamespacePolicy
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "namespaces", namespace, "policy"}}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetPolicy replaces a namespace's policy document (JSON).
func (c *Client) SetPolicy(ctx context.Context, namespace string, doc []byte) (*api.NamespacePolicy, error) {
	var p api.NamespacePolicy
	if _, err := c.do(ctx, request{method: http.MethodPut, segments: []string{"v1", "namespaces", namespace, "policy"},
		body: doc, contentType: "application/json"}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteInvocation removes a finished invocation and its history.
func (c *Client) DeleteInvocation(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: []string{"v1", "invocations", id}}, nil)
	return err
}
