package rowcodec

// Scanner is one row, or a result set positioned on one: what a backend's
// scan function reads from, whichever driver produced it.
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is what database/sql's and pgx's result sets both offer for reading
// row by row. Closing differs between the two drivers and stays with the
// caller.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect scans every row with scan. An empty result is a nil slice; the
// error of the iteration itself is reported once the rows run out, since
// both drivers only know it then.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
