package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// syncData makes f's written data durable with fdatasync, as SQLite itself
// syncs on Linux. Unlike fsync it does not force out the inode's
// timestamps, which every WAL write changes and which ext4 would otherwise
// commit through its journal on every sync; what is needed to read the
// data back (the file's size, when a write grew it) is synced either way.
func syncData(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
	}
	var syncErr error
	if err := raw.Control(func(fd uintptr) {
		for {
			syncErr = syscall.Fdatasync(int(fd))
			if !errors.Is(syncErr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
	}
	if syncErr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syncErr}
	}
	return nil
}
