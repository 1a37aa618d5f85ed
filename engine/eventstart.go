package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/telemetry"
)

// TriggerSource subscribes triggers to a message source (NATS, MQTT).
// handle is called once per message with the message's id when the source
// has one ("" otherwise), the subject or topic it was published on (which
// a wildcard spec does not tell) and its payload; Subscribe returns a
// function that ends the subscription.
type TriggerSource interface {
	Subscribe(ctx context.Context, spec, queue string, handle func(ctx context.Context, id, topic string, payload []byte) error) (func(), error)
}

// Trigger kinds.
const (
	TriggerHTTP = "http"
	TriggerCron = "cron"
	TriggerNATS = "nats"
	TriggerMQTT = "mqtt"
)

// eventStartIDSpace scopes the name-based ids of event-driven invocations.
var eventStartIDSpace = uuid.MustParse("9d7f0a52-6c1b-4e83-a1f4-2b5e8c7d3a90")

// eventStartID is the invocation id of the run that a group of events
// starts: derived from the workflow version and the events' sources and
// ids, so that starting it again (after a crash, or from another engine
// sharing the store) fails on the taken id instead of running twice.
func eventStartID(key string, consumed []events.Event) string {
	var b strings.Builder
	b.WriteString(key)
	for _, ev := range consumed {
		fmt.Fprintf(&b, "\x00%v\x00%v", ev["source"], ev["id"])
	}
	return uuid.NewSHA1(eventStartIDSpace, []byte(b.String())).String()
}

// triggerID derives the id of an invocation started by a trigger from
// something that identifies the occurrence (a cron slot, a message id, an
// Idempotency-Key).
func triggerID(trigger, occurrence string) string {
	return uuid.NewSHA1(eventStartIDSpace, []byte("trigger\x00"+trigger+"\x00"+occurrence)).String()
}

func onCursorName(namespace, name, version string) string {
	return "on/" + namespace + "/" + name + "/" + version
}

// startConsumingOn fixes where a workflow version with schedule.on starts
// consuming: the events logged after it was applied.
func (e *Engine) startConsumingOn(ctx context.Context, def *dsl.Workflow) error {
	if def.Schedule == nil || def.Schedule.On == nil {
		return nil
	}
	if _, err := events.ParseStrategy(def.Schedule.On, nil); err != nil {
		return problem.Configuration("schedule.on: %v", err)
	}
	if e.opts.EventLog == nil {
		// The document is valid; this engine just cannot start it on
		// events (an embedder without an event log).
		e.log.Warn("workflow has schedule.on but the engine has no event log; it will not start on events", "workflow", def.Document.Namespace+"/"+def.Document.Name)
		return nil
	}
	last, err := e.opts.EventLog.Last(ctx)
	if err != nil {
		return err
	}
	d := def.Document
	if _, err := e.opts.EventLog.Store().EventCursor(ctx, onCursorName(d.Namespace, d.Name, d.Version), last); err != nil {
		return err
	}
	e.starter.kick()
	return nil
}

// listensEnded forgets the start positions of an ended invocation's
// listens, once its end is durable; until then a restart may still need
// them, so a position whose end is not yet visible is left in place.
func (e *Engine) listensEnded(id string, def *dsl.Workflow) {
	if e.opts.EventLog == nil || !hasListen(def.Do) {
		return
	}
	e.calls.Add(1)
	go func() {
		defer e.calls.Done()
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		inv, err := e.store.GetInvocation(ctx, id)
		if err != nil || inv.Status == core.StatusRunning {
			return
		}
		if err := e.opts.EventLog.Store().DeleteEventCursors(ctx, listenCursorPrefix(id)); err != nil && ctx.Err() == nil {
			e.log.Warn("cannot forget the listen positions of an ended invocation", "invocation", id, "err", err)
		}
	}()
}

