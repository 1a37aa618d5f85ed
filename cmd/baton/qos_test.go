package main

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/qos"
)

func TestQoSFlags(t *testing.T) {
	tests := []struct {
		cfg     qosConfig
		on      bool
		check   func(qos.Options) bool
		wantErr string
	}{
		{cfg: qosConfig{mode: "on", maxWait: time.Second}, on: true, check: func(o qos.Options) bool { return o.MaxWait == time.Second && !o.NoEDF }},
		{cfg: qosConfig{mode: "off", maxWait: time.Second}, on: false},
		{cfg: qosConfig{}, on: false}, // baton run
		{cfg: qosConfig{mode: "no-edf,no-admission", maxWait: time.Second}, on: true,
			check: func(o qos.Options) bool { return o.NoEDF && o.NoAdmission && !o.NoContinuations }},
		{cfg: qosConfig{mode: "on", seats: "wasm=3,http=64", backlog: 7, maxWait: time.Second}, on: true,
			check: func(o qos.Options) bool {
				return o.Seats[qos.PoolWasm] == 3 && o.Seats[qos.PoolHTTP] == 64 && o.BacklogTarget == 7
			}},
		{cfg: qosConfig{mode: "fast", maxWait: time.Second}, wantErr: "--qos"},
		{cfg: qosConfig{mode: "on", seats: "gpu=2", maxWait: time.Second}, wantErr: "--qos-seats"},
		{cfg: qosConfig{mode: "on", seats: "wasm=0", maxWait: time.Second}, wantErr: "--qos-seats"},
		{cfg: qosConfig{mode: "on", seats: "http=0,process=0", maxWait: time.Second}, on: true,
			check: func(o qos.Options) bool {
				s, ok := o.Seats[qos.PoolHTTP]
				return ok && s == 0 && o.Seats[qos.PoolProcess] == 0
			}},
		{cfg: qosConfig{mode: "on", seats: "http=-1", maxWait: time.Second}, wantErr: "--qos-seats"},
		{cfg: qosConfig{mode: "on", backlog: -1, maxWait: time.Second}, wantErr: "--qos-backlog"},
		{cfg: qosConfig{mode: "on"}, wantErr: "--qos-max-wait"},
	}
	for _, tt := range tests {
		o, on, err := tt.cfg.options()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.wantErr)
			}
			continue
		}
		if err != nil || on != tt.on || (tt.check != nil && !tt.check(o)) {
			t.Errorf("%+v: %+v on=%v err=%v", tt.cfg, o, on, err)
		}
	}
}

func TestQoSTable(t *testing.T) {
	var b strings.Builder
	if err := qosTable(&b, &qos.Status{}); err != nil || !strings.Contains(b.String(), "off") {
		t.Fatalf("off: %q %v", b.String(), err)
	}
	b.Reset()
	st := &qos.Status{Enabled: true, BacklogTarget: 4,
		Admission: qos.GateStatus{Queued: []qos.FlowCount{{Class: "batch", Namespace: "b", Count: 12}}, Pending: 1},
		Pools: []qos.PoolStatus{{Pool: "wasm", Seats: 3, Yielding: 1,
			InUse:  []qos.FlowCount{{Class: "critical", Namespace: "h", Count: 1}},
			Queued: []qos.FlowCount{{Class: "standard", Namespace: "s1", Count: 2}}},
			{Pool: "http", InUse: []qos.FlowCount{{Class: "standard", Namespace: "s1", Count: 300}}}},
		Rejected: []qos.RejectCount{{FlowCount: qos.FlowCount{Class: "batch", Namespace: "b", Count: 5}, Reason: qos.ReasonOverloaded}},
	}
	if err := qosTable(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"g1\t-\t-\tbatch\tb\t12", "g2\twasm\t3, 1 yielding\tcritical\th\t0\t1", "g2\twasm\t3, 1 yielding\tstandard\ts1\t2\t0", "g2\thttp\tunlimited\tstandard\ts1\t0\t300", "overloaded\tbatch\tb\t5"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// The server leaves the Go scheduler Ps beside the wasm seats (compiled
// wasm keeps its P while it computes), and the seats stay those of the
// CPUs: raising GOMAXPROCS does not raise them in turn.
func TestQoSLeavesPsBesideTheWasmSeats(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	var opts engine.Options
	s, err := qosConfig{mode: "on", maxWait: time.Second}.configure(&opts, &functionHost{})
	if err != nil {
		t.Fatal(err)
	}
	seats := s.Options().Seats
	if seats[qos.PoolWasm] != before+1 || seats[qos.PoolProcess] != 2*before+1 {
		t.Errorf("seats %v, want wasm=%d and process=%d from %d CPUs", seats, before+1, 2*before+1, before)
	}
	if got, want := runtime.GOMAXPROCS(0), wasm.ProcsFor(before+1); got != want {
		t.Errorf("GOMAXPROCS %d, want %d beside %d wasm seats", got, want, before+1)
	}
}
