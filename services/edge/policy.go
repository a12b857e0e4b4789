package edge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// What a request that matches no route gets (Policy.Unmatched).
const (
	// UnmatchedDeny answers 403 to a valid token on a route nobody
	// configured: the default, so that a new upstream path is never exposed
	// by accident.
	UnmatchedDeny = "deny"
	// UnmatchedAuthenticated accepts any valid token on a route nobody
	// configured.
	UnmatchedAuthenticated = "authenticated"
)

// Policy says which scopes each route of the protected upstream requires.
// It is read from the YAML file named by services.edge.routes_file
// (docs/gateway.md, "Route scopes"); deploy/gateways/routes.example.yaml is
// an example.
type Policy struct {
	// Unmatched is UnmatchedDeny (the default when empty) or
	// UnmatchedAuthenticated.
	Unmatched string `yaml:"unmatched"`
	// Routes are matched as described on Route.
	Routes []Route `yaml:"routes"`
}

// Route requires Scopes of requests whose path starts with Prefix, on
// whole segments ("/reports" matches "/reports" and "/reports/1", never
// "/reportsx"). Among the routes a request matches, the longest prefix
// wins, and at equal length a route naming the method beats one that does
// not. Routes naming a Host form a virtual host: a request for that host is
// matched against its routes only, any other request against the routes
// without a host.
type Route struct {
	// Host is an optional host name, matched case-insensitively without the
	// port.
	Host string `yaml:"host"`
	// Methods are optional HTTP methods (upper case); empty means any.
	Methods []string `yaml:"methods"`
	// Prefix is the path prefix, starting with "/".
	Prefix string `yaml:"prefix"`
	// Scopes must all be in the token's scope claim; empty means any valid
	// token.
	Scopes []string `yaml:"scopes"`
}

