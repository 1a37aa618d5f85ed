package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// State keys in the store: one document per namespace, and the sorted
// list of namespaces that have one (the retention sweeper reads it).
const (
	keyPrefix     = "policy/namespace/"
	keyNamespaces = "policy/namespaces"
)

// cacheTTL is how long a resolved policy is trusted before the store is
// read again: a change made through another server sharing the store
// takes this long to apply here; one made here applies at once.
const cacheTTL = 2 * time.Second

// States is the part of the store that policies live in.
type States interface {
	GetState(ctx context.Context, key string) ([]byte, error)
	PutState(ctx context.Context, key string, value []byte) error
}

// Service keeps namespaces' policy documents in the store and resolves
// them over the server's defaults.
type Service struct {
	server *Server
	states States
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
	// putMu serialises this server's updates of the namespace index.
	putMu sync.Mutex
}

type cached struct {
	eff *Effective
	at  time.Time
}

// NewService returns a service over the store's state.
func NewService(server *Server, states States) *Service {
	return &Service{server: server, states: states, now: time.Now, cache: make(map[string]cached)}
}

// Server returns the server's defaults.
func (s *Service) Server() *Server { return s.server }

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$`)

// ValidNamespace reports whether a namespace name can have a policy.
func ValidNamespace(ns string) bool { return namespacePattern.MatchString(ns) }

// Get returns a namespace's own document (an empty one when it has none).
func (s *Service) Get(ctx context.Context, namespace string) (*Policy, error) {
	data, err := s.states.GetState(ctx, keyPrefix+namespace)
	if errors.Is(err, store.ErrNotFound) {
		return &Policy{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the policy of namespace %s: %w", namespace, err)
	}
	var p Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("the stored policy of namespace %s is corrupt: %w", namespace, err)
	}
	return &p, nil
}

// Put replaces a namespace's document.
func (s *Service) Put(ctx context.Context, namespace string, p *Policy) error {
	if !ValidNamespace(namespace) {
		return problem.Validation("namespace %q: 1-128 letters, digits, '.', '_' or '-'", namespace)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if _, err := s.server.Resolve(namespace, p); err != nil {
		return problem.Validation("invalid policy: %v", err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	s.putMu.Lock()
	defer s.putMu.Unlock()
	if err := s.states.PutState(ctx, keyPrefix+namespace, data); err != nil {
		return fmt.Errorf("storing the policy of namespace %s: %w", namespace, err)
	}
	names, err := s.Namespaces(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(names, namespace) {
		names = append(names, namespace)
		slices.Sort(names)
		list, _ := json.Marshal(names)
		if err := s.states.PutState(ctx, keyNamespaces, list); err != nil {
			return fmt.Errorf("indexing the policy of namespace %s: %w", namespace, err)
		}
	}
	s.mu.Lock()
	delete(s.cache, namespace)
	s.mu.Unlock()
	return nil
}

// Namespaces lists the namespaces that have a policy document.
func (s *Service) Namespaces(ctx context.Context) ([]string, error) {
	data, err := s.states.GetState(ctx, keyNamespaces)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the policy index: %w", err)
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return nil, fmt.Errorf("the policy index is corrupt: %w", err)
	}
	return names, nil
}

// Effective returns a namespace's policy with the defaults applied.
func (s *Service) Effective(ctx context.Context, namespace string) (*Effective, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[namespace]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < cacheTTL {
		return c.eff, nil
	}
	doc, err := s.Get(ctx, namespace)
	if err != nil {
		return nil, err
	}
	eff, err := s.server.Resolve(namespace, doc)
	if err != nil {
		return nil, fmt.Errorf("the policy of namespace %s: %w", namespace, err)
	}
	s.mu.Lock()
	s.cache[namespace] = cached{eff: eff, at: now}
	s.mu.Unlock()
	return eff, nil
}

type effectiveKey struct{}

// NewContext returns a context carrying a resolved policy, and its egress
// guard, for what runs on behalf of its namespace.
func NewContext(ctx context.Context, e *Effective) context.Context {
	ctx = context.WithValue(ctx, effectiveKey{}, e)
	if e.Egress != nil {
		ctx = WithGuard(ctx, e.Egress)
	}
	return ctx
}

// FromContext returns the policy NewContext put in ctx, or nil.
func FromContext(ctx context.Context) *Effective {
	e, _ := ctx.Value(effectiveKey{}).(*Effective)
	return e
}
