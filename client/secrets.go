package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/batonflow/baton/api"
)

// SetSecret creates or replaces a secret of the default namespace; value
// is JSON data.
func (c *Client) SetSecret(ctx context.Context, name string, value any) error {
	return c.SetSecretIn(ctx, "", name, value)
}

// SecretNames lists the default namespace's secrets; see SecretNamesIn.
func (c *Client) SecretNames(ctx context.Context) ([]string, error) {
	return c.SecretNamesIn(ctx, "")
}

// DeleteSecret removes a secret of the default namespace.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.DeleteSecretIn(ctx, "", name)
}

func namespaceQuery(namespace string) url.Values {
	if namespace == "" {
		return nil
	}
	return url.Values{"namespace": {namespace}}
}

// SetSecretIn creates or replaces a secret of a namespace ("" for the
// default one); value is JSON data.
func (c *Client) SetSecretIn(ctx context.Context, namespace, name string, value any) error {
	body, err := json.Marshal(api.SecretValue{Value: value})
	if err != nil {
		return fmt.Errorf("secret %s: the value is not JSON data: %w", name, err)
	}
	_, err = c.do(ctx, request{method: http.MethodPut, segments: []string{"v1", "secrets", name}, query: namespaceQuery(namespace), body: body, contentType: "application/json"}, nil)
	return err
}

// SecretNamesIn lists a namespace's secrets' names, sorted.
func (c *Client) SecretNamesIn(ctx context.Context, namespace string) ([]string, error) {
	var list api.SecretList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "secrets"}, query: namespaceQuery(namespace)}, &list); err != nil {
		return nil, err
	}
	names := make([]string, len(list.Items))
	for i, item := range list.Items {
		names[i] = item.Name
	}
	return names, nil
}

// DeleteSecretIn removes a namespace's secret.
func (c *Client) DeleteSecretIn(ctx context.Context, namespace, name string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: []string{"v1", "secrets", name}, query: namespaceQuery(namespace)}, nil)
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
