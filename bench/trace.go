package bench

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Trace is a table of per-minute invocation counts in the layout of the
// Azure Functions 2019 public dataset: one row per function, named by
// hashed owner, app and function, with its trigger kind and one count per
// minute (1440 for a day; shorter files are accepted).
type Trace struct {
	Minutes int
	Rows    []TraceRow
}

// TraceRow is one function's invocation counts.
type TraceRow struct {
	Owner, App, Function, Trigger string
	Counts                        []int
}

// Total is the row's invocation count over the whole trace.
func (r *TraceRow) Total() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

var traceColumns = []string{"HashOwner", "HashApp", "HashFunction", "Trigger"}

// ReadTrace parses a trace; name prefixes error messages, which give the
// line (and column) of the first malformed entry.
func ReadTrace(r io.Reader, name string) (*Trace, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1 // checked here, with a clearer message
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty trace: want a header line %s,1,...,1440", name, strings.Join(traceColumns, ","))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(header) < len(traceColumns)+1 {
		return nil, fmt.Errorf("%s:1: header has %d columns; want %s followed by minute columns 1,2,...", name, len(header), strings.Join(traceColumns, ","))
	}
	for i, want := range traceColumns {
		if strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff")) != want {
			return nil, fmt.Errorf("%s:1: column %d is %q, want %q", name, i+1, header[i], want)
		}
	}
	minutes := len(header) - len(traceColumns)
	for i := range minutes {
		if strings.TrimSpace(header[len(traceColumns)+i]) != strconv.Itoa(i+1) {
			return nil, fmt.Errorf("%s:1: column %d is %q, want minute %d", name, len(traceColumns)+i+1, header[len(traceColumns)+i], i+1)
		}
	}
	t := &Trace{Minutes: minutes}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("%s:%d: %d columns, want %d like the header", name, line, len(rec), len(header))
		}
		row := TraceRow{Owner: rec[0], App: rec[1], Function: rec[2], Trigger: rec[3], Counts: make([]int, minutes)}
		for i := range minutes {
			field := strings.TrimSpace(rec[len(traceColumns)+i])
			n, err := strconv.Atoi(field)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%s:%d: column %d (minute %d): %q is not a non-negative invocation count", name, line, len(traceColumns)+i+1, i+1, field)
			}
			row.Counts[i] = n
		}
		t.Rows = append(t.Rows, row)
	}
	if len(t.Rows) == 0 {
		return nil, fmt.Errorf("%s: the trace has a header but no function rows", name)
	}
	return t, nil
}

// Write writes the trace in the Azure layout.
func (t *Trace) Write(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string(nil), traceColumns...)
	for i := range t.Minutes {
		header = append(header, strconv.Itoa(i+1))
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	for _, r := range t.Rows {
		rec[0], rec[1], rec[2], rec[3] = r.Owner, r.App, r.Function, r.Trigger
		for i, c := range r.Counts {
			rec[len(traceColumns)+i] = strconv.Itoa(c)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Busiest returns the k rows with the most invocations (all rows when k
// is zero or exceeds them), busiest first; ties keep file order, so the
// pick is deterministic.
func (t *Trace) Busiest(k int) []TraceRow {
	rows := slices.Clone(t.Rows)
	slices.SortStableFunc(rows, func(a, b TraceRow) int { return b.Total() - a.Total() })
	if k > 0 && k < len(rows) {
		rows = rows[:k]
	}
	return rows
}

// SyntheticTraceOptions shape a generated trace.
type SyntheticTraceOptions struct {
	Functions int
	// Minutes defaults to 1440, a day.
	Minutes int
	// MedianPerMinute is the median over functions of the mean invocation
	// rate; the rates are lognormal around it. Default 0.5.
	MedianPerMinute float64
	// Sigma is the lognormal's shape: rates spread over orders of
	// magnitude as in the Azure data. Default 2.
	Sigma float64
	Seed  uint64
}

// SyntheticTrace generates a trace whose per-function mean rates are
// heavy-tailed (lognormal), so that a few functions carry most of the
// load and most are rarely invoked, as Shahrad et al. (ATC '20) found in
// the Azure data. A quarter of the functions are timer-triggered and fire
// periodically; the others are HTTP or queue triggered, with Poisson
// per-minute counts under a diurnal cycle.
func SyntheticTrace(opts SyntheticTraceOptions) *Trace {
	if opts.Minutes <= 0 {
		opts.Minutes = 1440
	}
	if opts.MedianPerMinute <= 0 {
		opts.MedianPerMinute = 0.5
	}
	if opts.Sigma <= 0 {
		opts.Sigma = 2
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	hash := func() string {
		return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	}
	t := &Trace{Minutes: opts.Minutes}
	owner, app := hash(), hash()
	for f := range opts.Functions {
		if f%8 == 0 {
			owner = hash()
		}
		if f%3 == 0 {
			app = hash()
		}
		row := TraceRow{Owner: owner, App: app, Function: hash(), Counts: make([]int, opts.Minutes)}
		mean := opts.MedianPerMinute * math.Exp(opts.Sigma*rng.NormFloat64())
		switch {
		case rng.Float64() < 0.25:
			row.Trigger = "timer"
			// A timer fires every period minutes, the period chosen so
			// that the mean rate is kept (at most once a minute).
			period := max(1, int(math.Round(1/math.Min(mean, 1))))
			phase := rng.IntN(period)
			for m := phase; m < opts.Minutes; m += period {
				row.Counts[m] = max(1, int(math.Round(mean)))
			}
		default:
			row.Trigger = "http"
			if rng.Float64() < 0.3 {
				row.Trigger = "queue"
			}
			peak := rng.Float64() * float64(opts.Minutes)
			for m := range row.Counts {
				// A day-long sinusoid between 0.4 and 1.6 of the mean.
				diurnal := 1 + 0.6*math.Cos(2*math.Pi*(float64(m)-peak)/1440)
				row.Counts[m] = poisson(rng, mean*diurnal)
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// poisson draws a Poisson variate: Knuth's product method for small
// means, a rounded normal approximation for large ones.
func poisson(rng *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*rng.NormFloat64())))
	}
	limit, p, k := math.Exp(-mean), 1.0, 0
	for {
		p *= rng.Float64()
		if p <= limit {
			return k
		}
		k++
	}
}
