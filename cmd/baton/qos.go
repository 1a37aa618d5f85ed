package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/qos"
)

// qosConfig is the QoS scheduling flags of `baton server`.
type qosConfig struct {
	// mode is "on", "off" or a comma-separated list of ablations.
	mode    string
	seats   string
	backlog int
	maxWait time.Duration
}

func addQoSFlags(cmd *cobra.Command, cfg *engineConfig) {
	q := &cfg.qos
	cmd.Flags().StringVar(&q.mode, "qos", "on",
		"QoS scheduling (docs/qos.md): on, off (arrival order), or ablations: no-edf, no-continuations, no-admission, no-cpu-priority (comma-separated)")
	cmd.Flags().StringVar(&q.seats, "qos-seats", "",
		"G2 seats per runtime pool, e.g. wasm=3,process=5,http=256; 0 is no limit for process and http (default: CPUs+1, 2×CPUs+1, no limit)")
	cmd.Flags().IntVar(&q.backlog, "qos-backlog", 0,
		"calls waiting at G2 that hold back new starts of the same or lower class (default 2×CPUs, at least 4)")
	cmd.Flags().DurationVar(&q.maxWait, "qos-max-wait", 2*time.Second,
		"longest predicted wait for admission of a synchronous start; a start predicted to wait longer is refused at arrival (503)")
}

// options turns the flags into scheduler options; ok false when QoS is
// off.
func (q qosConfig) options() (qos.Options, bool, error) {
	var o qos.Options
	switch strings.TrimSpace(q.mode) {
	case "", "off":
		// The zero config is a local `baton run`: the user's own work,
		// in arrival order.
		return o, false, nil
	case "on":
	default:
		for _, a := range strings.Split(q.mode, ",") {
			switch strings.TrimSpace(a) {
			case "no-edf":
				o.NoEDF = true
			case "no-continuations":
				o.NoContinuations = true
			case "no-admission":
				o.NoAdmission = true
			case "no-cpu-priority":
				o.NoCPUPriority = true
			default:
				return o, false, fmt.Errorf("--qos %q: want on, off, or ablations among no-edf, no-continuations, no-admission, no-cpu-priority", q.mode)
			}
		}
	}
	if q.seats != "" {
		o.Seats = map[string]int{}
		for _, kv := range strings.Split(q.seats, ",") {
			pool, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
			seats, err := strconv.Atoi(n)
			// Compiled wasm computes on this server's CPUs: without seats
			// it would crowd out the engine. Processes and HTTP calls may
			// wait on something else, so they may go unlimited.
			if !ok || err != nil || seats < 0 || (seats == 0 && pool == qos.PoolWasm) ||
				(pool != qos.PoolWasm && pool != qos.PoolProcess && pool != qos.PoolHTTP) {
				return o, false, fmt.Errorf("--qos-seats %q: want POOL=N pairs, POOL one of wasm, process, http and N positive (or 0, no limit, for process and http)", kv)
			}
			o.Seats[pool] = seats
		}
	}
	if q.backlog < 0 {
		return o, false, fmt.Errorf("--qos-backlog %d: want zero (the default) or more", q.backlog)
	}
	o.BacklogTarget = q.backlog
	if q.maxWait <= 0 {
		return o, false, fmt.Errorf("--qos-max-wait %s: want a positive duration", q.maxWait)
	}
	o.MaxWait = q.maxWait
	return o, true, nil
}

// configureQoS adds the QoS scheduler to the engine options, with call
// costs from the prewarm statistics (or statistics of its own when the
// server does not prewarm) and pools by the functions' runtimes.
func (q qosConfig) configure(opts *engine.Options, fns *functionHost) (*qos.Scheduler, error) {
	o, on, err := q.options()
	if err != nil || !on {
		return nil, err
	}
	if fns.prewarm != nil {
		o.Costs = fns.prewarm.planner.Stats()
	} else {
		stats := prewarm.NewStats()
		o.Costs, o.Learn = stats, stats.ObserveExec
	}
	// The pools' seats are settled now, from the CPUs: DefaultSeats reads
	// GOMAXPROCS, which the wasm seats then raise.
	seats := map[string]int{}
	for _, pool := range []string{qos.PoolWasm, qos.PoolProcess, qos.PoolHTTP} {
		seats[pool] = qos.DefaultSeats(pool)
	}
	maps.Copy(seats, o.Seats)
	o.Seats = seats
	s := qos.New(o)
	wasm.EnsureProcs(seats[qos.PoolWasm])
	opts.QoS = s
	mgr := fns.Manager
	opts.QoSPool = func(ctx context.Context, namespace, fn string) string {
		kind, err := mgr.Runtime(ctx, namespace, fn)
		if err != nil {
			// Not deployed: the call fails at once; any pool will do.
			return qos.PoolWasm
		}
		switch kind {
		case function.KindProcess:
			return qos.PoolProcess
		case function.KindHTTP:
			return qos.PoolHTTP
		}
		return qos.PoolWasm
	}
	return s, nil
}

func newQoSCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "qos",
		Short: "Show the QoS scheduling of a server: queues, seats, rejections",
		Long: "QoS shows how a baton server schedules work by priority class, namespace and\n" +
			"deadline (see docs/qos.md). Namespaces' weights, quotas and classes are set in\n" +
			"their policy documents (baton policy set, section qos).",
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the admission queue, the seats of each pool and the rejections",
		Long: "Status prints the starts queued for admission (G1) and admitted but not yet\n" +
			"at G2, each runtime pool's seats with those in use and the calls queued by class\n" +
			"and namespace, and the rejections counted since the server started.",
		Example: "  baton qos status\n  baton qos status -o json",
		Args:    cobra.NoArgs,
	}
	out := addOutputFlag(status)
	r.run(status, out, func(ctx context.Context, c *client.Client, args []string) error {
		s, err := c.QoSStatus(ctx)
		if err != nil {
			return err
		}
		return out.print(status.OutOrStdout(), s, func(w io.Writer) error { return qosTable(w, s) })
	})
	cmd.AddCommand(status)
	return cmd
}

// qosTable prints the gates' state, one row per queue or seat count.
func qosTable(w io.Writer, s *qos.Status) error {
	if !s.Enabled {
		fmt.Fprintln(w, "QoS scheduling is off on this server (--qos=off): starts and calls go in arrival order.")
		return nil
	}
	mode := "on"
	if len(s.Ablations) > 0 {
		mode = strings.Join(s.Ablations, ",")
	}
	fmt.Fprintf(w, "QoS %s; admitted starts not yet at G2: %d (backlog target %d)\n", mode, s.Admission.Pending, s.BacklogTarget)
	fmt.Fprintln(w, "GATE\tPOOL\tSEATS\tCLASS\tNAMESPACE\tQUEUED\tIN USE")
	for _, q := range s.Admission.Queued {
		fmt.Fprintf(w, "g1\t-\t-\t%s\t%s\t%d\t-\n", q.Class, q.Namespace, q.Count)
	}
	for _, p := range s.Pools {
		rows := map[[2]string][2]int{}
		for _, q := range p.Queued {
			r := rows[[2]string{q.Class, q.Namespace}]
			r[0] = q.Count
			rows[[2]string{q.Class, q.Namespace}] = r
		}
		for _, q := range p.InUse {
			r := rows[[2]string{q.Class, q.Namespace}]
			r[1] = q.Count
			rows[[2]string{q.Class, q.Namespace}] = r
		}
		seats := strconv.Itoa(p.Seats)
		if p.Seats == 0 {
			seats = "unlimited"
		}
		if p.Yielding > 0 {
			seats += fmt.Sprintf(", %d yielding", p.Yielding)
		}
		if len(rows) == 0 {
			fmt.Fprintf(w, "g2\t%s\t%s\t-\t-\t0\t0\n", p.Pool, seats)
		}
		for _, k := range sortedKeys(rows) {
			fmt.Fprintf(w, "g2\t%s\t%s\t%s\t%s\t%d\t%d\n", p.Pool, seats, k[0], k[1], rows[k][0], rows[k][1])
		}
	}
	if len(s.Rejected) > 0 {
		fmt.Fprintln(w, "\nREJECTED\tCLASS\tNAMESPACE\tCOUNT")
		for _, r := range s.Rejected {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", r.Reason, r.Class, r.Namespace, r.Count)
		}
	}
	return nil
}

func sortedKeys(m map[[2]string][2]int) [][2]string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	})
	return keys
}