func hasListen(list dsl.TaskList) bool {
	for _, nt := range list {
		t := nt.Task
		if t == nil {
			continue
		}
		if t.Kind == dsl.KindListen {
			return true
		}
		sub := []dsl.TaskList{t.Do}
		if t.For != nil {
			sub = append(sub, t.For.Do)
		}
		if t.Fork != nil {
			sub = append(sub, t.Fork.Branches)
		}
		if t.Try != nil {
			sub = append(sub, t.Try.Try)
			if t.Try.Catch != nil {
				sub = append(sub, t.Try.Catch.Do)
			}
		}
		for _, l := range sub {
			if hasListen(l) {
				return true
			}
		}
	}
	return false
}

// IngestEvents validates CloudEvents and appends them to the event log
// (and the shared bus); it returns once they are durable.
func (e *Engine) IngestEvents(ctx context.Context, evs []events.Event) ([]*store.LoggedEvent, error) {
	if e.opts.EventLog == nil {
		return nil, problem.Newf(problem.TypeBadRequest, http.StatusNotImplemented, "Not Implemented", "this engine has no event log")
	}
	return e.opts.EventLog.Ingest(ctx, evs)
}

// ListEvents reads the event log.
func (e *Engine) ListEvents(ctx context.Context, f store.EventFilter) ([]events.Logged, error) {
	if e.opts.EventLog == nil {
		return nil, problem.Newf(problem.TypeBadRequest, http.StatusNotImplemented, "Not Implemented", "this engine has no event log")
	}
	return e.opts.EventLog.Read(ctx, f)
}

func (e *Engine) eventLog() (store.EventLog, error) {
	if e.opts.EventLog == nil {
		return nil, problem.Newf(problem.TypeBadRequest, http.StatusNotImplemented, "Not Implemented", "this engine has no event log, which keeps triggers")
	}
	return e.opts.EventLog.Store(), nil
}

var triggerName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// CreateTrigger validates and stores a trigger. The workflow must exist;
// each run uses its newest version at the time.
func (e *Engine) CreateTrigger(ctx context.Context, t *store.Trigger) (*store.Trigger, error) {
	log, err := e.eventLog()
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request", format, args...)
	}
	if !triggerName.MatchString(t.Name) {
		return nil, bad("trigger name %q must be lower-case letters, digits, '.', '_' or '-', at most 63 characters", t.Name)
	}
	if t.Namespace == "" {
		t.Namespace = "default"
	}
	if _, err := e.store.GetWorkflow(ctx, t.Namespace, t.Workflow, ""); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, bad("workflow %s/%s does not exist", t.Namespace, t.Workflow)
		}
		return nil, err
	}
	t.Spec = strings.TrimSpace(t.Spec)
	if t.Spec == "" {
		return nil, bad("a %s trigger needs its %s", t.Kind, map[string]string{TriggerHTTP: "path", TriggerCron: "cron expression", TriggerNATS: "subject", TriggerMQTT: "topic"}[t.Kind])
	}
	t.NextRun, t.LastRun, t.LastInvocation = time.Time{}, time.Time{}, ""
	switch t.Kind {
	case TriggerHTTP:
		t.Spec = strings.Trim(t.Spec, "/")
		if !triggerName.MatchString(t.Spec) {
			return nil, bad("hook path %q must be one path segment of lower-case letters, digits, '.', '_' or '-'", t.Spec)
		}
		all, err := log.ListTriggers(ctx)
		if err != nil {
			return nil, err
		}
		for _, other := range all {
			if other.Kind == TriggerHTTP && other.Spec == t.Spec {
				return nil, fmt.Errorf("hook path %q is taken by trigger %s: %w", t.Spec, other.Name, store.ErrConflict)
			}
		}
	case TriggerCron:
		spec, err := parseCron(t.Spec)
		if err != nil {
			return nil, bad("%v", err)
		}
		t.NextRun = spec.next(time.Now().UTC())
		if t.NextRun.IsZero() {
			return nil, bad("cron expression %q never matches", t.Spec)
		}
	case TriggerNATS, TriggerMQTT:
		if e.opts.TriggerSources[t.Kind] == nil {
			return nil, bad("this server has no %s connection for %s triggers", t.Kind, t.Kind)
		}
	default:
		return nil, bad("trigger kind %q is not one of http, cron, nats, mqtt", t.Kind)
	}
	t.CreatedAt = time.Now().UTC()
	if err := log.CreateTrigger(ctx, t); err != nil {
		return nil, err
	}
	if e.starter != nil {
		e.starter.kick()
	}
	return t, nil
}

