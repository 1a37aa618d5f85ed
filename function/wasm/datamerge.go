package wasm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
)

// Data segments are merged before compiling because wazero evaluates each
// active segment's offset expression on every instantiation, allocating as
// it goes: the Go SDK example has 37,509 segments (Go's linker splits its
// data at every run of zeros), which cost 1.8 ms of a 2.5 ms instantiation
// on this machine, and the allocations feed the host's garbage collector.
// Merged across gaps of zeros, the same data is a handful of segments and
// a copy of about a megabyte.
//
// The rewrite only happens where it cannot change what an instance sees:
// every segment active in memory 0 at a constant, non-negative offset, no
// two overlapping (so their order does not matter), the memory the
// module's own (so it starts zeroed, which the filled gaps repeat), and no
// data count section (without it, no instruction can name a segment by its
// index). Instantiation fails exactly when it did: the merged segments
// span the same lowest and highest byte. Anything else, including a module
// this parser does not understand, is compiled as it came.

// maxDataGap is the widest run of zeros a merge writes: copying 4 KiB of
// zeros costs well under an offset expression's evaluation on its own.
const maxDataGap = 4 << 10

// maxZeros is how many zeros a merge writes whatever the data it moves.
const maxZeros = 1 << 20

const (
	sectionImport    = 2
	sectionMemory    = 5
	sectionData      = 11
	sectionDataCount = 12

	importKindMemory = 2
	opI32Const       = 0x41
	opEnd            = 0x0b
)

type dataSegment struct {
	offset uint64
	init   []byte
}

// coalesceData returns bin with its data segments merged where that is
// safe (see above), or bin itself.
func coalesceData(bin []byte) []byte {
	if len(bin) < 8 || !bytes.HasPrefix(bin, []byte("\x00asm")) {
		return bin
	}
	var dataStart, dataEnd int // the whole section, id byte included
	var data []byte
	ownMemory := false
	for p := 8; p < len(bin); {
		start := p
		id := bin[p]
		size, n := binary.Uvarint(bin[p+1:])
		if n <= 0 || size > uint64(len(bin)-p-1-n) {
			return bin
		}
		body := bin[p+1+n : p+1+n+int(size)]
		p += 1 + n + int(size)
		switch id {
		case sectionImport:
			imports, ok := importsMemory(body)
			if !ok || imports {
				return bin
			}
		case sectionMemory:
			ownMemory = true
		case sectionDataCount:
			return bin
		case sectionData:
			dataStart, dataEnd, data = start, p, body
		}
	}
	if data == nil || !ownMemory {
		return bin
	}
	segs, ok := parseDataSection(data)
	if !ok || len(segs) < 2 {
		return bin
	}
	groups, ok := mergeSegments(segs)
	if !ok || len(groups) == len(segs) {
		return bin
	}
	// One allocation, written in place: the module is megabytes, and every
	// fresh page of a copy is faulted in on the compile path.
	head := binary.AppendUvarint(nil, uint64(len(groups)))
	size := len(head)
	for _, g := range groups {
		size += 3 + len(appendSleb32(nil, int32(g.offset))) + len(binary.AppendUvarint(nil, g.size)) + int(g.size)
	}
	out := make([]byte, 0, len(bin)-(dataEnd-dataStart)+1+binary.MaxVarintLen64+size)
	out = append(out, bin[:dataStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(size))
	out = append(out, head...)
	for _, g := range groups {
		out = append(out, 0, opI32Const)
		out = appendSleb32(out, int32(g.offset))
		out = append(out, opEnd)
		out = binary.AppendUvarint(out, g.size)
		at := len(out)
		out = out[:at+int(g.size)] // zeros: the capacity was never written
		for _, s := range g.segs {
			copy(out[at+int(s.offset-g.offset):], s.init)
		}
	}
	return append(out, bin[dataEnd:]...)
}

// parseDataSection reads a data section whose segments are all active in
// memory 0 at an i32.const offset that is not negative.
func parseDataSection(b []byte) ([]dataSegment, bool) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)/5) { // a segment takes at least 5 bytes
		return nil, false
	}
	p := n
	segs := make([]dataSegment, 0, count)
	for range count {
		if p+2 > len(b) || b[p] != 0 || b[p+1] != opI32Const {
			return nil, false
		}
		p += 2
		off, n := sleb32(b[p:])
		if n <= 0 || off < 0 || p+n >= len(b) || b[p+n] != opEnd {
			return nil, false
		}
		p += n + 1
		size, n := binary.Uvarint(b[p:])
		if n <= 0 || size > uint64(len(b)-p-n) {
			return nil, false
		}
		p += n
		segs = append(segs, dataSegment{offset: uint64(off), init: b[p : p+int(size)]})
		p += int(size)
	}
	return segs, p == len(b)
}

