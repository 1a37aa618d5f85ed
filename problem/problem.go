// Package problem defines Baton's error document: an RFC 7807 problem, the
// same shape the Serverless Workflow DSL uses for workflow errors and the REST
// API uses for HTTP errors.
package problem

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Standard error types of the Serverless Workflow DSL 1.0.
const (
	TypeConfiguration  = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
	TypeValidation     = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"
	TypeExpression     = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
	TypeAuthentication = "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"
	TypeAuthorization  = "https://serverlessworkflow.io/spec/1.0.0/errors/authorization"
	TypeTimeout        = "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"
	TypeCommunication  = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
	TypeRuntime        = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
)

// Baton's own problem types for the REST API and CLI.
const (
	TypeNotFound   = "https://batonflow.dev/problems/not-found"
	TypeBadRequest = "https://batonflow.dev/problems/bad-request"
	TypeConflict   = "https://batonflow.dev/problems/conflict"
	TypeInternal   = "https://batonflow.dev/problems/internal"
	TypeCancelled  = "https://batonflow.dev/problems/cancelled"
)

// Problem is an RFC 7807 problem document. It implements error so that it can
// travel through ordinary Go error paths and be recovered with errors.As.
type Problem struct {
	Type     string `json:"type"`
	Status   int    `json:"status"`
	Title    string `json:"title,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists individual findings when one problem stands for several,
	// such as every validation error of a workflow document.
	Errors []string `json:"errors,omitempty"`
}

// New returns a problem of the given type and status.
func New(typ string, status int, title, detail string) *Problem {
	return &Problem{Type: typ, Status: status, Title: title, Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(typ string, status int, title, format string, args ...any) *Problem {
	return New(typ, status, title, fmt.Sprintf(format, args...))
}

// Standard-type constructors, with the DSL's default status codes.

func Configuration(format string, args ...any) *Problem {
	return Newf(TypeConfiguration, 400, "Configuration Error", format, args...)
}
func Validation(format string, args ...any) *Problem {
	return Newf(TypeValidation, 400, "Validation Error", format, args...)
}
func Expression(format string, args ...any) *Problem {
	return Newf(TypeExpression, 400, "Expression Error", format, args...)
}
func Timeout(format string, args ...any) *Problem {
	return Newf(TypeTimeout, 408, "Timeout", format, args...)
}
func Communication(status int, format string, args ...any) *Problem {
	if status == 0 {
		status = 500
	}
	return Newf(TypeCommunication, status, "Communication Error", format, args...)
}
func Runtime(format string, args ...any) *Problem {
	return Newf(TypeRuntime, 500, "Runtime Error", format, args...)
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Instance != "" {
		b.WriteString(p.Instance)
		b.WriteString(": ")
	}
	if p.Title != "" {
		b.WriteString(p.Title)
	} else {
		b.WriteString(path.Base(p.Type))
	}
	if p.Status != 0 {
		fmt.Fprintf(&b, " (%d)", p.Status)
	}
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// At returns a copy of p whose Instance is set to instance unless one is set
// already: the DSL wants the innermost component that raised the error.
func (p *Problem) At(instance string) *Problem {
	if p.Instance != "" {
		return p
	}
	c := *p
	c.Instance = instance
	return &c
}

// SameType reports whether two error types name the same error. Documents in
// the wild spell the standard types under several prefixes
// (…/spec/1.0.0/errors/timeout, …/dsl/errors/types/timeout); any two types
// on the serverlessworkflow.io host with the same last segment are the same.
func SameType(a, b string) bool {
	if a == b {
		return true
	}
	const host = "serverlessworkflow.io/"
	if strings.Contains(a, host) && strings.Contains(b, host) {
		return path.Base(a) == path.Base(b)
	}
	return false
}

// FromError converts any error into a problem: a *Problem anywhere in the
// chain is returned as it is, anything else becomes a runtime error.
func FromError(err error) *Problem {
	if err == nil {
		return nil
	}
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return Runtime("%v", err)
}
