package edge_test

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/valetauth/valet/services/edge"
)

// identityHeaders are the headers a 200 carries, lower-cased.
var identityHeaders = []string{"x-valet-subject", "x-valet-client", "x-valet-scope", "x-valet-token-id"}

// loadYAML decodes a shipped gateway configuration.
func loadYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// at walks doc along keys (map keys, or list indexes as ints), failing when
// a step is missing.
func at(t *testing.T, doc any, keys ...any) any {
	t.Helper()
	cur := doc
	for i, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", keys[:i], k)
			}
			if cur, ok = m[k]; !ok {
				t.Fatalf("%v: no key %q", keys[:i], k)
			}
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", keys[:i], k)
			}
			cur = l[k]
		}
	}
	return cur
}

// patterns returns the exact, lower-cased header names of an Envoy
// StringMatcher list.
func patterns(t *testing.T, list any) []string {
	t.Helper()
	var out []string
	for _, p := range list.([]any) {
		if exact, ok := p.(map[string]any)["exact"].(string); ok {
			out = append(out, strings.ToLower(exact))
		}
	}
	return out
}

func TestEnvoyConfig(t *testing.T) {
	doc := loadYAML(t, "../../deploy/gateways/envoy/envoy.yaml")
	hcm := at(t, doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
	filters := at(t, hcm, "http_filters").([]any)
	var names []string
	for _, f := range filters {
		names = append(names, f.(map[string]any)["name"].(string))
	}
	mutation, authz := slices.Index(names, "envoy.filters.http.header_mutation"), slices.Index(names, "envoy.filters.http.ext_authz")
	if mutation < 0 || authz < 0 || mutation > authz || names[len(names)-1] != "envoy.filters.http.router" {
		t.Fatalf("http_filters %v: want header_mutation, then ext_authz, router last", names)
	}

	var removed []string
	for _, m := range at(t, filters[mutation], "typed_config", "mutations", "request_mutations").([]any) {
		removed = append(removed, m.(map[string]any)["remove"].(string))
	}
	for _, h := range identityHeaders {
		if !slices.Contains(removed, h) {
			t.Errorf("header_mutation does not remove the client's %s", h)
		}
	}

	cfg := at(t, filters[authz], "typed_config")
	if at(t, cfg, "failure_mode_allow") != false {
		t.Error("failure_mode_allow must be false: fail closed")
	}
	svc := at(t, cfg, "http_service")
	if got := at(t, svc, "path_prefix"); got != edge.PathEnvoy {
		t.Errorf("path_prefix %v, want %s", got, edge.PathEnvoy)
	}
	if got := patterns(t, at(t, svc, "authorization_request", "allowed_headers", "patterns")); !slices.Contains(got, "authorization") {
		t.Errorf("allowed_headers %v do not forward Authorization", got)
	}
	up := patterns(t, at(t, svc, "authorization_response", "allowed_upstream_headers", "patterns"))
	for _, h := range identityHeaders {
		if !slices.Contains(up, h) {
			t.Errorf("allowed_upstream_headers %v lack %s", up, h)
		}
	}
	if got := patterns(t, at(t, svc, "authorization_response", "allowed_client_headers", "patterns")); !slices.Contains(got, "www-authenticate") {
		t.Errorf("allowed_client_headers %v lack www-authenticate", got)
	}

	cluster := at(t, svc, "server_uri", "cluster")
	found := false
	for _, c := range at(t, doc, "static_resources", "clusters").([]any) {
		found = found || c.(map[string]any)["name"] == cluster
	}
	if !found {
		t.Errorf("server_uri.cluster %v is not defined", cluster)
	}
}

func TestTraefikConfig(t *testing.T) {
	doc := loadYAML(t, "../../deploy/gateways/traefik/dynamic.yaml")
	fa := at(t, doc, "http", "middlewares", "valet-auth", "forwardAuth")
	u, err := url.Parse(at(t, fa, "address").(string))
	if err != nil || u.Path != edge.PathTraefik {
		t.Errorf("address %v: want a URL with path %s", at(t, fa, "address"), edge.PathTraefik)
	}
	if at(t, fa, "trustForwardHeader") != false {
		t.Error("trustForwardHeader must be false: the client would choose the route")
	}
	var req, res []string
	for _, h := range at(t, fa, "authRequestHeaders").([]any) {
		req = append(req, strings.ToLower(h.(string)))
	}
	for _, h := range at(t, fa, "authResponseHeaders").([]any) {
		res = append(res, strings.ToLower(h.(string)))
	}
	if !slices.Contains(req, "authorization") {
		t.Errorf("authRequestHeaders %v do not forward Authorization", req)
	}
	for _, h := range identityHeaders {
		if !slices.Contains(res, h) {
			t.Errorf("authResponseHeaders %v lack %s", res, h)
		}
	}
	router := at(t, doc, "http", "routers", "api")
	if mw := at(t, router, "middlewares").([]any); !slices.Contains(mw, any("valet-auth")) {
		t.Errorf("router middlewares %v lack valet-auth", mw)
	}
}

func TestNGINXTemplatePointsAtTheAuthorizer(t *testing.T) {
	b, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxy_pass http://valet_edge" + edge.PathNGINX + ";", "X-Original-URI    $request_uri", "X-Original-Method $request_method"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", nginxTemplate, want)
		}
	}
}

func TestExampleRoutes(t *testing.T) {
	p, err := edge.LoadPolicy("../../deploy/gateways/routes.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Unmatched != edge.UnmatchedDeny || len(p.Routes) == 0 {
		t.Errorf("example policy %+v: want unmatched deny and routes", p)
	}
}
