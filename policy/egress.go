package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Egress rule keywords.
const (
	KeywordLoopback  = "loopback"
	KeywordPrivate   = "private"
	KeywordLinkLocal = "link-local"
	KeywordMetadata  = "metadata"
	KeywordBaton     = "baton"
)

// metadataAddrs are the cloud providers' instance metadata services:
// they hand out credentials to whoever asks from the machine, so a
// workflow must not be the one asking.
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack...
		netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
	metadataHosts = []string{"metadata.google.internal", "metadata.goog", "metadata"}
	linkLocal     = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}
)

// rule is one entry of an allow or deny list.
type rule struct {
	text     string
	keyword  string
	prefix   netip.Prefix // an address is a /32 or /128
	host     string       // a host name, lower case
	wildcard bool         // host is a suffix: "*.example.com" matches below example.com
}

func parseRule(s string) (rule, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	r := rule{text: s}
	switch t {
	case "":
		return r, errors.New("empty rule")
	case KeywordLoopback, KeywordPrivate, KeywordLinkLocal, KeywordMetadata, KeywordBaton:
		r.keyword = t
		return r, nil
	}
	if p, err := netip.ParsePrefix(t); err == nil {
		r.prefix = p.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(t); err == nil {
		r.prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return r, nil
	}
	if strings.ContainsAny(t, "/:") {
		return r, fmt.Errorf("%q is neither an IP address, a CIDR block nor a host name", s)
	}
	if rest, ok := strings.CutPrefix(t, "*."); ok {
		r.host, r.wildcard = rest, true
	} else {
		r.host = t
	}
	if r.host == "" || strings.Contains(r.host, "*") {
		return r, fmt.Errorf("%q: a host pattern is a name or *.name", s)
	}
	return r, nil
}

// dest is where a connection goes: the name asked for and, once
// resolved, the address dialled.
type dest struct {
	host string         // the name or literal the call used, lower case
	addr netip.AddrPort // invalid before resolution
}

func (r rule) match(d dest, self *selfAddrs) bool {
	ip := d.addr.Addr().Unmap()
	resolved := d.addr.IsValid()
	switch r.keyword {
	case KeywordLoopback:
		return resolved && ip.IsLoopback() || d.host == "localhost"
	case KeywordPrivate:
		return resolved && ip.IsPrivate()
	case KeywordLinkLocal:
		return resolved && slices.ContainsFunc(linkLocal, func(p netip.Prefix) bool { return p.Contains(ip) })
	case KeywordMetadata:
		return resolved && slices.Contains(metadataAddrs, ip) || slices.Contains(metadataHosts, d.host)
	case KeywordBaton:
		return resolved && self.match(netip.AddrPortFrom(ip, d.addr.Port()))
	}
	if r.prefix.IsValid() {
		if resolved {
			return r.prefix.Contains(ip)
		}
		// A literal address in the URL is known before resolution.
		if a, err := netip.ParseAddr(d.host); err == nil {
			return r.prefix.Contains(a.Unmap())
		}
		return false
	}
	if r.wildcard {
		return strings.HasSuffix(d.host, "."+r.host)
	}
	return d.host == r.host
}

// selfAddrs are the server's own API addresses.
type selfAddrs struct {
	exact []netip.AddrPort
	// anyPorts are ports listened on every address: a connection to one
	// of them on a loopback or local interface address is to the server.
	anyPorts []uint16
	local    []netip.Addr
}

func newSelf(addrs []string) *selfAddrs {
	s := &selfAddrs{}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.IsUnspecified() {
			s.anyPorts = append(s.anyPorts, uint16(p))
			continue
		}
		s.exact = append(s.exact, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	if len(s.anyPorts) > 0 {
		if ifaddrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range ifaddrs {
				if n, ok := ia.(*net.IPNet); ok {
					if a, ok := netip.AddrFromSlice(n.IP); ok {
						s.local = append(s.local, a.Unmap())
					}
				}
			}
		}
	}
	return s
}

func (s *selfAddrs) match(ap netip.AddrPort) bool {
	if slices.Contains(s.exact, ap) {
		return true
	}
	if slices.Contains(s.anyPorts, ap.Port()) {
		return ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() || slices.Contains(s.local, ap.Addr())
	}
	return false
}

// Guard decides where a namespace's calls may connect. Rules are
// consulted in this order, the first match deciding:
//
//  1. the namespace's deny list, then its allow list;
//  2. the server's deny list (--egress-deny), then its allow list
//     (--egress-allow);
//  3. the built-in denials: cloud metadata addresses, link-local
//     addresses, and the server's own API address;
//  4. the namespace's default, else the server's, else allow.
//
// So an operator allows metadata to one namespace with `allow: [metadata]`
// in its policy, and denies everything but a few hosts with
// `default: deny` and an allow list.
type Guard struct {
	namespace        string
	nsDeny, nsAllow  []rule
	srvDeny, srvAllw []rule
	deny             bool // the default
	defaultFrom      string
	self             *selfAddrs
	key              string
	doc              Egress
}

var builtinDeny = []rule{
	{text: KeywordMetadata, keyword: KeywordMetadata},
	{text: KeywordLinkLocal, keyword: KeywordLinkLocal},
	{text: KeywordBaton, keyword: KeywordBaton},
}

func parseRules(list []string) ([]rule, error) {
	rules := make([]rule, 0, len(list))
	for _, s := range list {
		r, err := parseRule(s)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func newGuard(namespace string, ns, srv Egress, self []string) (*Guard, error) {
	g := &Guard{namespace: namespace, self: newSelf(self)}
	var err error
	if g.nsDeny, err = parseRules(ns.Deny); err != nil {
		return nil, err
	}
	if g.nsAllow, err = parseRules(ns.Allow); err != nil {
		return nil, err
	}
	if g.srvDeny, err = parseRules(srv.Deny); err != nil {
		return nil, err
	}
	if g.srvAllw, err = parseRules(srv.Allow); err != nil {
		return nil, err
	}
	switch {
	case ns.Default != "":
		g.deny, g.defaultFrom = ns.Default == "deny", "namespace policy egress.default"
	case srv.Default != "":
		g.deny, g.defaultFrom = srv.Default == "deny", "server --egress-default"
	default:
		g.defaultFrom = "the default"
	}
	g.doc = Egress{
		Allow:   append(append([]string(nil), ns.Allow...), srv.Allow...),
		Deny:    append(append([]string(nil), ns.Deny...), srv.Deny...),
		Default: map[bool]string{true: "deny", false: "allow"}[g.deny],
	}
	g.key = fmt.Sprintf("%q|%q|%q|%q|%q|%v|%q", namespace, ns.Deny, ns.Allow, srv.Deny, srv.Allow, g.deny, self)
	return g, nil
}

func (g *Guard) document() Egress { return g.doc }

// DeniedError is a connection the egress policy refused.
type DeniedError struct {
	Host string
	Addr netip.AddrPort // invalid when refused by name before resolution
	Rule string
}

func (e *DeniedError) Error() string {
	to := e.Host
	if e.Addr.IsValid() && e.Addr.Addr().String() != e.Host {
		to += " (" + e.Addr.String() + ")"
	}
	return "egress to " + to + " is denied by " + e.Rule
}

// check decides a destination; nil allows it. Before resolution only the
// rules that can be decided on the name apply, and nothing is allowed
// yet: the resolved address is checked again when dialled.
func (g *Guard) check(d dest) error {
	d.host = strings.ToLower(strings.TrimSuffix(d.host, "."))
	resolved := d.addr.IsValid()
	deny := func(r rule, where string) error {
		return &DeniedError{Host: d.host, Addr: d.addr, Rule: fmt.Sprintf("%s %q", where, r.text)}
	}
	for _, r := range g.nsDeny {
		if r.match(d, g.self) {
			return deny(r, "namespace "+nsName(g.namespace)+" policy egress.deny")
		}
	}
	for _, r := range g.nsAllow {
		if r.match(d, g.self) {
			return nil
		}
	}
	for _, r := range g.srvDeny {
		if r.match(d, g.self) {
			return deny(r, "server --egress-deny")
		}
	}
	for _, r := range g.srvAllw {
		if r.match(d, g.self) {
			return nil
		}
	}
	for _, r := range builtinDeny {
		if r.match(d, g.self) {
			return deny(r, "the built-in egress denial of")
		}
	}
	if g.deny && resolved {
		return &DeniedError{Host: d.host, Addr: d.addr, Rule: g.defaultFrom + " (deny)"}
	}
	return nil
}

// Check decides a connection to addr made for host (the name the call
// used). It is exported for tests and for callers that dial themselves.
func (g *Guard) Check(host string, addr netip.AddrPort) error {
	return g.check(dest{host: host, addr: netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())})
}

// CheckName decides what can be decided on a name (or literal address)
// alone, before any resolution.
func (g *Guard) CheckName(host string) error { return g.check(dest{host: host}) }

type guardKey struct{}

// WithGuard returns a context whose connections the guard decides.
func WithGuard(ctx context.Context, g *Guard) context.Context {
	return context.WithValue(ctx, guardKey{}, g)
}

// GuardFrom returns the guard of ctx, or nil.
func GuardFrom(ctx context.Context) *Guard {
	g, _ := ctx.Value(guardKey{}).(*Guard)
	return g
}

// DialContext dials addr ("host:port") for host names' sake under g: the
// name is checked first, then each address the resolver returns is
// checked at connect time, so a name that resolves (or re-resolves, DNS
// rebinding) to a denied address is refused too.
func (g *Guard) DialContext(ctx context.Context, base *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return g.DialAs(ctx, base, host, network, addr)
}

// Key identifies the guard's rules: guards with equal keys decide alike,
// so connections made under one may be reused under the other.
func (g *Guard) Key() string { return g.key }

// DialAs is DialContext for a caller that resolved the name itself (gRPC
// does): host is the name the call used, which name rules apply to, and
// addr is what is dialled.
func (g *Guard) DialAs(ctx context.Context, base *net.Dialer, host, network, addr string) (net.Conn, error) {
	if base == nil {
		base = defaultDialer
	}
	if err := g.CheckName(host); err != nil {
		return nil, err
	}
	d := *base
	d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &DeniedError{Host: host, Rule: "an unparsable address " + address}
		}
		return g.Check(host, ap)
	}
	return d.DialContext(ctx, network, addr)
}

