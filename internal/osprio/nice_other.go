//go:build !linux

package osprio

// Elsewhere setpriority's PRIO_PROCESS addresses the whole process, not a
// thread: work runs on the caller's thread at the ordinary priority.
const supported = false

func raiseThreadNice(int) error { return nil }
