package api

import (
	"context"
	"net/http"
	"time"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// TokenIssuer is what the API needs to manage API tokens; *auth.Tokens
// satisfies it.
type TokenIssuer interface {
	Create(ctx context.Context, req auth.NewTokenRequest) (string, *store.Token, error)
	Get(ctx context.Context, id string) (*store.Token, error)
	List(ctx context.Context) ([]*store.Token, error)
	Revoke(ctx context.Context, id string) error
}

// WithTokens serves /v1/tokens over t. Without it those routes answer 501.
func WithTokens(t TokenIssuer) Option {
	return func(c *config) { c.tokens = t }
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Namespace string `json:"namespace"`
	Role      string `json:"role"`
	Name      string `json:"name,omitempty"`
	// ExpiresIn is a Go duration ("720h"); empty means never.
	ExpiresIn string `json:"expiresIn,omitempty"`
}

// Token describes an API token; its secret is never shown again after
// creation.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Namespace string     `json:"namespace"`
	Role      string     `json:"role"`
	CreatedBy string     `json:"createdBy"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// CreatedToken is the answer to POST /v1/tokens: the token in clear, once.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Items []Token `json:"items"`
}

// AuditEntry is one administrative change.
type AuditEntry struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Subject   string    `json:"subject"`
	Namespace string    `json:"namespace"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Status    int       `json:"status"`
}

// AuditList is the body of GET /v1/audit; Next is the ?after= of the
// following page.
type AuditList struct {
	Items []AuditEntry `json:"items"`
	Next  int64        `json:"next"`
}

func tokenFrom(t *store.Token) Token {
	return Token{ID: t.ID, Name: t.Name, Namespace: t.Namespace, Role: t.Role, CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt, ExpiresAt: optionalTime(t.ExpiresAt)}
}

func (s *server) requireTokens(w http.ResponseWriter, r *http.Request) bool {
	if s.tokens == nil {
		s.writeProblem(w, r, notImplemented("this server issues no API tokens"))
		return false
	}
	return true
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	if !s.requireTokens(w, r) {
		return
	}
	var body TokenRequest
	if p := decodeBody(r.Body, &body); p != nil {
		s.writeProblem(w, r, p)
		return
	}
	role, err := auth.ParseRole(body.Role)
	if err != nil {
		s.writeProblem(w, r, badRequest("%v", err))
		return
	}
	if err := auth.ValidateNamespace(body.Namespace); err != nil {
		s.writeProblem(w, r, badRequest("%v", err))
		return
	}
	var ttl time.Duration
	if body.ExpiresIn != "" {
		ttl, err = time.ParseDuration(body.ExpiresIn)
		if err != nil || ttl <= 0 {
			s.writeProblem(w, r, badRequest("expiresIn %q: want a positive duration such as 720h", body.ExpiresIn))
			return
		}
	}
	p := auth.PrincipalFrom(r.Context())
	// Nobody hands out more than they hold: tokens of a namespace are
	// issued by its admins.
	if !s.allowedIn(w, r, auth.Admin, body.Namespace) {
		return
	}
	if !p.Can(role, body.Namespace) {
		s.writeProblem(w, r, forbidden("a token with role %s in %q needs that role there", role, body.Namespace))
		return
	}
	secret, row, err := s.tokens.Create(r.Context(), auth.NewTokenRequest{
		Namespace: body.Namespace, Role: role, Name: body.Name, TTL: ttl, CreatedBy: p.Subject,
	})
	if err != nil {
		s.fail(w, r, err, "token")
		return
	}
	w.Header().Set("Location", "/v1/tokens/"+row.ID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, CreatedToken{Token: tokenFrom(row), Secret: secret})
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request) {
	if !s.requireTokens(w, r) {
		return
	}
	all, err := s.tokens.List(r.Context())
	if err != nil {
		s.fail(w, r, err, "tokens")
		return
	}
	out := TokenList{Items: []Token{}}
	for _, t := range all {
		if visible(r, auth.Admin, t.Namespace) {
			out.Items = append(out.Items, tokenFrom(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if !s.requireTokens(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := s.tokens.Revoke(r.Context(), id); err != nil {
		s.fail(w, r, err, "token "+id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) listAudit(w http.ResponseWriter, r *http.Request) {
	if s.audit == nil {
		s.writeProblem(w, r, notImplemented("this server keeps no audit log"))
		return
	}
	q := r.URL.Query()
	var f store.AuditFilter
	var prob *problem.Problem
	if f.After, prob = parseAfter(q, "a sequence number"); prob == nil {
		f.Limit, prob = parseLimit(q)
	}
	if prob != nil {
		s.writeProblem(w, r, prob)
		return
	}
	p := auth.PrincipalFrom(r.Context())
	namespaces, all := p.Namespaces(auth.Admin)
	if !all {
		f.Namespaces = append(namespaces, []string{}...)
	}
	if ns := q.Get("namespace"); ns != "" {
		if !p.Can(auth.Admin, ns) {
			s.writeProblem(w, r, forbidden("reading the audit log of %q needs the admin role there", ns))
			return
		}
		f.Namespaces = []string{ns}
	}
	entries, err := s.audit.ListAudit(r.Context(), f)
	if err != nil {
		s.fail(w, r, err, "audit log")
		return
	}
	out := AuditList{Items: make([]AuditEntry, len(entries)), Next: f.After}
	for i, e := range entries {
		out.Items[i] = AuditEntry{Seq: e.Seq, Time: e.Time.UTC(), Subject: e.Subject, Namespace: e.Namespace,
			Action: e.Action, Target: e.Target, Status: e.Status}
		out.Next = e.Seq
	}
	writeJSON(w, http.StatusOK, out)
}
