package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/store"
)

// tokenPrefix starts every API token, so that a token pasted where it
// should not be (a log, a repository) is recognisable for secret scanners.
const tokenPrefix = "baton_"

// Tokens issues, checks and revokes API tokens kept in a store.TokenStore.
//
// A token reads baton_<id>_<secret>: the id (8 random bytes, hex) finds the
// row, the secret (32 random bytes, base64url) proves possession. The store
// keeps only SHA-256 of the whole token, compared in constant time, so the
// database does not hold usable credentials.
type Tokens struct {
	Store store.TokenStore
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// CacheTTL, when positive, lets Verify check a token against the row
	// it read less than CacheTTL ago instead of reading it again: a
	// server verifies a token on every request, and the read would
	// otherwise be a store query per call. The presented token is still
	// hashed and compared, and its expiry checked, every time; Revoke
	// drops the row at once, so only a revocation made through another
	// Tokens on the same store (another replica of a cluster) takes up to
	// CacheTTL to be seen. Zero reads the store every time.
	CacheTTL time.Duration

	cacheMu sync.Mutex
	cache   map[string]cachedToken
	// revocations counts Revoke calls, so that a Verify that read a row
	// before a revocation does not cache it after.
	revocations uint64
}

// cachedToken is a token row read from the store, and when.
type cachedToken struct {
	row  *store.Token
	role Role
	read time.Time
}

// maxCachedTokens bounds the cache. Only rows of tokens that verified
// are cached, so it holds at most the tokens in use; past the bound the
// cache starts over rather than grow.
const maxCachedTokens = 4096

// NewTokenRequest describes a token to issue.
type NewTokenRequest struct {
	Namespace string
	Role      Role
	Name      string
	// TTL bounds the token's life; zero means it never expires.
	TTL time.Duration
	// CreatedBy is the subject issuing it, for the audit trail.
	CreatedBy string
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Create issues a token and returns it in clear with its stored row. The
// clear token exists only in the return value.
func (t *Tokens) Create(ctx context.Context, req NewTokenRequest) (string, *store.Token, error) {
	if err := ValidateNamespace(req.Namespace); err != nil {
		return "", nil, err
	}
	if req.Role < Viewer || req.Role > Admin {
		return "", nil, fmt.Errorf("unknown role %v", req.Role)
	}
	if req.TTL < 0 {
		return "", nil, fmt.Errorf("a token's lifetime must not be negative")
	}
	if len(req.Name) > 200 {
		return "", nil, fmt.Errorf("a token's name must have at most 200 characters")
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, fmt.Errorf("generating a token: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", nil, fmt.Errorf("generating a token: %w", err)
	}
	row := &store.Token{
		ID:        hex.EncodeToString(id[:]),
		Name:      req.Name,
		Namespace: req.Namespace,
		Role:      req.Role.String(),
		CreatedBy: req.CreatedBy,
		CreatedAt: t.now().UTC().Truncate(time.Microsecond),
	}
	if req.TTL > 0 {
		row.ExpiresAt = row.CreatedAt.Add(req.TTL)
	}
	token := tokenPrefix + row.ID + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	row.Hash = hashToken(token)
	if err := t.Store.PutToken(ctx, row); err != nil {
		return "", nil, err
	}
	return token, row, nil
}

// TokenID returns the id part of a token, or false when s does not look
// like one of Baton's tokens.
func TokenID(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", false
	}
	return id, true
}

// Verify checks a token in clear and returns its principal.
func (t *Tokens) Verify(ctx context.Context, token string) (*Principal, error) {
	id, ok := TokenID(token)
	if !ok {
		return nil, ErrNoCredentials
	}
	now := t.now()
	c, cached, revocations := t.cached(id, now)
	if !cached {
		row, err := t.Store.GetToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: unknown or revoked token", ErrInvalidCredentials)
		}
		if err != nil {
			return nil, fmt.Errorf("checking a token: %w", err)
		}
		c = cachedToken{row: row, read: now}
	}
	row := c.row
	if subtle.ConstantTimeCompare(hashToken(token), row.Hash) != 1 {
		return nil, fmt.Errorf("%w: unknown or revoked token", ErrInvalidCredentials)
	}
	if !row.ExpiresAt.IsZero() && !now.Before(row.ExpiresAt) {
		return nil, fmt.Errorf("%w: the token expired at %s", ErrInvalidCredentials, row.ExpiresAt.Format(time.RFC3339))
	}
	if !cached {
		role, err := ParseRole(row.Role)
		if err != nil {
			return nil, fmt.Errorf("%w: token %s: %v", ErrInvalidCredentials, id, err)
		}
		c.role = role
		t.remember(id, c, revocations)
	}
	return &Principal{
		Subject: TokenSubject(row),
		TokenID: row.ID,
		Grants:  []Grant{{Namespace: row.Namespace, Role: c.role}},
	}, nil
}

// cached returns the row of token id read less than CacheTTL before now,
// and the count of revocations so far.
func (t *Tokens) cached(id string, now time.Time) (c cachedToken, ok bool, revocations uint64) {
	if t.CacheTTL <= 0 {
		return cachedToken{}, false, 0
	}
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	c, ok = t.cache[id]
	if !ok {
		return cachedToken{}, false, t.revocations
	}
	if age := now.Sub(c.read); age < 0 || age >= t.CacheTTL {
		delete(t.cache, id)
		return cachedToken{}, false, t.revocations
	}
	return c, true, t.revocations
}

// remember caches the row of a token that verified, unless a token was
// revoked since the row was read (revocations is the count before).
func (t *Tokens) remember(id string, c cachedToken, revocations uint64) {
	if t.CacheTTL <= 0 {
		return
	}
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if t.revocations != revocations {
		return
	}
	if t.cache == nil || len(t.cache) >= maxCachedTokens {
		t.cache = map[string]cachedToken{}
	}
	t.cache[id] = c
}

// forget drops token id's cached row and counts a revocation.
func (t *Tokens) forget(id string) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	delete(t.cache, id)
	t.revocations++
}

// TokenSubject names a token's holder in the audit log.
func TokenSubject(row *store.Token) string {
	if row.Name == "" {
		return "token:" + row.ID
	}
	return "token:" + row.ID + " (" + row.Name + ")"
}

// Authenticate implements Authenticator for `Authorization: Bearer
// baton_...` headers.
func (t *Tokens) Authenticate(r *http.Request) (*Principal, error) {
	bearer := BearerToken(r)
	if bearer == "" {
		return nil, ErrNoCredentials
	}
	return t.Verify(r.Context(), bearer)
}

// Revoke deletes a token; store.ErrNotFound when there is none. The
// token stops verifying here at once, whatever CacheTTL says.
func (t *Tokens) Revoke(ctx context.Context, id string) error {
	// Forgotten before the delete, so that no request after this one
	// starts from the cached row, and after it, so that a Verify that
	// read the row before the delete does not cache it.
	t.forget(id)
	err := t.Store.DeleteToken(ctx, id)
	t.forget(id)
	return err
}

// List returns every token's row (hashes included: callers show only the
// other fields).
func (t *Tokens) List(ctx context.Context) ([]*store.Token, error) { return t.Store.ListTokens(ctx) }

// Get returns a token's row.
func (t *Tokens) Get(ctx context.Context, id string) (*store.Token, error) {
	return t.Store.GetToken(ctx, id)
}
