package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/auth"
)

// A console session is a cookie that carries the API token the user
// logged in with, sealed (AES-GCM) under the server's console key: the
// server keeps no session table, every request is authenticated by the
// token again (so revoking the token ends its sessions), and a restart
// with the same key keeps users logged in.
//
// Cross-site requests cannot use the cookie: it is SameSite=Strict, and a
// state-changing request authenticated by it must also carry the session's
// CSRF token (a MAC of the cookie that only pages of the console can read,
// from their <meta name="csrf-token">) in the X-Baton-CSRF header, and must
// not come from another site by the browser's Sec-Fetch-Site.

// Names of the cookie and the CSRF header and form field.
const (
	SessionCookie = "baton_session"
	CSRFHeader    = "X-Baton-CSRF"
	csrfField     = "csrf"
)

// DefaultSessionLifetime is how long a login lasts.
const DefaultSessionLifetime = 12 * time.Hour

// loginCodeLifetime is how long a one-time login code from `baton console`
// may wait to be opened.
const loginCodeLifetime = 2 * time.Minute

// KeySize is the size of a console key.
const KeySize = 32

// Sessions seals and opens session cookies and hands out one-time login
// codes.
type Sessions struct {
	aead     cipher.AEAD
	macKey   []byte
	lifetime time.Duration
	now      func() time.Time

	mu    sync.Mutex
	codes map[string]loginCode
}

type loginCode struct {
	token   string
	expires time.Time
}

// NewSessions returns sessions sealed under key (KeySize random bytes,
// kept by the server so that sessions survive restarts).
func NewSessions(key []byte) (*Sessions, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("console key: %d bytes, want %d", len(key), KeySize)
	}
	// Two keys from one: the cookie's encryption and the CSRF MAC must not
	// share a key.
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("baton console session"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sessions{
		aead: aead, macKey: derive("baton console csrf"), lifetime: DefaultSessionLifetime,
		now: time.Now, codes: map[string]loginCode{},
	}, nil
}

// NewKey returns a fresh console key.
func NewKey() []byte {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	return key
}

// seal makes a cookie value carrying token until the session's end.
func (s *Sessions) seal(token string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	expires := s.now().Add(s.lifetime).Unix()
	plain := strconv.FormatInt(expires, 10) + "\n" + token
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), []byte(SessionCookie)))
}

// open returns the token a cookie value carries; false when it was not
// sealed here or has expired.
func (s *Sessions) open(value string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", false
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(SessionCookie))
	if err != nil {
		return "", false
	}
	exp, token, ok := strings.Cut(string(plain), "\n")
	if !ok {
		return "", false
	}
	expires, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.now().Unix() >= expires {
		return "", false
	}
	return token, true
}

// csrfToken is the CSRF token of a session cookie's value.
func (s *Sessions) csrfToken(cookie string) string {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CSRFToken returns the CSRF token of r's session, "" without one.
func (s *Sessions) CSRFToken(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	return s.csrfToken(c.Value)
}

// checkCSRF reports whether a state-changing request authenticated by the
// session cookie proves it comes from a console page: same-site by the
// browser's word and carrying the session's CSRF token.
func (s *Sessions) checkCSRF(r *http.Request, cookie string) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return false
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// The console's own forms (logout) post the token as a field.
		got = r.PostFormValue(csrfField)
	}
	want := s.csrfToken(cookie)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Authenticator returns an authenticator that accepts, besides what inner
// accepts (tried first, as the API always did), the session cookie: its
// token is checked by inner as if sent as a bearer token. A cookie that
// does not open, has expired, carries a token inner no longer accepts, or
// comes on a state-changing request without the CSRF proof is no
// credential at all (ErrNoCredentials): pages then ask to log in, API
// calls answer 401.
func (s *Sessions) Authenticator(inner auth.Authenticator) auth.Authenticator {
	return sessionAuth{s: s, inner: inner}
}

type sessionAuth struct {
	s     *Sessions
	inner auth.Authenticator
}

func (a sessionAuth) Authenticate(r *http.Request) (*auth.Principal, error) {
	p, err := a.inner.Authenticate(r)
	if !errors.Is(err, auth.ErrNoCredentials) || r.Header.Get("Authorization") != "" {
		return p, err
	}
	c, cerr := r.Cookie(SessionCookie)
	if cerr != nil || c.Value == "" {
		return nil, auth.ErrNoCredentials
	}
	token, ok := a.s.open(c.Value)
	if !ok {
		return nil, auth.ErrNoCredentials
	}
	if isStateChanging(r.Method) && !a.s.checkCSRF(r, c.Value) {
		return nil, auth.ErrNoCredentials
	}
	p, err = a.s.verify(a.inner, r, token)
	if err != nil {
		return nil, auth.ErrNoCredentials
	}
	return p, nil
}

// verify asks inner whether token is good, as a bearer token of r.
func (s *Sessions) verify(inner auth.Authenticator, r *http.Request, token string) (*auth.Principal, error) {
	probe := r.Clone(r.Context())
	probe.Header = r.Header.Clone()
	probe.Header.Set("Authorization", "Bearer "+token)
	return inner.Authenticate(probe)
}

// setCookie starts a session carrying token.
func (s *Sessions) setCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: s.seal(token), Path: "/",
		MaxAge: int(s.lifetime / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// clearCookie ends the session.
func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// newLoginCode hands out a one-time code that logs its opener in with
// token.
func (s *Sessions) newLoginCode(token string) string {
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	code := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, lc := range s.codes {
		if now.After(lc.expires) {
			delete(s.codes, c)
		}
	}
	s.codes[code] = loginCode{token: token, expires: now.Add(loginCodeLifetime)}
	return code
}

// redeem returns the token of a login code and forgets the code.
func (s *Sessions) redeem(code string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lc, ok := s.codes[code]
	if !ok {
		return "", false
	}
	delete(s.codes, code)
	if s.now().After(lc.expires) {
		return "", false
	}
	return lc.token, true
}

func isStateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}