// GetTrigger returns a trigger.
func (e *Engine) GetTrigger(ctx context.Context, name string) (*store.Trigger, error) {
	log, err := e.eventLog()
	if err != nil {
		return nil, err
	}
	return log.GetTrigger(ctx, name)
}

// ListTriggers returns every trigger.
func (e *Engine) ListTriggers(ctx context.Context) ([]*store.Trigger, error) {
	log, err := e.eventLog()
	if err != nil {
		return nil, err
	}
	return log.ListTriggers(ctx)
}

// DeleteTrigger removes a trigger; its subscription ends within a poll.
func (e *Engine) DeleteTrigger(ctx context.Context, name string) error {
	log, err := e.eventLog()
	if err != nil {
		return err
	}
	if err := log.DeleteTrigger(ctx, name); err != nil {
		return err
	}
	if e.starter != nil {
		e.starter.kick()
	}
	return nil
}

// FireHook starts the workflow of the HTTP trigger at path with input.
// With an idempotency key the invocation id derives from it, so a client
// retrying a request does not start a second run: FireHook then returns
// the invocation the first request started together with an error
// wrapping store.ErrConflict (see repeatedHook).
func (e *Engine) FireHook(ctx context.Context, path string, input any, idempotencyKey string) (*store.Invocation, error) {
	log, err := e.eventLog()
	if err != nil {
		return nil, err
	}
	path = strings.Trim(path, "/")
	all, err := log.ListTriggers(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if t.Kind != TriggerHTTP || t.Spec != path {
			continue
		}
		id := ""
		if idempotencyKey != "" {
			id = triggerID(t.Name, "key\x00"+idempotencyKey)
		} else {
			v7, err := uuid.NewV7()
			if err != nil {
				return nil, err
			}
			id = v7.String()
		}
		inv, err := e.start(ctx, id, "", t.Namespace, t.Workflow, "", input)
		if idempotencyKey != "" && errors.Is(err, store.ErrConflict) {
			return e.repeatedHook(ctx, id, err)
		}
		return inv, err
	}
	return nil, fmt.Errorf("hook %s: %w", path, store.ErrNotFound)
}

// eventStarter starts the invocations of workflows with schedule.on as
// their events are logged, fires cron triggers, and keeps the
// subscriptions of message triggers in step with the triggers table.
type eventStarter struct {
	e    *Engine
	wake chan struct{}
	done chan struct{}

	mu   sync.Mutex
	subs map[string]subscription // by trigger name
}

type subscription struct {
	trigger store.Trigger
	stop    func()
}

func newEventStarter(e *Engine) *eventStarter {
	return &eventStarter{e: e, wake: make(chan struct{}, 1), done: make(chan struct{}), subs: map[string]subscription{}}
}

func (s *eventStarter) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *eventStarter) run(ctx context.Context) {
	defer close(s.done)
	defer s.unsubscribeAll()
	poll := time.NewTimer(0)
	defer poll.Stop()
	changed := s.e.opts.EventLog.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-changed:
		case <-s.wake:
		}
		// Taken before the pass reads the log, so that an event appended
		// while it runs wakes the next one.
		changed = s.e.opts.EventLog.Changed()
		wait := s.tick(ctx)
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(wait)
	}
}

