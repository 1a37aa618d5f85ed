package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/problem"
)

// EventPublisher delivers the CloudEvents that `emit` tasks produce. The
// event is a CloudEvents 1.0 structured-mode document as plain JSON data:
// context attributes and extensions at the top level, the payload under
// "data". Publish may be called again with the same event (same id) when
// an invocation resumes after a crash; consumers deduplicate by source and
// id as CloudEvents prescribes.
type EventPublisher interface {
	Publish(ctx context.Context, event map[string]any) error
}

// eventIDSpace scopes the name-based UUIDs of emitted events, so that the
// id of an event derived from a call's idempotency key never collides with
// an id derived from the same key for another purpose.
var eventIDSpace = uuid.MustParse("5b0f3d52-8f0e-4d7a-9a43-1f0c4f1f7e11")

// emitExecutor runs `emit` tasks: the core hands over the evaluated
// emit.event.with, the event's attributes and data, as the call's Args.
type emitExecutor struct {
	events EventPublisher
	// log, when set, takes the events instead of events: they are logged
	// (so that listens and event-driven starts see them) and forwarded to
	// the shared bus, while events keeps only the lifecycle feed.
	log *events.Log
	now func() time.Time
}

func (x *emitExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	// The id derives from the call's id seed (core.CallIDSeed) rather than
	// its key, so ids stay those of events emitted before the key changed.
	seed := ""
	if req.IdempotencyKey != "" {
		seed = req.Call.IDSeed(req.Invocation)
	}
	event, err := buildCloudEvent(req.Args, seed, x.clock())
	if err != nil {
		return CallResult{}, err
	}
	if x.log != nil {
		if _, err := x.log.Ingest(ctx, []events.Event{event}); err != nil {
			var p *problem.Problem
			if errors.As(err, &p) {
				if p.Type == problem.TypeBadRequest {
					return CallResult{}, problem.Configuration("emit: %s", p.Detail)
				}
				return CallResult{}, p
			}
			if ctx.Err() != nil {
				return CallResult{}, fmt.Errorf("emitting event %v: %w", event["id"], err)
			}
			return CallResult{}, problem.Communication(503, "emitting event %v of type %v: %v", event["id"], event["type"], err)
		}
		return CallResult{Output: event}, nil
	}
	if x.events != nil {
		if err := x.events.Publish(ctx, event); err != nil {
			var p *problem.Problem
			if errors.As(err, &p) {
				return CallResult{}, p
			}
			if ctx.Err() != nil {
				return CallResult{}, fmt.Errorf("publishing event %v: %w", event["id"], err)
			}
			return CallResult{}, problem.Communication(503, "publishing event %v of type %v: %v", event["id"], event["type"], err)
		}
	}
	return CallResult{Output: event}, nil
}

func (x *emitExecutor) clock() time.Time {
	if x.now != nil {
		return x.now()
	}
	return time.Now()
}

// buildCloudEvent turns the evaluated emit.event.with into a CloudEvent 1.0. The
// id defaults to a UUID derived from the call's id seed (core.CallIDSeed): a call
// executed again after a crash emits the same event, not a second one.
func buildCloudEvent(with map[string]any, seed string, now time.Time) (map[string]any, error) {
	event := make(map[string]any, len(with)+4)
	for name, value := range with {
		if value == nil {
			continue // an attribute whose expression produced null is absent
		}
		if name != "data" && !validAttributeName(name) {
			return nil, problem.Configuration("emit: %q is not a valid CloudEvents attribute name (lower-case letters and digits only)", name)
		}
		event[name] = value
	}
	for _, name := range []string{"source", "type"} {
		s, ok := event[name].(string)
		if !ok || s == "" {
			return nil, problem.Configuration("emit: the event's %s must be a non-empty string, got %v", name, event[name])
		}
	}
	for _, name := range []string{"id", "subject", "datacontenttype", "dataschema", "time", "specversion"} {
		if v, present := event[name]; present {
			if _, ok := v.(string); !ok {
				return nil, problem.Configuration("emit: the event's %s must be a string, got %T", name, v)
			}
		}
	}
	if v, ok := event["specversion"].(string); ok && v != "1.0" {
		return nil, problem.Configuration("emit: specversion %q is not supported; Baton emits CloudEvents 1.0", v)
	}
	event["specversion"] = "1.0"
	if _, ok := event["id"]; !ok {
		if seed != "" {
			event["id"] = uuid.NewSHA1(eventIDSpace, []byte(seed)).String()
		} else {
			event["id"] = uuid.NewString()
		}
	}
	if t, ok := event["time"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return nil, problem.Configuration("emit: the event's time %q is not an RFC 3339 timestamp", t)
		}
	} else {
		event["time"] = now.UTC().Format(time.RFC3339Nano)
	}
	if _, hasData := event["data"]; hasData {
		if _, ok := event["datacontenttype"]; !ok {
			event["datacontenttype"] = "application/json"
		}
	}
	return event, nil
}

// validAttributeName follows CloudEvents 1.0: attribute names consist of
// lower-case ASCII letters and digits.
func validAttributeName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
