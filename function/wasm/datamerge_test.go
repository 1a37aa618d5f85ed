package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// seg is an active data segment in memory 0 at an i32.const offset, or,
// with raw set, a segment encoded as given (a passive one, say).
type seg struct {
	offset int32
	data   string
	raw    []byte
}

type testModule struct {
	importMemory bool
	dataCount    bool
	segs         []seg
}

func section(id byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
}

// bytes encodes a module with one page of memory, exported as "memory".
func (m testModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	if m.importMemory {
		out = append(out, section(sectionImport, []byte{1, 3, 'e', 'n', 'v', 3, 'm', 'e', 'm', importKindMemory, 0, 1})...)
	} else {
		out = append(out, section(sectionMemory, []byte{1, 0, 1})...)
	}
	out = append(out, section(7, []byte{1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0})...)
	if m.dataCount {
		out = append(out, section(sectionDataCount, binary.AppendUvarint(nil, uint64(len(m.segs))))...)
	}
	body := binary.AppendUvarint(nil, uint64(len(m.segs)))
	for _, s := range m.segs {
		if s.raw != nil {
			body = append(body, s.raw...)
			continue
		}
		body = append(body, 0, opI32Const)
		body = appendSleb32(body, s.offset)
		body = append(body, opEnd)
		body = binary.AppendUvarint(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	out = append(out, section(sectionData, body)...)
	return append(out, section(0, []byte{4, 'n', 'a', 'm', 'e'})...) // a custom section after the data
}

func segmentCount(t *testing.T, bin []byte) int {
	t.Helper()
	for p := 8; p < len(bin); {
		size, n := binary.Uvarint(bin[p+1:])
		if bin[p] == sectionData {
			count, _ := binary.Uvarint(bin[p+1+n:])
			return int(count)
		}
		p += 1 + n + int(size)
	}
	t.Fatal("no data section")
	return 0
}

// memoryAfterInstantiate instantiates bin without running any start
// function and returns its whole linear memory, or the instantiation error.
func memoryAfterInstantiate(t *testing.T, rt wazero.Runtime, bin []byte) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	defer compiled.Close(ctx)
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, err
	}
	defer mod.Close(ctx)
	mem, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		t.Fatal("reading memory")
	}
	return bytes.Clone(mem), nil
}

// sparse returns n one-byte segments maxDataGap apart.
func sparse(n int) []seg {
	segs := make([]seg, n)
	for i := range segs {
		segs[i] = seg{offset: int32(i * (maxDataGap + 1)), data: "x"}
	}
	return segs
}

