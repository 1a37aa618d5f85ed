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

// countingTokens counts the store's token reads.
type countingTokens struct {
	memoryTokens
	mu    sync.Mutex
	reads int
}

func (c *countingTokens) GetToken(ctx context.Context, id string) (*store.Token, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.memoryTokens.GetToken(ctx, id)
}

func (c *countingTokens) readCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// TestTokensCache checks that a cached token row spares the store's read
// for CacheTTL and nothing else: the secret is compared and the expiry
// checked every time, and a revocation takes effect at once.
func TestTokensCache(t *testing.T) {
	ctx := context.Background()
	mem := &countingTokens{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tokens := &Tokens{Store: mem, Now: func() time.Time { return now }, CacheTTL: time.Second}
	secret, row, err := tokens.Create(ctx, NewTokenRequest{Namespace: "team-a", Role: Developer, TTL: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	verify := func() error {
		t.Helper()
		p, err := tokens.Verify(ctx, secret)
		if err == nil && (p.TokenID != row.ID || !p.Can(Developer, "team-a") || p.Can(Admin, "team-a")) {
			t.Fatalf("principal %+v", p)
		}
		return err
	}
	for range 3 {
		if err := verify(); err != nil {
			t.Fatal(err)
		}
	}
	if n := mem.readCount(); n != 1 {
		t.Fatalf("%d store reads for three verifications within the TTL, want 1", n)
	}
	// The cached row does not vouch for another secret of the same id.
	forged := secret[:len(secret)-1] + string(secret[len(secret)-1]^1)
	if _, err := tokens.Verify(ctx, forged); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a forged secret of a cached token: %v", err)
	}
	// Past the TTL the row is read again.
	now = now.Add(time.Second)
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	if n := mem.readCount(); n != 2 {
		t.Fatalf("%d store reads after the TTL, want 2", n)
	}
	// The token's own expiry (at t0+90s) is checked against the cached
	// row: read at t0+89.5s, it is still cached at t0+90.2s.
	now = now.Add(88*time.Second + 500*time.Millisecond)
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	now = now.Add(700 * time.Millisecond)
	if err := verify(); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("an expired token: %v", err)
	}
	if n := mem.readCount(); n != 3 {
		t.Fatalf("%d store reads, want 3: the expired token checked from the cache", n)
	}

	// Revoking ends a cached token at once.
	secret, row, err = tokens.Create(ctx, NewTokenRequest{Namespace: "team-a", Role: Developer})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	if err := tokens.Revoke(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	if err := verify(); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a revoked token: %v", err)
	}
	// A token that does not verify is not cached: each attempt reads
	// the store.
	if n, _ := mem.readCount(), verify(); mem.readCount() != n+1 {
		t.Fatal("a revoked token was answered from the cache")
	}
}

// TestTokensCacheOff checks that without CacheTTL every verification
// reads the store.
func TestTokensCacheOff(t *testing.T) {
	ctx := context.Background()
	mem := &countingTokens{}
	tokens := &Tokens{Store: mem}
	secret, _, err := tokens.Create(ctx, NewTokenRequest{Namespace: "team-a", Role: Viewer})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tokens.Verify(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if n := mem.readCount(); n != 3 {
		t.Fatalf("%d store reads, want 3", n)
	}
}

// stallingTokens holds a read of the token row, already taken, until
// release is closed, to let a revocation happen in between.
type stallingTokens struct {
	memoryTokens
	read    chan struct{}
	release chan struct{}
}

func (s *stallingTokens) GetToken(ctx context.Context, id string) (*store.Token, error) {
	row, err := s.memoryTokens.GetToken(ctx, id)
	close(s.read)
	<-s.release
	return row, err
}

// TestTokensRevokeDuringVerify revokes a token while a verification
// holds the row it read before the revocation: that verification may
// succeed (it began first), but it must not cache the row, so that no
// verification after Revoke returned succeeds.
func TestTokensRevokeDuringVerify(t *testing.T) {
	ctx := context.Background()
	st := &stallingTokens{read: make(chan struct{}), release: make(chan struct{})}
	tokens := &Tokens{Store: st, CacheTTL: time.Hour}
	secret, row, err := tokens.Create(ctx, NewTokenRequest{Namespace: "team-a", Role: Viewer})
	if err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	go func() {
		_, err := tokens.Verify(ctx, secret)
		inFlight <- err
	}()
	<-st.read
	if err := tokens.Revoke(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	close(st.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("the verification begun before the revocation: %v", err)
	}
	st.read = make(chan struct{})
	if _, err := tokens.Verify(ctx, secret); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a verification after Revoke returned: %v", err)
	}
}
