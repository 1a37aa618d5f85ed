package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/batonflow/baton/api"
)

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as `Authorization: Bearer TOKEN` on every request.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// NewWith is New with options.
func NewWith(baseURL string, httpClient *http.Client, opts ...Option) (*Client, error) {
	c, err := New(baseURL, httpClient)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// CreateToken issues an API token; the answer holds it in clear, once.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (*api.CreatedToken, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out api.CreatedToken
	if _, err := c.do(ctx, request{method: http.MethodPost, segments: []string{"v1", "tokens"}, body: body, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens lists the tokens of the namespaces the caller administers.
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var list api.TokenList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "tokens"}}, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// RevokeToken deletes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: []string{"v1", "tokens", id}}, nil)
	return err
}

// ListAudit reads a page of the audit log: entries after seq `after`, of
// namespace ("" for every namespace the caller administers).
func (c *Client) ListAudit(ctx context.Context, namespace string, after int64, limit int) (*api.AuditList, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.AuditList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "audit"}, query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
