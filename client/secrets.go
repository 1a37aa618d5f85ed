package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/batonflow/baton/api"
)

// SetSecret creates or replaces a secret; value is JSON data.
func (c *Client) SetSecret(ctx context.Context, name string, value any) error {
	body, err := json.Marshal(api.SecretValue{Value: value})
	if err != nil {
		return fmt.Errorf("secret %s: the value is not JSON data: %w", name, err)
	}
	_, err = c.do(ctx, request{method: http.MethodPut, segments: []string{"v1", "secrets", name}, body: body, contentType: "application/json"}, nil)
	return err
}

// SecretNames lists the stored secrets' names, sorted.
func (c *Client) SecretNames(ctx context.Context) ([]string, error) {
	var list api.SecretList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "secrets"}}, &list); err != nil {
		return nil, err
	}
	names := make([]string, len(list.Items))
	for i, item := range list.Items {
		names[i] = item.Name
	}
	return names, nil
}

// DeleteSecret removes a secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: []string{"v1", "secrets", name}}, nil)
	return err
}

// LifecycleEvents returns the DSL lifecycle CloudEvents of an invocation.
func (c *Client) LifecycleEvents(ctx context.Context, id string) ([]map[string]any, error) {
	var ev api.LifecycleEvents
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "invocations", id, "events"}}, &ev); err != nil {
		return nil, err
	}
	return ev.Items, nil
}