func TestCoalesceData(t *testing.T) {
	far := int32(maxDataGap + 100)
	for _, tc := range []struct {
		name     string
		mod      testModule
		segments int // after coalescing; 0: the module is left as it came
		fails    bool
	}{
		{name: "adjacent and small gaps merge", segments: 1, mod: testModule{segs: []seg{
			{offset: 8, data: "ab"}, {offset: 10, data: "cd"}, {offset: 20, data: "\x00\x00ef"}, {offset: 30, data: ""}}}},
		{name: "out of order, not overlapping, merge in place", segments: 1, mod: testModule{segs: []seg{
			{offset: 100, data: "late"}, {offset: 0, data: "early"}, {offset: 50, data: "mid"}}}},
		{name: "a gap wider than maxDataGap splits", segments: 2, mod: testModule{segs: []seg{
			{offset: 0, data: "a"}, {offset: 2, data: "b"}, {offset: far, data: "c"}, {offset: far + 1, data: "d"}}}},
		{name: "overlapping segments keep their order", mod: testModule{segs: []seg{
			{offset: 0, data: "aaaa"}, {offset: 2, data: "bb"}}}},
		{name: "an imported memory may not be zero", mod: testModule{importMemory: true, segs: []seg{
			{offset: 0, data: "a"}, {offset: 4, data: "b"}}}},
		{name: "a data count section lets code name segments", mod: testModule{dataCount: true, segs: []seg{
			{offset: 0, data: "a"}, {offset: 4, data: "b"}}}},
		{name: "a passive segment is left alone", mod: testModule{segs: []seg{
			{offset: 0, data: "a"}, {raw: []byte{1, 1, 'p'}}}}},
		{name: "an offset from a global is left alone", mod: testModule{segs: []seg{
			{offset: 0, data: "a"}, {raw: []byte{0, 0x23, 0, opEnd, 1, 'g'}}}}},
		{name: "a negative offset is left alone", mod: testModule{segs: []seg{
			{offset: 0, data: "a"}, {offset: -1, data: "b"}}}},
		{name: "far more zeros than data is left alone", mod: testModule{segs: sparse(maxZeros/maxDataGap + 2)}},
		{name: "some more zeros than data merge", segments: 1, mod: testModule{segs: sparse(8)}},
		{name: "one segment is left alone", mod: testModule{segs: []seg{{offset: 3, data: "abc"}}}},
		{name: "out of bounds still fails", segments: 1, fails: true, mod: testModule{segs: []seg{
			{offset: 65530, data: "a"}, {offset: 65535, data: "bc"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.mod.bytes()
			out := coalesceData(in)
			if tc.segments == 0 {
				if !bytes.Equal(in, out) {
					t.Fatal("module rewritten")
				}
				return
			}
			if got := segmentCount(t, out); got != tc.segments {
				t.Fatalf("%d segments after coalescing, want %d", got, tc.segments)
			}
			rt := wazero.NewRuntime(context.Background())
			defer rt.Close(context.Background())
			want, wantErr := memoryAfterInstantiate(t, rt, in)
			got, gotErr := memoryAfterInstantiate(t, rt, out)
			if (wantErr != nil) != tc.fails || (gotErr != nil) != tc.fails {
				t.Fatalf("instantiation errors: original %v, coalesced %v; want failure %v", wantErr, gotErr, tc.fails)
			}
			if !bytes.Equal(want, got) {
				t.Fatal("memory differs after instantiation")
			}
		})
	}
}

// TestCoalesceDataGoModule checks the rewrite on what it is for: the Go
// SDK example's tens of thousands of segments become a few, and its memory
// after instantiation is byte for byte the same.
func TestCoalesceDataGoModule(t *testing.T) {
	in, err := os.ReadFile(built(t, helloGo))
	if err != nil {
		t.Fatal(err)
	}
	out := coalesceData(in)
	before, after := segmentCount(t, in), segmentCount(t, out)
	t.Logf("%d data segments, %d after coalescing; %d bytes, %d after", before, after, len(in), len(out))
	if before < 1000 || after > 16 {
		t.Fatalf("%d segments coalesced into %d", before, after)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	want, err := memoryAfterInstantiate(t, rt, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := memoryAfterInstantiate(t, rt, out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatal("memory differs after instantiation")
	}
}

func TestSleb32RoundTrip(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 1 << 20, 1<<31 - 1, -1 << 31} {
		b := appendSleb32(nil, v)
		got, n := sleb32(b)
		if got != v || n != len(b) {
			t.Errorf("%d: encoded %x, decoded %d in %d bytes", v, b, got, n)
		}
	}
}

// FuzzCoalesceData: an artifact is coalesced before wazero has validated
// it, so no input may panic, and a rewrite must keep the module's other
// sections and leave a data section this parser reads back.
func FuzzCoalesceData(f *testing.F) {
	f.Add(testModule{segs: []seg{{offset: 8, data: "ab"}, {offset: 10, data: "cd"}, {offset: 20, data: "ef"}}}.bytes())
	f.Add(testModule{importMemory: true, segs: []seg{{offset: 0, data: "a"}, {offset: 4, data: "b"}}}.bytes())
	f.Add(testModule{segs: []seg{{offset: 100, data: "late"}, {offset: 0, data: "early"}}}.bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		out := coalesceData(in)
		if bytes.Equal(in, out) {
			return
		}
		if !bytes.HasPrefix(out, in[:8]) {
			t.Fatal("header changed")
		}
		for p := 8; p < len(out); {
			size, n := binary.Uvarint(out[p+1:])
			if n <= 0 || size > uint64(len(out)-p-1-n) {
				t.Fatalf("section at %d unreadable", p)
			}
			if out[p] == sectionData {
				if _, ok := parseDataSection(out[p+1+n : p+1+n+int(size)]); !ok {
					t.Fatal("rewritten data section unreadable")
				}
			}
			p += 1 + n + int(size)
		}
	})
}