// LoadPolicy reads and validates the policy file at path.
func LoadPolicy(path string) (Policy, error) {
	if path == "" {
		return Policy{}, errors.New("edge: no route policy file given (services.edge.routes_file)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("edge: read route policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return Policy{}, fmt.Errorf("edge: route policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes a policy from YAML, refusing unknown keys, and
// validates it.
func ParsePolicy(data []byte) (Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("decode YAML: %w", err)
	}
	if _, err := compilePolicy(p); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// routeTable is a compiled Policy.
type routeTable struct {
	denyUnmatched bool
	// anyHost are the routes without a host; byHost the virtual hosts.
	anyHost []*route
	byHost  map[string][]*route
}

// route is a compiled Route; each list of them is sorted so that the first
// match is the one that wins.
type route struct {
	prefix  string // without a trailing slash, except "/"
	methods []string
	scopes  []string
	// wwwInsufficient is the WWW-Authenticate value of a 403 on this
	// route, built once.
	wwwInsufficient string
}

// compilePolicy validates p and returns its table, naming every problem.
func compilePolicy(p Policy) (*routeTable, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	t := &routeTable{byHost: map[string][]*route{}}
	switch p.Unmatched {
	case "", UnmatchedDeny:
		t.denyUnmatched = true
	case UnmatchedAuthenticated:
	default:
		add("unmatched: %q is neither %q nor %q", p.Unmatched, UnmatchedDeny, UnmatchedAuthenticated)
	}
	if len(p.Routes) == 0 && t.denyUnmatched {
		add("routes: none, and unmatched requests are denied, so every request would be: list routes (prefix / with no scopes accepts any valid token), or set unmatched: %s", UnmatchedAuthenticated)
	}
	type key struct{ host, prefix, method string }
	seen := map[key]int{}
	for i, r := range p.Routes {
		name := fmt.Sprintf("routes[%d]", i)
		host := strings.ToLower(r.Host)
		if host != "" && (strings.ContainsAny(host, "/:?#@ ") || host != strings.TrimSpace(host)) {
			add("%s.host: %q must be a bare host name, without scheme, port or path", name, r.Host)
		}
		prefix, err := cleanPrefix(r.Prefix)
		if err != nil {
			add("%s.prefix: %v", name, err)
		}
		for _, m := range r.Methods {
			if m == "" || m != strings.ToUpper(m) || !isToken(m) {
				add("%s.methods: %q is not an upper-case HTTP method", name, m)
			}
		}
		for _, s := range r.Scopes {
			if !isScopeToken(s) {
				add("%s.scopes: %q is not an RFC 6749 §3.3 scope token", name, s)
			}
		}
		methods := r.Methods
		if len(methods) == 0 {
			methods = []string{""}
		}
		for _, m := range methods {
			k := key{host, prefix, m}
			if j, dup := seen[k]; dup {
				add("%s: host %q, prefix %q, method %q already configured by routes[%d]", name, host, prefix, m, j)
			}
			seen[k] = i
		}
		cr := &route{prefix: prefix, methods: slices.Clone(r.Methods), scopes: slices.Clone(r.Scopes)}
		cr.wwwInsufficient = bearerChallenge("insufficient_scope", "the access token lacks a scope this route requires", strings.Join(cr.scopes, " "))
		if host == "" {
			t.anyHost = append(t.anyHost, cr)
		} else {
			t.byHost[host] = append(t.byHost[host], cr)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid route policy: %w", errors.Join(errs...))
	}
	order := func(a, b *route) int {
		if d := len(b.prefix) - len(a.prefix); d != 0 {
			return d // longest prefix first
		}
		return len(b.methods) - len(a.methods) // then the ones naming methods
	}
	slices.SortStableFunc(t.anyHost, order)
	for _, rs := range t.byHost {
		slices.SortStableFunc(rs, order)
	}
	return t, nil
}

// match returns the route for a request, or nil when none matches. path is
// a normalized path (normalizePath); host may carry a port.
func (t *routeTable) match(host, method, path string) *route {
	routes := t.anyHost
	if len(t.byHost) > 0 && host != "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if rs, ok := t.byHost[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
			routes = rs
		}
	}
	for _, r := range routes {
		if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
			continue
		}
		if prefixMatches(r.prefix, path) {
			return r
		}
	}
	return nil
}

// prefixMatches reports whether path starts with prefix on a segment
// boundary.
func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// cleanPrefix validates a route prefix and drops its trailing slash.
func cleanPrefix(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must start with /", p)
	}
	if strings.ContainsAny(p, "?#%") {
		return "", fmt.Errorf("%q must be a plain decoded path, without query, fragment or escapes", p)
	}
	n, err := normalizePath(p)
	if err != nil || n != p {
		return "", fmt.Errorf("%q must be a normalized path (no dot segments, no repeated slashes)", p)
	}
	if n != "/" {
		n = strings.TrimSuffix(n, "/")
	}
	return n, nil
}

// errBadPath is a request path the authorizer refuses to guess about.
var errBadPath = errors.New("ambiguous or malformed request path")

// normalizePath returns the path of a request target (origin form
// "/a/b?q", or absolute form "https://h/a/b?q") to match routes against:
// query and fragment dropped, percent-escapes decoded, repeated slashes
// merged. It refuses (errBadPath) what gateways and upstreams might read
// differently: invalid escapes, control characters, and dot segments
// ("." or "..", separated by "/" or "\", plain or escaped), since an
// upstream resolving "/public/../admin" would serve a path other than the
// one the route was chosen for.
func normalizePath(target string) (string, error) {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if !strings.HasPrefix(target, "/") {
		// Absolute form (RFC 9112 §3.2.2): keep the path.
		u, err := url.Parse(target)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return "", errBadPath
		}
		target = u.EscapedPath()
		if target == "" {
			target = "/"
		}
	}
	p := target
	if strings.IndexByte(p, '%') >= 0 {
		var err error
		if p, err = url.PathUnescape(p); err != nil {
			return "", errBadPath
		}
	}
	if strings.Contains(p, "//") {
		var b strings.Builder
		b.Grow(len(p))
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && i > 0 && p[i-1] == '/' {
				continue
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if c < 0x20 || c == 0x7f {
				return "", errBadPath
			}
			if c != '/' && c != '\\' {
				continue
			}
		}
		if seg := p[start:i]; seg == "." || seg == ".." {
			return "", errBadPath
		}
		start = i + 1
	}
	return p, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// isScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return s != ""
}
