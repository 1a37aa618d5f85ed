package store

import "time"

// CommitObserver is implemented by stores whose writer groups many writes
// into one transaction (both of Baton's): f hears each commit, with the
// number of writes it carried and how long writing and committing it took.
// f runs on the writer's goroutine between commits and must be quick.
// Setting another f replaces the previous one; nil stops observing.
type CommitObserver interface {
	ObserveCommits(f func(writes int, took time.Duration))
}
