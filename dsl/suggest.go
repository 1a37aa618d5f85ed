package dsl

import (
	"fmt"
	"slices"
	"sort"
)

// noKindMessage explains a task map that names no task kind. When one of
// its keys is a near miss of a kind (`cal:`, `sett:`), the message says which
// kind was probably meant: a typo in the kind is the usual cause.
func noKindMessage(o object) string {
	msg := "expected a task: a map with one of " + kindList()
	keys := make([]string, 0, len(o.fields))
	for k := range o.fields {
		if !slices.Contains(commonProperties, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if kind, ok := closestKind(k); ok {
			return msg + fmt.Sprintf("; did you mean %s (not %s)?", kind, k)
		}
	}
	return msg
}

// closestKind returns the task kind nearest key, if it is within one edit
// (two for kinds longer than four letters, where two edits still leave
// most of the word: `lsiten`).
func closestKind(key string) (Kind, bool) {
	best, bestDist := Kind(""), 0
	for _, k := range kindOrder {
		limit := 1
		if len(k) > 4 {
			limit = 2
		}
		d := editDistance(key, string(k))
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best, best != ""
}

// editDistance is the Levenshtein distance between a and b, byte-wise
// (task kinds are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
