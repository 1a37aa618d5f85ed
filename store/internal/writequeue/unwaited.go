package writequeue

import (
	"errors"
	"fmt"

	"github.com/batonflow/baton/store"
)

// maxUnwaited bounds how many unwaited failures are kept for the next
// waited caller; all of them are logged regardless.
const maxUnwaited = 16

// Unwaited collects the failures of writes whose callers did not wait, so
// that the next caller who waits learns that earlier writes were lost. It
// belongs to the writer goroutine and is not safe for concurrent use.
type Unwaited struct {
	errs []error
	lost int
}

// Add keeps err for the next waited caller, or only counts it once enough
// are kept: the count still tells that more failed.
func (u *Unwaited) Add(err error) {
	if len(u.errs) >= maxUnwaited {
		u.lost++
		return
	}
	u.errs = append(u.errs, err)
}

// Take hands the failures collected so far to one caller, wrapped in
// store.ErrUnwaitedWriteFailed, and forgets them; nil when there were none.
func (u *Unwaited) Take() error {
	if len(u.errs) == 0 && u.lost == 0 {
		return nil
	}
	errs := u.errs
	if u.lost > 0 {
		errs = append(errs, fmt.Errorf("%d more unwaited writes failed (see the log)", u.lost))
	}
	u.errs, u.lost = nil, 0
	return fmt.Errorf("%w: %w", store.ErrUnwaitedWriteFailed, errors.Join(errs...))
}
