// Package auth decides who is calling Baton's API and what they may do.
//
// Every caller is a Principal holding grants: a role in a namespace, or in
// every namespace ("*"). Roles are ordered, each one allowing what the ones
// below it allow: a viewer reads, an operator also starts, cancels and
// retries invocations and sends events, a developer also applies workflows,
// deploys functions, manages triggers and writes secrets, and an admin also
// manages tokens, policies and reads the audit log.
//
// Credentials are API tokens (Tokens, stored hashed in the store), OIDC
// bearer JWTs (OIDC) and, on a TLS listener with a client CA, verified client
// certificates; Chain tries each in turn.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Role is what a principal may do in a namespace.
type Role int

// The roles, weakest first. RoleNone is the absence of a grant.
const (
	RoleNone Role = iota
	Viewer
	Operator
	Developer
	Admin
)

var roleNames = [...]string{RoleNone: "none", Viewer: "viewer", Operator: "operator", Developer: "developer", Admin: "admin"}

// Roles lists the grantable roles, weakest first.
func Roles() []Role { return []Role{Viewer, Operator, Developer, Admin} }

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if r.String() == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: use viewer, operator, developer or admin", s)
}

// AllNamespaces grants a role in every namespace.
const AllNamespaces = "*"

// ValidateNamespace checks a namespace a grant names: a DNS label-like name
// or AllNamespaces.
func ValidateNamespace(ns string) error {
	if ns == AllNamespaces {
		return nil
	}
	if ns == "" || len(ns) > 63 {
		return fmt.Errorf("namespace %q: want 1 to 63 characters, or * for every namespace", ns)
	}
	for i, c := range ns {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' ||
			c >= 'A' && c <= 'Z'
		if !ok || (i == 0 && (c == '-' || c == '.')) {
			return fmt.Errorf("namespace %q: use letters, digits, -, _ and . (not first)", ns)
		}
	}
	return nil
}

// Grant is a role in one namespace, or in all of them.
type Grant struct {
	Namespace string `json:"namespace"`
	Role      Role   `json:"-"`
}

func (g Grant) String() string { return g.Namespace + ":" + g.Role.String() }

// Principal is an authenticated caller.
type Principal struct {
	// Subject names the caller in the audit log: "token:ID (name)",
	// "oidc:SUBJECT", "cert:CN" or "local".
	Subject string
	// TokenID is the API token's id when the caller used one.
	TokenID string
	Grants  []Grant
}

// RoleIn is the strongest role the principal holds in ns.
func (p *Principal) RoleIn(ns string) Role {
	if p == nil {
		return RoleNone
	}
	best := RoleNone
	for _, g := range p.Grants {
		if (g.Namespace == ns || g.Namespace == AllNamespaces) && g.Role > best {
			best = g.Role
		}
	}
	return best
}

// Can reports whether the principal holds at least role in ns.
func (p *Principal) Can(role Role, ns string) bool { return p.RoleIn(ns) >= role }

// Namespaces returns the namespaces where the principal holds at least
// role; all is true when that is every namespace.
func (p *Principal) Namespaces(role Role) (namespaces []string, all bool) {
	if p == nil {
		return nil, false
	}
	for _, g := range p.Grants {
		if g.Role < role {
			continue
		}
		if g.Namespace == AllNamespaces {
			return nil, true
		}
		if !slices.Contains(namespaces, g.Namespace) {
			namespaces = append(namespaces, g.Namespace)
		}
	}
	slices.Sort(namespaces)
	return namespaces, false
}

// Errors of authentication. ErrNoCredentials lets a Chain try the next
// authenticator; any other error ends the attempt.
var (
	ErrNoCredentials      = errors.New("no credentials")
	ErrInvalidCredentials = errors.New("invalid credentials")
)

// Authenticator recognises a request's credentials.
type Authenticator interface {
	// Authenticate returns the request's principal; ErrNoCredentials
	// when the request carries none this authenticator understands, an
	// error wrapping ErrInvalidCredentials when they are wrong or expired.
	Authenticate(r *http.Request) (*Principal, error)
}

// Chain tries authenticators in order; the first one that recognises the
// request's credentials decides.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(r *http.Request) (*Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		return p, err
	}
	return nil, ErrNoCredentials
}

// BearerToken returns the token of an `Authorization: Bearer` header, ""
// when there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, nil when none.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
