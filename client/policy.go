package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/qos"
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

// WithNamespace returns a client whose function requests (deploy, list,
// get, delete, invoke) act in namespace, the ?namespace= parameter: the
// namespace the functions belong to and whose policy they answer to.
// Without it they act in the namespace "default".
func (c *Client) WithNamespace(namespace string) *Client {
	cp := *c
	cp.namespace = namespace
	return &cp
}

func (c *Client) namespaceQuery(q url.Values) url.Values {
	if c.namespace == "" {
		return q
	}
	if q == nil {
		q = url.Values{}
	}
	q.Set("namespace", c.namespace)
	return q
}

// QoSStatus returns the state of the server's QoS gates (GET /v1/qos).
func (c *Client) QoSStatus(ctx context.Context) (*qos.Status, error) {
	var s qos.Status
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "qos"}}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
