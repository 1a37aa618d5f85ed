package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
)

// DefaultHistorySample is how many measured invocations' histories a run
// over REST reads per configuration by default: enough that the p99 of
// the figures taken from histories rests on twenty invocations, few
// enough that reading them is a small, fixed part of a long run.
const DefaultHistorySample = 2000

// fixedCalls is how many calls every completed invocation of a task list
// runs, when its definition alone says so: calls, runs and emits (what
// hasCalls counts as calls), sets, nested lists and forks whose branches
// all run, with no condition, jump, loop, switch, try (which retries) or
// function of `use` (which may stand for several calls). ok is false
// otherwise: then the count is known only from each invocation's
// history.
func fixedCalls(def *dsl.Workflow) (calls int, ok bool) {
	if def == nil || def.Use != nil && len(def.Use.Functions) > 0 {
		return 0, false
	}
	return fixedListCalls(def.Do)
}

func fixedListCalls(l dsl.TaskList) (int, bool) {
	n := 0
	for _, nt := range l {
		t := nt.Task
		if t.If != "" || t.Then != "" {
			return 0, false
		}
		switch t.Kind {
		case dsl.KindCall, dsl.KindRun, dsl.KindEmit:
			n++
		case dsl.KindSet:
		case dsl.KindDo:
			k, ok := fixedListCalls(t.Do)
			if !ok {
				return 0, false
			}
			n += k
		case dsl.KindFork:
			if t.Fork.Compete {
				return 0, false
			}
			k, ok := fixedListCalls(t.Fork.Branches)
			if !ok {
				return 0, false
			}
			n += k
		default:
			return 0, false
		}
	}
	return n, true
}

// historySampler chooses, over REST, the completed measured invocations
// whose histories are read: a uniform sample of at most limit per
// configuration (reservoir sampling, so the choice is uniform over the
// whole run without knowing its length, and the records it holds until
// the end are bounded). Only configurations of durable workflows that fix
// their call count are sampled: every other invocation is still counted,
// its calls by that count. It is not safe for concurrent use.
type historySampler struct {
	limit int
	rng   *rand.Rand
	// fixed is, by configuration then stream, the workflow's call count,
	// or -1 when it does not fix one and every history is read.
	fixed [][]int
	// seen counts each configuration's candidates, kept its chosen ones.
	seen []int
	kept [][]record
}

func newHistorySampler(limit int, seed uint64, wfs [][]*Workflow) *historySampler {
	h := &historySampler{limit: limit, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seen: make([]int, len(wfs)), kept: make([][]record, len(wfs))}
	for _, streams := range wfs {
		var counts []int
		for _, wf := range streams {
			n, ok := fixedCalls(wf.Def)
			// A server keeps only the ends of a non-durable invocation's
			// history, so its calls are never counted from one: such a
			// configuration is read whole, as before.
			if !ok || !engine.Durable(wf.Def) {
				n = -1
			}
			counts = append(counts, n)
		}
		h.fixed = append(h.fixed, counts)
	}
	return h
}

// sampled reports whether a configuration's histories are sampled rather
// than all read.
func (h *historySampler) sampled(config int) bool {
	for _, n := range h.fixed[config] {
		if n < 0 {
			return false
		}
	}
	return true
}

// offer takes an ended invocation. read says whether its history is to be
// read after the load outside the sample: a failure's, or any of a
// configuration that is not sampled. The sample's are kept here until
// take. unread, when ok, is the invocation to count without its history:
// rec itself, or the one it displaced from the sample.
func (h *historySampler) offer(rec record, measured bool) (read bool, unread record, ok bool) {
	if rec.err != nil || !h.sampled(rec.config) || rec.out.Status != core.StatusCompleted {
		// A failure's history says why it failed.
		return true, record{}, false
	}
	if !measured {
		// A warm-up invocation's figures are not summarised: its history
		// has nothing to add to its count.
		return false, rec, true
	}
	c := rec.config
	h.seen[c]++
	if len(h.kept[c]) < h.limit {
		h.kept[c] = append(h.kept[c], rec)
		return false, record{}, false
	}
	if j := h.rng.IntN(h.seen[c]); j < h.limit {
		out := h.kept[c][j]
		h.kept[c][j] = rec
		return false, out, true
	}
	return false, rec, true
}

// take hands over the chosen records, to be read, and forgets them.
func (h *historySampler) take() []record {
	var all []record
	for c := range h.kept {
		all = append(all, h.kept[c]...)
		h.kept[c] = nil
	}
	return all
}

// unreadSample is an invocation's sample without its history: what the
// client saw of it (its end, its latency), and its calls from its
// workflow's fixed count.
func (r *runner) unreadSample(rec *record, calls int) Sample {
	s := r.clientSample(rec)
	s.Unread, s.Calls = true, calls
	return s
}

// checkCalls fails when a read history's calls differ from the count its
// workflow fixes, which the unread invocations are counted by.
func (h *historySampler) checkCalls(s *Sample) error {
	want := h.fixed[s.Config][s.Stream]
	if want < 0 || s.Status != string(core.StatusCompleted) || len(s.Tasks) == want {
		return nil
	}
	return fmt.Errorf("bench: invocation %s ran %d calls where its workflow fixes %d: the unread invocations cannot be counted by it", s.ID, len(s.Tasks), want)
}
