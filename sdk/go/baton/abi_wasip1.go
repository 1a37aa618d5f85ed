//go:build wasip1

package baton

import "unsafe"

// The ABI's buffers. The host writes a call's input into the buffer
// baton_alloc returned, then calls baton_handle, then reads the result
// region before its next call. Both buffers are reused from call to call,
// so a warm call allocates only what the handler itself does; they are
// package state because the host reaches them only through the exports.
var (
	inputBuf  []byte
	resultBuf []byte
)

// abiVersion1 marks a module built against version 1 of the ABI; the host
// looks for the export by name.
//
//go:wasmexport baton_abi_1
func abiVersion1() {}

// alloc returns the address of a buffer of at least size bytes for the
// next input. The buffer stays valid until the next baton_alloc call, so a
// host may keep writing inputs that fit into it without asking again.
//
//go:wasmexport baton_alloc
func alloc(size uint32) uint32 {
	if uint32(cap(inputBuf)) < size || inputBuf == nil {
		inputBuf = make([]byte, max(size, 1024))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inputBuf))))
}

// handle runs the handler on the size bytes of input at ptr, which must be
// the address baton_alloc returned, and returns the result region packed
// as address<<32 | length.
//
//go:wasmexport baton_handle
func handle(ptr, size uint32) uint64 {
	if ptr != uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inputBuf)))) || size > uint32(cap(inputBuf)) {
		resultBuf = appendError(resultBuf[:0], &Error{Type: "runtime", Status: 500,
			Detail: "baton ABI: the input is not in the buffer baton_alloc returned"})
	} else {
		resultBuf = run(resultBuf[:0], inputBuf[:size])
	}
	addr := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(resultBuf))))
	return uint64(addr)<<32 | uint64(len(resultBuf))
}
