// Package tail keeps the ends of a function's diagnostic output (stderr),
// so that an error can say what the function printed before it failed
// without keeping everything it ever printed. Both ends matter: a Go
// runtime prints the reason for a crash first and a goroutine dump after
// it, while most programs print their last words last.
package tail

import (
	"strings"
	"sync"
)

// Buffer is an io.Writer that keeps the first and the last bytes written
// to it, half of its limit each. It is safe for concurrent use.
type Buffer struct {
	mu      sync.Mutex
	head    []byte
	tail    []byte
	half    int
	dropped bool
}

// New returns a buffer keeping about limit bytes.
func New(limit int) *Buffer { return &Buffer{half: max(limit/2, 1)} }

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := b.half - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = append(b.head, p[:take]...)
		p = p[take:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if len(p) >= b.half {
		b.dropped = b.dropped || len(b.tail) > 0 || len(p) > b.half
		b.tail = append(b.tail[:0], p[len(p)-b.half:]...)
		return n, nil
	}
	if over := len(b.tail) + len(p) - b.half; over > 0 {
		b.tail = append(b.tail[:0], b.tail[over:]...)
		b.dropped = true
	}
	b.tail = append(b.tail, p...)
	return n, nil
}

// String returns what is kept, trimmed, with "…" where output was
// dropped.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	sep := ""
	if b.dropped {
		sep = "\n…\n"
	}
	return strings.TrimSpace(string(b.head) + sep + string(b.tail))
}

// Reset forgets everything written so far.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.head = b.head[:0]
	b.tail = b.tail[:0]
	b.dropped = false
}

// Suffix formats what is kept as an addition to an error message: empty
// when nothing was written.
func (b *Buffer) Suffix(label string) string {
	s := b.String()
	if s == "" {
		return ""
	}
	return "; " + label + ": " + s
}
