package store

import "context"

// Blobs keeps function artifacts (WebAssembly modules) by content address
// ("sha256:<hex>"), next to the functions that use them, so that every
// server on a shared store can run every deployed function. Both stores
// implement it.
type Blobs interface {
	// PutBlob stores data under digest; storing a digest again is a
	// no-op. The caller computed digest from data.
	PutBlob(ctx context.Context, digest string, data []byte) error
	// GetBlob returns the data stored under digest, or an error wrapping
	// ErrNotFound.
	GetBlob(ctx context.Context, digest string) ([]byte, error)
	// ListBlobs returns every stored digest, sorted.
	ListBlobs(ctx context.Context) ([]string, error)
	// DeleteBlob removes a blob; ErrNotFound when there is none.
	DeleteBlob(ctx context.Context, digest string) error
}
