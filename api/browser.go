package api

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/batonflow/baton/problem"
)

// Browsers are the client to fear on a developer's machine: any page can
// make one send requests to 127.0.0.1. Three checks keep pages out without
// getting in the way of the CLI, curl or a console served from the API's
// own origin:
//
//   - Host: a page on a name its attacker controls can point that name at
//     127.0.0.1 (DNS rebinding) and become "same origin" with Baton. Only
//     IP literals (which nobody can rebind), localhost and the configured
//     names (WithAllowedHosts) are served.
//   - Origin: browsers send it on every cross-origin state-changing
//     request; one that is not the API's own origin (or an allowed one) is
//     refused.
//   - Content-Type: the body types a page may send without a CORS
//     preflight (text/plain, forms) are refused; each route takes JSON or
//     the specific types it documents.

// WithAllowedHosts adds host names (without ports) the API answers to
// besides IP literals and localhost, e.g. the server's DNS name or the
// names in its TLS certificate. "*" accepts any name.
func WithAllowedHosts(hosts ...string) Option {
	return func(c *config) {
		for _, h := range hosts {
			if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
				c.allowedHosts = append(c.allowedHosts, h)
			}
		}
	}
}

// WithAllowedOrigins adds origins (scheme://host[:port]) whose pages may
// change things through the API, besides the API's own.
func WithAllowedOrigins(origins ...string) Option {
	return func(c *config) {
		for _, o := range origins {
			if o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/")); o != "" {
				c.allowedOrigins = append(c.allowedOrigins, o)
			}
		}
	}
}

// jsonTypes is what a route takes unless bodyTypes says otherwise.
var jsonTypes = []string{"application/json"}

// bodyTypes lists the request media types of routes that take more than
// JSON. "+json" suffixed types of JSON are accepted everywhere JSON is.
var bodyTypes = map[string][]string{
	"POST /v1/workflows": {"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"},
	"POST /v1/events":    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"},
	"POST /v1/functions": {"application/json", "multipart/form-data"},
}

func browserProblem(status int, title, format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, status, title, format, args...)
}

func isStateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// checkBrowser applies the Host and Origin checks to every request.
func (s *server) checkBrowser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.writeProblem(w, r, browserProblem(http.StatusForbidden, "Forbidden",
				"host %q is not served here (DNS rebinding protection); the server's operator can allow it with --allowed-hosts", r.Host))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && isStateChanging(r.Method) && !s.originAllowed(origin, r) {
			s.writeProblem(w, r, browserProblem(http.StatusForbidden, "Forbidden",
				"cross-origin request from %q refused; the server's operator can allow an origin with --allowed-origins", origin))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return slices.Contains(s.allowedHosts, host) || slices.Contains(s.allowedHosts, "*")
}

func (s *server) originAllowed(origin string, r *http.Request) bool {
	origin = strings.ToLower(origin)
	if slices.Contains(s.allowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" and other opaque origins
	}
	wantScheme := "http"
	if r.TLS != nil {
		wantScheme = "https"
	}
	return u.Scheme == wantScheme && strings.EqualFold(u.Host, r.Host)
}

// checkBodyType refuses bodies of types the route does not take.
func (s *server) checkBodyType(rt route, next http.Handler) http.Handler {
	accepted, ok := bodyTypes[rt.method+" "+rt.path]
	if !ok {
		accepted = jsonTypes
	}
	binaryEvents := rt.method == http.MethodPost && rt.path == "/v1/events"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isStateChanging(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			if r.ContentLength == 0 {
				next.ServeHTTP(w, r)
				return
			}
			s.writeProblem(w, r, browserProblem(http.StatusUnsupportedMediaType, "Unsupported Media Type",
				"the request has a body but no Content-Type; send %s", strings.Join(accepted, " or ")))
			return
		}
		mediaType, _, err := mime.ParseMediaType(ct)
		if err == nil && (slices.Contains(accepted, mediaType) ||
			(slices.Contains(accepted, "application/json") && strings.HasPrefix(mediaType, "application/") && strings.HasSuffix(mediaType, "+json")) ||
			// A CloudEvent in binary mode has any data type, but its
			// ce-* headers cannot be sent cross-origin without a
			// preflight that this API never grants.
			(binaryEvents && r.Header.Get("Ce-Specversion") != "")) {
			next.ServeHTTP(w, r)
			return
		}
		s.writeProblem(w, r, browserProblem(http.StatusUnsupportedMediaType, "Unsupported Media Type",
			"Content-Type %q is not accepted here; send %s", ct, strings.Join(accepted, " or ")))
	})
}
