package edge

import (
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name, target, want string
		bad                bool
	}{
		{name: "plain", target: "/a/b", want: "/a/b"},
		{name: "query and fragment dropped", target: "/a/b?x=1#f", want: "/a/b"},
		{name: "escapes decoded", target: "/a%20b/%41", want: "/a b/A"},
		{name: "encoded slash decoded", target: "/a%2Fb", want: "/a/b"},
		{name: "repeated slashes merged", target: "//a///b/", want: "/a/b/"},
		{name: "absolute form", target: "https://api.test/a/b?q", want: "/a/b"},
		{name: "absolute form without path", target: "https://api.test", want: "/"},
		{name: "dot-dot", target: "/a/../b", bad: true},
		{name: "dot", target: "/a/./b", bad: true},
		{name: "trailing dot-dot", target: "/a/..", bad: true},
		{name: "escaped dot-dot", target: "/a/%2e%2E/b", bad: true},
		{name: "escaped slash dot-dot", target: "/a%2f..%2fb", bad: true},
		{name: "backslash dot-dot", target: "/a\\..\\b", bad: true},
		{name: "invalid escape", target: "/a%zz", bad: true},
		{name: "NUL", target: "/a%00b", bad: true},
		{name: "newline", target: "/a%0Ab", bad: true},
		{name: "relative", target: "a/b", bad: true},
		{name: "asterisk form", target: "*", bad: true},
		{name: "dots inside a segment are fine", target: "/a/..b/c.d", want: "/a/..b/c.d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizePath(tt.target)
			if tt.bad {
				if err == nil {
					t.Fatalf("normalizePath(%q) = %q, want an error", tt.target, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("normalizePath(%q) = %q, %v; want %q", tt.target, got, err, tt.want)
			}
		})
	}
}

func TestRouteMatch(t *testing.T) {
	p, err := ParsePolicy([]byte(`
unmatched: authenticated
routes:
  - prefix: /
    scopes: [base]
  - prefix: /api/
    scopes: [api]
  - prefix: /api/admin
    scopes: [admin]
  - prefix: /api/admin
    methods: [GET]
    scopes: [admin-read]
  - prefix: /api/public
  - host: internal.test
    prefix: /api
    scopes: [internal]
`))
	if err != nil {
		t.Fatal(err)
	}
	table, err := compilePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, method, path string
		want                     string // the route's scopes joined, "-" for none matched
	}{
		{name: "root", method: "GET", path: "/x", want: "base"},
		{name: "longest prefix wins", method: "POST", path: "/api/admin/users", want: "admin"},
		{name: "method beats any-method at equal length", method: "GET", path: "/api/admin/users", want: "admin-read"},
		{name: "exact prefix", method: "GET", path: "/api/admin", want: "admin-read"},
		{name: "segment boundary", method: "POST", path: "/api/administrator", want: "api"},
		{name: "trailing slash prefix matches the bare path", method: "GET", path: "/api", want: "api"},
		{name: "route without scopes", method: "GET", path: "/api/public/x", want: ""},
		{name: "virtual host", host: "Internal.test:8443", method: "GET", path: "/api/admin", want: "internal"},
		{name: "virtual host only: no fallback", host: "internal.test", method: "GET", path: "/other", want: "-"},
		{name: "other host", host: "api.test", method: "GET", path: "/api/admin", want: "admin-read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "-"
			if r := table.match(tt.host, tt.method, tt.path); r != nil {
				got = strings.Join(r.scopes, " ")
			}
			if got != tt.want {
				t.Fatalf("match(%q, %q, %q) = %q, want %q", tt.host, tt.method, tt.path, got, tt.want)
			}
		})
	}
	if table.denyUnmatched {
		t.Error("unmatched: authenticated parsed as deny")
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{name: "unknown key", yaml: "routes:\n  - prefix: /\n    scope: [a]\n", want: "field scope not found"},
		{name: "nothing allowed", yaml: "unmatched: deny\n", want: "every request would be"},
		{name: "empty file", yaml: "", want: "decode YAML"},
		{name: "bad unmatched", yaml: "unmatched: allow\nroutes: [{prefix: /}]\n", want: `"allow" is neither`},
		{name: "relative prefix", yaml: "routes: [{prefix: api}]\n", want: "must start with /"},
		{name: "prefix with query", yaml: "routes: [{prefix: '/a?b'}]\n", want: "plain decoded path"},
		{name: "prefix with dot segment", yaml: "routes: [{prefix: /a/../b}]\n", want: "normalized path"},
		{name: "prefix with double slash", yaml: "routes: [{prefix: /a//b}]\n", want: "normalized path"},
		{name: "lower-case method", yaml: "routes: [{prefix: /, methods: [get]}]\n", want: "upper-case HTTP method"},
		{name: "bad scope", yaml: "routes: [{prefix: /, scopes: ['a\"b']}]\n", want: "scope token"},
		{name: "host with port", yaml: "routes: [{prefix: /, host: 'a.test:80'}]\n", want: "bare host name"},
		{name: "duplicate", yaml: "routes: [{prefix: /a/, methods: [GET]}, {prefix: /a, methods: [POST, GET]}]\n", want: "already configured by routes[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePolicy error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTokenInQuery(t *testing.T) {
	for target, want := range map[string]bool{
		"/a":                       false,
		"/a?x=1":                   false,
		"/a?my_token=1":            false,
		"/a?access_token=x":        true,
		"/a?x=1&access_token":      true,
		"/a?%61ccess_token=x":      true,
		"/a?access%5Ftoken=x":      true,
		"/a#access_token=x":        false,
		"/access_token?y=1":        false,
		"/a?x=access_token&y=%zz":  false,
		"/a?%zz&access_token=more": true,
	} {
		if got := tokenInQuery(target); got != want {
			t.Errorf("tokenInQuery(%q) = %v, want %v", target, got, want)
		}
	}
}
