package grpccall

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonflow/baton/policy"
)

// TestEgressGuard: under a guard that denies loopback, a call to a
// loopback server is refused at connect time, naming the rule, while the
// same client without the guard (or under an open one) still reaches it
// over a connection of its own.
func TestEgressGuard(t *testing.T) {
	dir := t.TempDir()
	g := startGreeter(t, dir)
	c := &Client{}
	defer c.Close()
	guard := func(deny ...string) context.Context {
		s := &policy.Server{Defaults: policy.Policy{Egress: policy.Egress{Deny: deny}}}
		eff, err := s.Resolve("team-a", nil)
		if err != nil {
			t.Fatal(err)
		}
		return policy.NewContext(context.Background(), eff)
	}
	proto := "file://" + filepath.ToSlash(filepath.Join(dir, "greeter.proto"))
	call := func(ctx context.Context) (any, error) {
		out, p := c.Do(ctx, Request{Args: args(proto, g.addr, "SayHello", map[string]any{"name": "Baton"})})
		if p != nil {
			return nil, p
		}
		return out, nil
	}
	if _, err := call(guard()); err != nil {
		t.Fatalf("an open guard: %v", err)
	}
	_, err := call(guard("loopback"))
	if err == nil || !strings.Contains(err.Error(), "is denied by server --egress-deny") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a guard denying loopback: %v", err)
	}
	if _, err := call(context.Background()); err != nil {
		t.Fatalf("no guard: %v", err)
	}
}