// IsDenied reports whether err is (or wraps) an egress refusal.
func IsDenied(err error) bool {
	var d *DeniedError
	return errors.As(err, &d)
}

// Transport is an http.RoundTripper that enforces the egress guard of
// each request's context (or Fallback when it has none). Connections are
// pooled per guard, so a connection one namespace may use is never reused
// by another whose policy differs.
type Transport struct {
	// New returns the transport a guard's connections are pooled in; its
	// DialContext is replaced. Required.
	New func() *http.Transport
	// Fallback guards requests whose context carries no guard (prewarm
	// requests, say); nil leaves them unguarded.
	Fallback *Guard

	mu      sync.Mutex
	byGuard map[string]*http.Transport
	// current is each namespace's newest guard key: when a namespace's
	// policy changes, the pool of its old rules is closed and dropped.
	current map[string]string
	open    *http.Transport
}

var defaultDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := GuardFrom(req.Context())
	if g == nil {
		g = t.Fallback
	}
	if g != nil {
		// Checked here too for requests that go through a proxy, whose
		// dial is to the proxy, not to the host.
		if err := g.CheckName(req.URL.Hostname()); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	return t.transport(g).RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func (t *Transport) transport(g *Guard) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g == nil {
		if t.open == nil {
			t.open = t.New()
		}
		return t.open
	}
	if tr := t.byGuard[g.key]; tr != nil {
		return tr
	}
	tr := t.New()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return g.DialContext(ctx, defaultDialer, network, addr)
	}
	tr.DialTLSContext = nil
	if t.byGuard == nil {
		t.byGuard = make(map[string]*http.Transport)
		t.current = make(map[string]string)
	}
	if old, ok := t.current[g.namespace]; ok && old != g.key {
		if stale := t.byGuard[old]; stale != nil {
			stale.CloseIdleConnections()
			delete(t.byGuard, old)
		}
	}
	t.current[g.namespace] = g.key
	t.byGuard[g.key] = tr
	return tr
}

// CloseIdleConnections closes every pool's idle connections.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open != nil {
		t.open.CloseIdleConnections()
	}
	for _, tr := range t.byGuard {
		tr.CloseIdleConnections()
	}
}
