package core

import (
	"strings"
	"testing"
)

func TestIdempotencyKeyHasNoEmptySegment(t *testing.T) {
	key := IdempotencyKey("0193c6e4", "/do/2/store", 1)
	if key != "0193c6e4/do/2/store/1" {
		t.Fatalf("key = %q", key)
	}
	if strings.Contains(key, "//") {
		t.Fatalf("key %q has an empty segment", key)
	}
	// The seed of derived ids keeps the earlier form, so ids derived
	// before and after the key's change are the same.
	if seed := CallIDSeed("0193c6e4", "/do/2/store", 1); seed != "0193c6e4//do/2/store/1" {
		t.Fatalf("seed = %q", seed)
	}
}
