package rowcodec

import "github.com/batonflow/baton/store"

// TriggerColumns lists the triggers table's columns in the order
// ScanTrigger reads them; both belong together so that a query and its
// scan cannot disagree.
const TriggerColumns = `name, namespace, workflow, kind, spec, next_run, last_run, last_invocation, created_at`

// ScanTrigger reads a row selected with TriggerColumns. Every backend keeps
// trigger times as Unix nanoseconds, because AdvanceTrigger compares
// next_run exactly.
func ScanTrigger(sc Scanner) (*store.Trigger, error) {
	var t store.Trigger
	var next, last, created int64
	if err := sc.Scan(&t.Name, &t.Namespace, &t.Workflow, &t.Kind, &t.Spec, &next, &last, &t.LastInvocation, &created); err != nil {
		return nil, err
	}
	t.NextRun, t.LastRun, t.CreatedAt = FromNanos(next), FromNanos(last), FromNanos(created)
	return &t, nil
}
