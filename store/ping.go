package store

import "context"

// Pinger is a store that can tell whether it is reachable, for readiness
// checks. Both stores implement it.
type Pinger interface {
	Ping(ctx context.Context) error
}
