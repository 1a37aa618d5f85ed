package rowcodec

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/batonflow/baton/problem"
)

// EncodeCursor names the last invocation of a page by its start position
// (in whatever integer unit the backend orders started_at by) and id; the
// next page starts right after it in (started_at, id) descending order.
func EncodeCursor(position int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(position, 10) + ":" + id))
}

// DecodeCursor is EncodeCursor's inverse. A cursor a client mangled is a
// bad request, not a server failure.
func DecodeCursor(c string) (position int64, id string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", badCursor(c)
	}
	pos, id, ok := strings.Cut(string(raw), ":")
	if !ok {
		return 0, "", badCursor(c)
	}
	position, err = strconv.ParseInt(pos, 10, 64)
	if err != nil {
		return 0, "", badCursor(c)
	}
	return position, id, nil
}

// badCursor is a problem document so that the API answers 400 rather than
// 500 for a cursor a client mangled.
func badCursor(c string) error {
	return problem.New(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request", fmt.Sprintf("invalid cursor %q", c))
}

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

// PageLimit is how many rows one listing page holds when the caller asked
// for n: a default when it did not say, and a cap so that no single request
// can make the store read an unbounded page.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return defaultPageLimit
	case n > maxPageLimit:
		return maxPageLimit
	}
	return n
}

// BadRequest is a problem document for input the store refuses, so that
// the API answers 400 rather than 500.
func BadRequest(format string, args ...any) error {
	return problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request", format, args...)
}