// segmentGroup is a run of segments written as one, with zeros between.
type segmentGroup struct {
	offset, size uint64
	segs         []dataSegment
}

// mergeSegments sorts segments by offset and groups neighbours at most
// maxDataGap apart. It fails when two overlap, as the later one must then
// win, and when the zeros to write would outweigh the data more than
// twice over (beyond a megabyte): a module of many tiny segments spread
// out must not make compiling it allocate gigabytes. (The Go SDK example
// has 0.7 MB of zeros between 0.9 MB of data.)
func mergeSegments(segs []dataSegment) ([]segmentGroup, bool) {
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	var out []segmentGroup
	var data, zeros uint64
	for _, s := range segs {
		data += uint64(len(s.init))
	}
	first := 0
	end := segs[0].offset + uint64(len(segs[0].init))
	for i := 1; i <= len(segs); i++ {
		if i < len(segs) {
			s := segs[i]
			if s.offset < end {
				return nil, false
			}
			if gap := s.offset - end; gap <= maxDataGap {
				if zeros += gap; zeros > 2*data+maxZeros {
					return nil, false
				}
				end = s.offset + uint64(len(s.init))
				continue
			}
		}
		out = append(out, segmentGroup{offset: segs[first].offset, size: end - segs[first].offset, segs: segs[first:i]})
		if i < len(segs) {
			first, end = i, segs[i].offset+uint64(len(segs[i].init))
		}
	}
	return out, true
}

// importsMemory reports whether an import section imports a memory, whose
// contents are not known to be zero.
func importsMemory(b []byte) (imports, ok bool) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return false, false
	}
	p := n
	name := func() bool {
		l, n := binary.Uvarint(b[p:])
		if n <= 0 || l > uint64(len(b)-p-n) {
			return false
		}
		p += n + int(l)
		return true
	}
	uleb := func() bool {
		_, n := binary.Uvarint(b[p:])
		p += n
		return n > 0
	}
	for range count {
		if !name() || !name() || p >= len(b) {
			return false, false
		}
		kind := b[p]
		p++
		switch kind {
		case 0: // function: a type index
			if !uleb() {
				return false, false
			}
		case 1: // table: a reference type and limits
			if p >= len(b) {
				return false, false
			}
			p++
			if !limits(b, &p) {
				return false, false
			}
		case importKindMemory:
			return true, true
		case 3: // global: a value type and mutability
			p += 2
		default:
			return false, false
		}
		if p > len(b) {
			return false, false
		}
	}
	return false, true
}

func limits(b []byte, p *int) bool {
	if *p >= len(b) {
		return false
	}
	flags := b[*p]
	*p++
	for range 1 + int(flags&1) {
		_, n := binary.Uvarint(b[*p:])
		if n <= 0 {
			return false
		}
		*p += n
	}
	return true
}

// sleb32 decodes a signed LEB128 i32 as the wasm binary format writes it.
func sleb32(b []byte) (int32, int) {
	var v int64
	var shift uint
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v >= 1<<31 {
				return 0, 0
			}
			return int32(v), i + 1
		}
	}
	return 0, 0
}

func appendSleb32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