// tick does one pass and says how long until the next is needed at the
// latest.
func (s *eventStarter) tick(ctx context.Context) time.Duration {
	wait := eventPoll
	wfs, err := s.e.store.ListWorkflows(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.e.log.Error("event starts: listing workflows", "err", err)
		}
		return wait
	}
	newest := map[string]*store.Workflow{}
	for _, wf := range wfs {
		newest[wf.Namespace+"/"+wf.Name] = wf // ordered by creation: the last one wins
	}
	var ons []*dsl.Workflow
	var onKeys []string
	for _, wf := range newest {
		def, err := s.e.definition(ctx, wf.Namespace, wf.Name, wf.Version)
		if err != nil || def.Schedule == nil || def.Schedule.On == nil {
			continue
		}
		ons = append(ons, def)
		onKeys = append(onKeys, wf.Namespace+"/"+wf.Name+"/"+wf.Version)
	}
	mine := s.e.ownedSources(sourceOn, onKeys)
	for i, def := range ons {
		if !mine[onKeys[i]] {
			continue // another replica's
		}
		wf := def.Document
		if err := s.consume(ctx, def); err != nil && ctx.Err() == nil {
			s.e.log.Error("event starts", "workflow", wf.Namespace+"/"+wf.Name, "version", wf.Version, "err", err)
		}
	}
	triggers, err := s.e.opts.EventLog.Store().ListTriggers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.e.log.Error("triggers: listing", "err", err)
		}
		return wait
	}
	// Message triggers subscribe on every replica in one queue group (a
	// NATS queue, an MQTT shared subscription): the broker hands each
	// message to one of them, and a replica's death leaves no moment
	// without a subscriber, when a broker without persistence would drop
	// messages. Cron triggers run on their partition's owner.
	s.syncSubscriptions(ctx, triggers)
	var crons []string
	for _, t := range triggers {
		if t.Kind == TriggerCron {
			crons = append(crons, t.Name)
		}
	}
	ours := s.e.ownedSources(sourceTrigger, crons)
	now := time.Now().UTC()
	for _, t := range triggers {
		if t.Kind != TriggerCron || !ours[t.Name] {
			continue
		}
		if !t.NextRun.After(now) {
			s.fireCron(ctx, t, now)
			continue
		}
		if d := t.NextRun.Sub(now); d < wait {
			wait = d
		}
	}
	return wait
}

// consume runs one workflow's schedule.on over the events logged after its
// cursor. Each time the strategy is satisfied, the run of the consumed
// events is started (with an id derived from them) and then the cursor
// moves past them; a crash in between starts the same id again, which
// fails harmlessly. Events that nothing consumed move the cursor too, but
// a group still waiting for more events holds it back, so that after a
// restart the group is rebuilt from the log.
func (s *eventStarter) consume(ctx context.Context, def *dsl.Workflow) error {
	d := def.Document
	key := onCursorName(d.Namespace, d.Name, d.Version)
	log := s.e.opts.EventLog
	last, err := log.Last(ctx)
	if err != nil {
		return err
	}
	pos, err := log.Store().EventCursor(ctx, key, last)
	if err != nil {
		return err
	}
	strategy, err := events.ParseStrategy(def.Schedule.On, nil)
	if err != nil {
		return problem.Configuration("schedule.on: %v", err)
	}
	eval, err := s.e.namespaceEvaluator(ctx, d.Namespace)
	if err != nil {
		return err
	}
	newConsumption := func() *events.Consumption {
		c := events.NewConsumption(strategy, eval, "envelope")
		if s.e.log != nil {
			c.SetLogger(s.e.log.With("workflow", key))
		}
		return c
	}
	c := newConsumption()
	settled := pos // the cursor may move here: nothing before it is pending
	for {
		page, err := log.Read(ctx, store.EventFilter{After: pos, Limit: 500})
		if err != nil {
			return err
		}
		for _, le := range page {
			pos = le.Seq
			if _, p := c.Offer(le.Event); p != nil {
				return p
			}
			if c.Done() {
				consumed := c.Consumed()
				input := make([]any, len(consumed))
				for i, ev := range consumed {
					input[i] = ev
				}
				id := eventStartID(key, consumed)
				startCtx := ctx
				if s.e.opts.Tracer != nil {
					// The run joins the trace of the event that completed it.
					startCtx = telemetry.FromEvent(ctx, consumed[len(consumed)-1])
				}
				if _, err := s.e.start(startCtx, id, "", d.Namespace, d.Name, d.Version, input); err != nil && !errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("starting the run of event %v: %w", consumed[len(consumed)-1]["id"], err)
				}
				c = newConsumption()
				settled = le.Seq
			} else if len(c.Consumed()) == 0 {
				settled = le.Seq
			}
		}
		if len(page) < 500 {
			break
		}
	}
	from, err := log.Store().EventCursor(ctx, key, last)
	if err != nil || settled == from {
		return err
	}
	_, err = log.Store().AdvanceEventCursor(ctx, key, from, settled)
	return err
}

