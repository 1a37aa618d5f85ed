//go:build !linux

package sqlite

import "os"

// syncData makes f's written data durable; outside Linux, with fsync.
func syncData(f *os.File) error { return f.Sync() }
