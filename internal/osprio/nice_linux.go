package osprio

import (
	"fmt"
	"syscall"
)

// Supported says whether a thread's priority can be lowered on its own
// here: Pool.Run otherwise runs f on the caller's thread.
const Supported = true

// raiseThreadNice raises the calling thread's nice value by raise, to 19
// at most: on Linux, PRIO_PROCESS with a thread's id addresses that
// thread alone, and a new thread starts with its creator's value, the
// process's.
func raiseThreadNice(raise int) error {
	tid := syscall.Gettid()
	// getpriority answers 20 - nice, so that no answer is negative.
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return fmt.Errorf("osprio: reading a thread's nice value: %w", err)
	}
	nice := min(19, 20-prio+raise)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
		return fmt.Errorf("osprio: raising a thread's nice value to %d: %w", nice, err)
	}
	return nil
}
