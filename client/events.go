package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/batonflow/baton/api"
)

// PostEvents ingests CloudEvents (structured form) as one batch.
func (c *Client) PostEvents(ctx context.Context, evs []map[string]any) (*api.AcceptedEvents, error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return nil, fmt.Errorf("events are not JSON data: %w", err)
	}
	var out api.AcceptedEvents
	if _, err := c.do(ctx, request{method: http.MethodPost, segments: []string{"v1", "events"}, body: body, contentType: "application/cloudevents-batch+json"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateTrigger creates a trigger.
func (c *Client) CreateTrigger(ctx context.Context, t api.Trigger) (*api.Trigger, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var out api.Trigger
	if _, err := c.do(ctx, request{method: http.MethodPost, segments: []string{"v1", "triggers"}, body: body, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTriggers lists the triggers by name.
func (c *Client) ListTriggers(ctx context.Context) ([]api.Trigger, error) {
	var list api.TriggerList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "triggers"}}, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// DeleteTrigger removes a trigger.
func (c *Client) DeleteTrigger(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: []string{"v1", "triggers", name}}, nil)
	return err
}
