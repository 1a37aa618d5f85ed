package client

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzScanEvents feeds arbitrary bytes to the server-sent events reader
// and decoder: they must not panic, and every event handed on has data.
func FuzzScanEvents(f *testing.F) {
	f.Add([]byte("event: status\ndata: {\"id\":\"x\",\"status\":\"running\"}\n\n: heartbeat\n\nid: 1\nevent: history\ndata: {\"seq\":1,\"type\":\"InvocationStarted\"}\n\n"))
	f.Add([]byte("data: a\ndata: b\n\nevent:history\ndata:{\"seq\":\"no\"}\n\n"))
	f.Add([]byte("event: error\ndata: {\"detail\":\"behind\"}\n\n\n\n:"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = scanEvents(bytes.NewReader(raw), func(name string, data []byte) error {
			if len(data) == 0 {
				t.Fatalf("event %q handed on without data", name)
			}
			ev, err := decodeStreamEvent(name, data)
			if err == nil && ev != nil && ev.History == nil && ev.Status == nil {
				t.Fatalf("decoded %q into an empty event", name)
			}
			return nil
		})
	})
}

// TestScanEventsJoinsDataLines: several data lines make one event's data,
// joined by newlines, as the SSE format says.
func TestScanEventsJoinsDataLines(t *testing.T) {
	var got []string
	err := scanEvents(strings.NewReader("event: x\ndata: a\ndata: b\n\n: c\n\ndata: d\n\n"), func(name string, data []byte) error {
		got = append(got, name+"="+string(data))
		return nil
	})
	if err != nil || strings.Join(got, "|") != "x=a\nb|=d" {
		t.Fatalf("events %q, %v", got, err)
	}
}
