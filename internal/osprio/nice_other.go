//go:build !linux

package osprio

// Supported is false: elsewhere setpriority's PRIO_PROCESS addresses the
// whole process, not a thread, and work runs on the caller's thread at
// the ordinary priority.
const Supported = false

func raiseThreadNice(int) error { return nil }
