package auth

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
)

type memoryTokens struct {
	mu   sync.Mutex
	rows map[string]*store.Token
}

func (m *memoryTokens) PutToken(_ context.Context, t *store.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string]*store.Token{}
	}
	if _, ok := m.rows[t.ID]; ok {
		return store.ErrConflict
	}
	c := *t
	m.rows[t.ID] = &c
	return nil
}

func (m *memoryTokens) GetToken(_ context.Context, id string) (*store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.rows[id]; ok {
		c := *t
		return &c, nil
	}
	return nil, store.ErrNotFound
}

func (m *memoryTokens) ListTokens(context.Context) ([]*store.Token, error) { return nil, nil }

func (m *memoryTokens) DeleteToken(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[id]; !ok {
		return store.ErrNotFound
	}
	delete(m.rows, id)
	return nil
}

func TestTokens(t *testing.T) {
	mem := &memoryTokens{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tokens := &Tokens{Store: mem, Now: func() time.Time { return now }}
	ctx := context.Background()
	secret, row, err := tokens.Create(ctx, NewTokenRequest{Namespace: "team-a", Role: Operator, Name: "ci", TTL: time.Hour, CreatedBy: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "baton_"+row.ID+"_") || len(secret) < 60 {
		t.Fatalf("token %q", secret)
	}
	if stored, _ := mem.GetToken(ctx, row.ID); strings.Contains(string(stored.Hash), secret) || len(stored.Hash) != 32 {
		t.Fatalf("the store holds %x, want a SHA-256 hash", stored.Hash)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "bearer "+secret)
	p, err := tokens.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.TokenID != row.ID || p.Subject != "token:"+row.ID+" (ci)" || !p.Can(Operator, "team-a") || p.Can(Developer, "team-a") || p.Can(Viewer, "team-b") {
		t.Fatalf("principal %+v", p)
	}
	// One character off is an invalid token, not "no credentials".
	wrong := secret[:len(secret)-1] + string(rune(secret[len(secret)-1])^1)
	if _, err := tokens.Verify(ctx, wrong); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("altered token: %v", err)
	}
	if _, err := tokens.Verify(ctx, "something else"); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("not a baton token: %v", err)
	}
	now = now.Add(time.Hour)
	if _, err := tokens.Verify(ctx, secret); !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	now = now.Add(-time.Minute)
	if err := tokens.Revoke(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(ctx, secret); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("revoked token: %v", err)
	}
	for _, bad := range []NewTokenRequest{
		{Namespace: "", Role: Viewer},
		{Namespace: "a/b", Role: Viewer},
		{Namespace: "ok", Role: RoleNone},
		{Namespace: "ok", Role: Viewer, TTL: -time.Second},
	} {
		if _, _, err := tokens.Create(ctx, bad); err == nil {
			t.Errorf("Create(%+v) succeeded", bad)
		}
	}
}

func TestRolesAndGrants(t *testing.T) {
	for _, r := range Roles() {
		if got, err := ParseRole(r.String()); err != nil || got != r {
			t.Errorf("ParseRole(%s) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root) succeeded")
	}
	p := &Principal{Grants: []Grant{{"team-a", Viewer}, {"team-a", Developer}, {"team-b", Operator}}}
	if p.RoleIn("team-a") != Developer || p.RoleIn("team-c") != RoleNone {
		t.Errorf("RoleIn: %v %v", p.RoleIn("team-a"), p.RoleIn("team-c"))
	}
	if ns, all := p.Namespaces(Operator); all || strings.Join(ns, ",") != "team-a,team-b" {
		t.Errorf("Namespaces(operator) = %v %v", ns, all)
	}
	if ns, all := p.Namespaces(Admin); all || len(ns) != 0 {
		t.Errorf("Namespaces(admin) = %v %v", ns, all)
	}
	root := &Principal{Grants: []Grant{{AllNamespaces, Admin}}}
	if _, all := root.Namespaces(Viewer); !all || !root.Can(Admin, "anything") {
		t.Error("a grant in * covers every namespace")
	}
	var none *Principal
	if none.Can(Viewer, "default") {
		t.Error("a nil principal can")
	}
}