func (s *eventStarter) fireCron(ctx context.Context, t *store.Trigger, now time.Time) {
	spec, err := parseCron(t.Spec)
	if err != nil {
		s.e.log.Error("cron trigger has an invalid expression", "trigger", t.Name, "err", err)
		return
	}
	due := t.NextRun
	id := triggerID(t.Name, fmt.Sprint(due.UnixNano()))
	input := map[string]any{"trigger": t.Name, "time": due.Format(time.RFC3339)}
	if _, err := s.e.start(ctx, id, "", t.Namespace, t.Workflow, "", input); err != nil && !errors.Is(err, store.ErrConflict) {
		s.e.log.Error("cron trigger could not start its workflow; the slot is skipped", "trigger", t.Name, "due", due, "err", err)
	}
	next := *t
	next.LastRun, next.LastInvocation = due, id
	// Missed slots are not made up one by one, as for schedules.
	next.NextRun = spec.next(now)
	if _, err := s.e.opts.EventLog.Store().AdvanceTrigger(ctx, &next, due); err != nil {
		s.e.log.Error("cron trigger cannot advance", "trigger", t.Name, "err", err)
	}
}

// syncSubscriptions subscribes message triggers that are new and ends the
// subscriptions of those that are gone.
func (s *eventStarter) syncSubscriptions(ctx context.Context, triggers []*store.Trigger) {
	want := map[string]*store.Trigger{}
	for _, t := range triggers {
		if t.Kind == TriggerNATS || t.Kind == TriggerMQTT {
			want[t.Name] = t
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, sub := range s.subs {
		if t, ok := want[name]; !ok || t.Spec != sub.trigger.Spec || t.Kind != sub.trigger.Kind || t.Workflow != sub.trigger.Workflow || t.Namespace != sub.trigger.Namespace {
			sub.stop()
			delete(s.subs, name)
		}
	}
	for name, t := range want {
		if _, ok := s.subs[name]; ok {
			continue
		}
		src := s.e.opts.TriggerSources[t.Kind]
		if src == nil {
			continue
		}
		trig := *t
		stop, err := src.Subscribe(ctx, t.Spec, "baton-trigger-"+t.Name, func(ctx context.Context, msgID, topic string, payload []byte) error {
			return s.fireMessage(ctx, &trig, msgID, topic, payload)
		})
		if err != nil {
			s.e.log.Error("trigger cannot subscribe; retrying", "trigger", t.Name, "err", err)
			continue
		}
		s.subs[name] = subscription{trigger: trig, stop: stop}
	}
}

func (s *eventStarter) unsubscribeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, sub := range s.subs {
		sub.stop()
		delete(s.subs, name)
	}
}

// fireMessage starts a trigger's workflow with a message as input, as a
// CloudEvent (see messageEvent).
func (s *eventStarter) fireMessage(ctx context.Context, t *store.Trigger, msgID, topic string, payload []byte) error {
	id := ""
	if msgID != "" {
		id = triggerID(t.Name, "msg\x00"+msgID)
	} else {
		v7, err := uuid.NewV7()
		if err != nil {
			return err
		}
		id = v7.String()
	}
	input := messageEvent(t, id, msgID, topic, payload, time.Now())
	if _, err := s.e.start(ctx, id, "", t.Namespace, t.Workflow, "", input); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("trigger %s: %w", t.Name, err)
	}
	return nil
}
