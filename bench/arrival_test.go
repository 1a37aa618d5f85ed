package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPoissonScheduleMeanRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const rate = 500.0
	horizon := 100 * time.Second
	arr := PoissonSchedule(rng, rate, horizon, 0)
	want := rate * horizon.Seconds()
	if got := float64(len(arr)); math.Abs(got-want)/want > 0.02 {
		t.Errorf("%v arrivals in %s, want %v ± 2%%", got, horizon, want)
	}
	for i := 1; i < len(arr); i++ {
		if arr[i].At < arr[i-1].At {
			t.Fatalf("arrivals out of order at %d", i)
		}
	}
	if last := arr[len(arr)-1].At; last >= horizon {
		t.Errorf("arrival at %s beyond the horizon", last)
	}
	// The same seed gives the same schedule.
	again := PoissonSchedule(rand.New(rand.NewPCG(7, 8)), rate, horizon, 0)
	if !reflect.DeepEqual(arr, again) {
		t.Error("a fixed seed did not reproduce the schedule")
	}
	if n := len(PoissonSchedule(rng, rate, 0, 50)); n != 50 {
		t.Errorf("limit 50 gave %d arrivals", n)
	}
}

func TestBurstSchedule(t *testing.T) {
	arr := BurstSchedule(3, 100*time.Millisecond, 250*time.Millisecond, 0)
	var got []time.Duration
	for _, a := range arr {
		got = append(got, a.At)
	}
	ms := time.Millisecond
	want := []time.Duration{0, 0, 0, 100 * ms, 100 * ms, 100 * ms, 200 * ms, 200 * ms, 200 * ms}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bursts = %v, want %v", got, want)
	}
	if n := len(BurstSchedule(3, time.Second, 0, 5)); n != 5 {
		t.Errorf("limit 5 gave %d", n)
	}
}

func TestTraceScheduleReplaysCounts(t *testing.T) {
	rows := []TraceRow{
		{Function: "a", Counts: []int{3, 0, 5}},
		{Function: "b", Counts: []int{1, 2, 0}},
	}
	const speedup = 60 // a trace minute lasts a second
	arr := TraceSchedule(rand.New(rand.NewPCG(1, 2)), rows, speedup, 0, 0)
	counts := [2][3]int{}
	for i, a := range arr {
		if i > 0 && a.At < arr[i-1].At {
			t.Fatalf("arrivals out of order at %d", i)
		}
		counts[a.Stream][int(a.At/time.Second)]++
	}
	want := [2][3]int{{3, 0, 5}, {1, 2, 0}}
	if counts != want {
		t.Errorf("per-minute counts = %v, want %v", counts, want)
	}
	// A horizon of 1.5 trace-seconds keeps the first minute whole and
	// part of the second.
	cut := TraceSchedule(rand.New(rand.NewPCG(1, 2)), rows, speedup, 1500*time.Millisecond, 0)
	for _, a := range cut {
		if a.At >= 1500*time.Millisecond {
			t.Errorf("arrival at %s beyond the horizon", a.At)
		}
	}
	if len(cut) < 4 || len(cut) > 6 {
		t.Errorf("cut schedule has %d arrivals, want 4 to 6", len(cut))
	}
}

func TestReadTrace(t *testing.T) {
	header := "HashOwner,HashApp,HashFunction,Trigger,1,2,3\n"
	tests := []struct {
		name    string
		src     string
		wantErr string
		rows    int
	}{
		{"good", header + "o,a,f1,http,1,0,2\no,a,f2,timer,0,0,1\n", "", 2},
		{"blank line ignored", header + "o,a,f1,http,1,0,2\n\n", "", 1},
		{"bad count", header + "o,a,f1,http,1,0,2\no,a,f2,http,1,x,2\n", "trace.csv:3: column 6 (minute 2)", 0},
		{"negative count", header + "o,a,f1,http,-1,0,2\n", "trace.csv:2: column 5 (minute 1)", 0},
		{"short row", header + "o,a,f1,http,1,0\n", "trace.csv:2: 6 columns, want 7", 0},
		{"bad header", "Owner,HashApp,HashFunction,Trigger,1\n", "trace.csv:1: column 1", 0},
		{"minutes out of order", "HashOwner,HashApp,HashFunction,Trigger,1,3\n", "trace.csv:1: column 6", 0},
		{"no rows", header, "no function rows", 0},
		{"empty", "", "empty trace", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ReadTrace(strings.NewReader(tt.src), "trace.csv")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Rows) != tt.rows || tr.Minutes != 3 {
				t.Errorf("%d rows over %d minutes", len(tr.Rows), tr.Minutes)
			}
		})
	}
}

func TestSyntheticTrace(t *testing.T) {
	tr := SyntheticTrace(SyntheticTraceOptions{Functions: 200, Minutes: 120, Seed: 3})
	var buf bytes.Buffer
	if err := tr.Write(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTrace(&buf, "synthetic.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, tr) {
		t.Fatal("the trace did not survive writing and reading")
	}
	// Heavy tail: the busiest tenth of the functions carry most calls.
	total, top := 0, 0
	busiest := tr.Busiest(0)
	for i, r := range busiest {
		total += r.Total()
		if i < len(busiest)/10 {
			top += r.Total()
		}
	}
	if total == 0 || float64(top)/float64(total) < 0.5 {
		t.Errorf("busiest 10%% carry %d of %d invocations, want over half", top, total)
	}
	if got := tr.Busiest(5); len(got) != 5 || got[0].Total() < got[4].Total() {
		t.Errorf("Busiest(5) = %d rows, not busiest first", len(got))
	}
	if !reflect.DeepEqual(SyntheticTrace(SyntheticTraceOptions{Functions: 200, Minutes: 120, Seed: 3}), tr) {
		t.Error("a fixed seed did not reproduce the trace")
	}
}
