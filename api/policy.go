package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Policies is what the API needs from the namespaces' policies;
// *policy.Service satisfies it.
type Policies interface {
	Get(ctx context.Context, namespace string) (*policy.Policy, error)
	Put(ctx context.Context, namespace string, p *policy.Policy) error
	Effective(ctx context.Context, namespace string) (*policy.Effective, error)
	Server() *policy.Server
}

// WithPolicies serves /v1/namespaces/{namespace}/policy over p and checks
// function deploys and direct function calls against the policy of their
// namespace (?namespace=, "default" when absent). Without it the policy
// routes answer 501 and functions are not checked here (the engine still
// checks workflows).
func WithPolicies(p Policies) Option {
	return func(c *config) { c.policies = p }
}

// NamespacePolicy is the body of GET and PUT /v1/namespaces/{namespace}/policy:
// the namespace's own document and the policy in force, the server's
// defaults filled in.
type NamespacePolicy struct {
	Namespace string         `json:"namespace"`
	Policy    *policy.Policy `json:"policy"`
	Effective *policy.Policy `json:"effective"`
}

func (s *server) requirePolicies(w http.ResponseWriter, r *http.Request) bool {
	if s.policies == nil {
		s.writeProblem(w, r, notImplemented("this server has no namespace policies"))
		return false
	}
	return true
}

func (s *server) getPolicy(w http.ResponseWriter, r *http.Request) {
	if !s.requirePolicies(w, r) {
		return
	}
	s.writeNamespacePolicy(w, r, r.PathValue("namespace"), http.StatusOK)
}

func (s *server) writeNamespacePolicy(w http.ResponseWriter, r *http.Request, ns string, status int) {
	if !policy.ValidNamespace(ns) {
		s.writeProblem(w, r, badRequest("namespace %q is not a valid name", ns))
		return
	}
	own, err := s.policies.Get(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err, "policy of namespace "+ns)
		return
	}
	eff, err := s.policies.Effective(r.Context(), ns)
	if err != nil {
		s.fail(w, r, err, "policy of namespace "+ns)
		return
	}
	writeJSON(w, status, NamespacePolicy{Namespace: ns, Policy: own, Effective: eff.Document()})
}

func (s *server) putPolicy(w http.ResponseWriter, r *http.Request) {
	if !s.requirePolicies(w, r) {
		return
	}
	ns := r.PathValue("namespace")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, err, "reading the policy document")
		return
	}
	doc, err := policy.Decode(body)
	if err != nil {
		var p *problem.Problem
		if errors.As(err, &p) {
			s.writeProblem(w, r, p)
		} else {
			s.writeProblem(w, r, badRequest("%v", err))
		}
		return
	}
	if err := s.policies.Put(r.Context(), ns, doc); err != nil {
		s.fail(w, r, err, "policy of namespace "+ns)
		return
	}
	s.writeNamespacePolicy(w, r, ns, http.StatusOK)
}

// functionPolicy is the policy that a function request answers to: its
// namespace's, the one the function belongs to.
func (s *server) functionPolicy(r *http.Request) (*policy.Effective, *problem.Problem) {
	ns, p := functionNamespace(r)
	if p != nil {
		return nil, p
	}
	eff, err := s.policies.Effective(r.Context(), ns)
	if err != nil {
		return nil, problemFor(err, "policy of namespace "+ns)
	}
	return eff, nil
}

// admitDeploy refuses a function whose capabilities the namespace's policy
// does not allow, or whose memory would exceed the server's budget.
func (s *server) admitDeploy(r *http.Request, spec *function.Spec) *problem.Problem {
	if s.policies == nil {
		return nil
	}
	eff, p := s.functionPolicy(r)
	if p != nil {
		return p
	}
	if p := eff.CheckFunction(spec); p != nil {
		return p
	}
	// The memory budget is the server's, shared by every namespace.
	deployed, err := s.functions.List(r.Context(), "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return problemFor(err, "functions")
	}
	return policy.CheckFunctionBudget(deployed, spec, s.policies.Server().FunctionMemoryBudget)
}

// functionCallContext carries the namespace's policy to a direct function
// call, whose capabilities the function layer checks again.
func (s *server) functionCallContext(r *http.Request) (context.Context, *problem.Problem) {
	if s.policies == nil {
		return r.Context(), nil
	}
	eff, p := s.functionPolicy(r)
	if p != nil {
		return nil, p
	}
	return policy.NewContext(r.Context(), eff), nil
}

// deleteInvocation removes a finished invocation and its history.
func (s *server) deleteInvocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.engine.(interface {
		DeleteInvocation(ctx context.Context, id string) error
	})
	if !ok {
		s.writeProblem(w, r, notImplemented("this server cannot delete invocations"))
		return
	}
	if err := d.DeleteInvocation(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.writeProblem(w, r, conflict("invocation %s is running; cancel it before deleting it", id))
			return
		}
		s.fail(w, r, err, "invocation "+id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
