package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/postgres"
)

// newSourceReplica is a cluster replica with an event log, so that it runs
// triggers as well as schedules.
func newSourceReplica(t *testing.T, dsn, id string) *replica {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, func(o *engine.Options) {
		o.Cluster = &engine.ClusterOptions{Coordinator: st, ReplicaID: id, Config: fastLeases, Poll: 100 * time.Millisecond}
		o.EventLog = events.NewLog(st, nil, nil)
		o.SchedulePoll = 50 * time.Millisecond
	})
	r := &replica{Engine: e, st: st}
	t.Cleanup(func() { r.close() })
	return r
}

func sources(r *replica) []string {
	s, _ := r.ClusterStatus()
	return s.Sources
}

// runner returns the replica among rs that runs source, if exactly one
// does.
func runner(source string, rs ...*replica) *replica {
	var found []*replica
	for _, r := range rs {
		if slices.Contains(sources(r), source) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return nil
	}
	return found[0]
}

func TestClusterSchedulesAndTriggersRunOnTheirPartitionsOwner(t *testing.T) {
	dsn := clusterSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := newSourceReplica(t, dsn, "a"), newSourceReplica(t, dsn, "b")
	waitFor(t, 10*time.Second, "the replicas split the partitions", func() bool {
		return len(owned(a))+len(owned(b)) == 64 && len(owned(a)) == 32
	})
	for _, r := range []*replica{a, b} {
		if err := r.Ready(ctx); err != nil {
			t.Fatalf("a member holding partitions is not ready: %v", err)
		}
	}
	if _, err := a.ApplyWorkflow(ctx, "tick.yaml", []byte(scheduled("1.0.0", "every: {milliseconds: 300}"))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateTrigger(ctx, &store.Trigger{Name: "minutely", Namespace: "sched", Workflow: "tick", Kind: engine.TriggerCron, Spec: "* * * * *"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyWorkflow(ctx, "on.yaml", []byte(onDoc)); err != nil {
		t.Fatal(err)
	}
	const sched, trig, on = "schedule sched/tick/1.0.0", "trigger minutely", "schedule.on shop/onorder/1.0.0"
	waitFor(t, 10*time.Second, "one replica runs each source", func() bool {
		return runner(sched, a, b) != nil && runner(trig, a, b) != nil && runner(on, a, b) != nil
	})
	// An event ingested through b starts one run, wherever schedule.on runs.
	if _, err := b.IngestEvents(ctx, []events.Event{{"specversion": "1.0", "id": "o1", "source": "/shop", "type": "order.placed", "data": map[string]any{"orderId": "1"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event's run starts", func() bool { return len(startsOf(t, a.st)) == 1 })
	waitFor(t, 10*time.Second, "three scheduled runs", func() bool { return len(invocationsOf(t, a.st, "1.0.0")) >= 3 })

	// A due cron slot runs once, started by the trigger's replica.
	el := store.EventLog(a.st)
	tr, err := el.GetTrigger(ctx, "minutely")
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().UTC().Add(-time.Minute).Truncate(time.Minute)
	moved := *tr
	moved.NextRun = due
	if ok, err := el.AdvanceTrigger(ctx, &moved, tr.NextRun); err != nil || !ok {
		t.Fatalf("making the slot due: %v %v", ok, err)
	}
	waitFor(t, 10*time.Second, "the cron slot ran", func() bool {
		cur, err := el.GetTrigger(ctx, "minutely")
		return err == nil && cur.LastRun.Equal(due) && cur.LastInvocation != ""
	})

	// The schedule's replica stops: the other takes its partitions, and
	// with them the schedule, whose runs go on.
	first := runner(sched, a, b)
	other := a
	if first == a {
		other = b
	}
	first.close()
	waitFor(t, 15*time.Second, "the other replica runs the schedule", func() bool {
		return slices.Contains(sources(other), sched) && slices.Contains(sources(other), trig) && slices.Contains(sources(other), on)
	})
	if _, err := other.IngestEvents(ctx, []events.Event{{"specversion": "1.0", "id": "o2", "source": "/shop", "type": "order.placed", "data": map[string]any{"orderId": "2"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second event's run starts", func() bool { return len(startsOf(t, other.st)) == 2 })
	before := len(invocationsOf(t, other.st, "1.0.0"))
	waitFor(t, 10*time.Second, "scheduled runs go on", func() bool { return len(invocationsOf(t, other.st, "1.0.0")) >= before+3 })

	st, _ := other.ClusterStatus()
	if st.Takeovers == 0 || st.Acquisitions < st.Takeovers || st.Renewals == 0 {
		t.Fatalf("after taking the stopped replica's partitions: %+v", st)
	}

	// A replica handing its partitions over is not ready for work.
	leaveCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := other.LeaveCluster(leaveCtx); err != nil {
		t.Fatal(err)
	}
	if err := other.Ready(ctx); err == nil {
		t.Fatal("a replica that left the cluster reports ready")
	}
}
