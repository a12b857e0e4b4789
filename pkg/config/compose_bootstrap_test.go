package config

// The compose topology's clients and trusted proxies: the bootstrap section the issuers apply
// (deploy/compose/issuer.yaml) must be readable where they run, from secrets the compose file
// mounts and deploy/compose/init-secrets.sh writes, and must give a newcomer a client for the
// demo API behind the gateway; and the services must believe X-Forwarded-For from the TLS front
// and from nobody else.

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// bootstrapRef is one credential of the bootstrap section: where it is declared and its value
// as written (a reference or a hash, never a secret: Validate refuses those).
type bootstrapRef struct {
	key, value string
	client     bool // a client secret, held to config.MinClientSecretLength once read
}

// bootstrapRefs lists every credential the bootstrap section declares.
func bootstrapRefs(b Bootstrap) []bootstrapRef {
	var out []bootstrapRef
	add := func(key, value string, client bool) {
		if value != "" {
			out = append(out, bootstrapRef{key: key, value: value, client: client})
		}
	}
	for i, c := range b.Clients {
		add(fmt.Sprintf("bootstrap.clients[%d].secret", i), c.Secret, true)
		add(fmt.Sprintf("bootstrap.clients[%d].previous_secret", i), c.PreviousSecret, true)
	}
	for i, a := range b.AdminClients {
		add(fmt.Sprintf("bootstrap.admin_clients[%d].secret", i), a.Secret, true)
		add(fmt.Sprintf("bootstrap.admin_clients[%d].previous_secret", i), a.PreviousSecret, true)
	}
	for i, u := range b.Users {
		add(fmt.Sprintf("bootstrap.users[%d].password", i), u.Password, false)
	}
	return out
}

// secretMountedAt returns the compose secret a service mounts at the container path p.
func (s composeService) secretMountedAt(p string) (string, bool) {
	for _, sec := range s.Secrets {
		if "/run/secrets/"+sec.Target == p {
			return sec.Source, true
		}
	}
	return "", false
}

// sortedServices returns the compose services' names in order, for stable messages.
func sortedServices(c composeFile) []string {
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// TestComposeBootstrap checks the clients a fresh `docker compose up` gets: every issuer replica
// applies the same bootstrap section, which declares an admin client and a client-credentials
// client of the demo API (the edges' audience, every scope the route policy requires); every
// credential it reads is a compose secret the service mounts and the generator writes, long
// enough once read; and no other service mounts those secrets.
func TestComposeBootstrap(t *testing.T) {
	c := loadCompose(t)
	gen := generateSecrets(t)

	var declared *Bootstrap
	declaredBy := ""
	used := map[string]bool{} // compose secrets the bootstrap reads
	var audience, routesFile string
	for _, name := range sortedServices(c) {
		s := c.Services[name]
		role := s.valetRole()
		if role == "" {
			continue
		}
		cfg := valetConfig(t, name, s)
		if role == "edge" {
			audience = cfg.Services.Edge.Audience
			src, ok := s.mountSource(cfg.Services.Edge.RoutesFile)
			if !ok {
				t.Fatalf("%s: services.edge.routes_file %s is not mounted from the repository", name, cfg.Services.Edge.RoutesFile)
			}
			routesFile = src
		}
		if role != "issuer" && role != "cli" {
			if !cfg.Bootstrap.Empty() {
				t.Errorf("%s: only the issuers apply the bootstrap section; do not give it to %s", name, role)
			}
			continue
		}
		switch {
		case role == "issuer" && cfg.Bootstrap.Empty():
			t.Errorf("%s: no bootstrap section: a fresh stack would have no client to get a token with", name)
			continue
		case cfg.Bootstrap.Empty(): // the CLI without the issuers' file
			continue
		case declared == nil:
			declared, declaredBy = &cfg.Bootstrap, name
		case !reflect.DeepEqual(*declared, cfg.Bootstrap):
			// Replicas with different declarations would undo each other's records at each start;
			// the CLI's `valet bootstrap check` must check what the issuers apply.
			t.Errorf("%s declares another bootstrap section than %s; mount the same file", name, declaredBy)
		}

		for _, ref := range bootstrapRefs(cfg.Bootstrap) {
			p, isFile := strings.CutPrefix(ref.value, "file:")
			switch {
			case strings.HasPrefix(ref.value, "env:"):
				t.Errorf("%s: %s is %s: compose secrets are files (file:/run/secrets/<name>); an environment "+
					"variable would show the secret in docker inspect", name, ref.key, ref.value)
				continue
			case !isFile:
				continue // a hash written in the file: nothing to read
			}
			source, ok := s.secretMountedAt(p)
			if !ok {
				t.Errorf("%s: %s reads %s, which is no secret the service mounts", name, ref.key, p)
				continue
			}
			used[source] = true
			rel, ok := strings.CutPrefix(path.Clean(strings.TrimPrefix(c.Secrets[source].File, "./")), generatedSecrets)
			if !ok {
				t.Errorf("%s: %s: secret %s is %q, not a file deploy/compose/init-secrets.sh writes under %s",
					name, ref.key, source, c.Secrets[source].File, generatedSecrets)
				continue
			}
			// Read as the issuer reads it, from what the generator wrote.
			v, err := ReadReference("file:"+filepath.Join(gen, rel), nil)
			if err != nil {
				t.Errorf("%s: %s: the generator does not write %s: %v", name, ref.key, c.Secrets[source].File, err)
				continue
			}
			if ref.client && len(v) < MinClientSecretLength {
				t.Errorf("%s: %s: the generated secret has %d characters; the issuer refuses fewer than %d",
					name, ref.key, len(v), MinClientSecretLength)
			}
		}
	}
	if declared == nil {
		t.Fatal("no Valet service declares a bootstrap section")
	}

	// Least privilege: the client secrets are mounted where they are read, and nowhere else.
	for _, name := range sortedServices(c) {
		s := c.Services[name]
		reads := map[string]bool{} // what its bootstrap section reads
		if s.valetRole() != "" {
			for _, ref := range bootstrapRefs(valetConfig(t, name, s).Bootstrap) {
				reads[ref.value] = true
			}
		}
		for _, sec := range s.Secrets {
			if (used[sec.Source] || strings.HasSuffix(sec.Source, "-client-secret")) && !reads["file:/run/secrets/"+sec.Target] {
				t.Errorf("%s mounts %s, which its bootstrap section does not read", name, sec.Source)
			}
		}
	}

	if len(declared.AdminClients) == 0 {
		t.Error("no admin client: nobody could use the admin API or the valet CLI (docs/admin.md)")
	}

	// The demo API behind the gateway: its resource server is the edges' audience with every
	// scope the route policy requires, and a client-credentials client may get all of them.
	if audience == "" || routesFile == "" {
		t.Fatal("no edge service with an audience and a routes file")
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, routesFile))
	if err != nil {
		t.Fatal(err)
	}
	var routes struct {
		Routes []struct {
			Scopes []string `yaml:"scopes"`
		} `yaml:"routes"`
	}
	if err := yaml.Unmarshal(b, &routes); err != nil {
		t.Fatalf("%s: %v", routesFile, err)
	}
	var required []string
	for _, r := range routes.Routes {
		for _, sc := range r.Scopes {
			if !slices.Contains(required, sc) {
				required = append(required, sc)
			}
		}
	}
	if len(required) == 0 {
		t.Fatalf("%s requires no scope", routesFile)
	}
	rs := slices.IndexFunc(declared.ResourceServers, func(r BootstrapResourceServer) bool { return r.ID == audience })
	if rs < 0 {
		t.Fatalf("no declared resource server is the edges' audience %s: their tokens would be refused", audience)
	}
	for _, sc := range required {
		if !slices.Contains(declared.ResourceServers[rs].Scopes, sc) {
			t.Errorf("resource server %s does not define %s, which %s requires", audience, sc, routesFile)
		}
	}
	demo := false
	for _, cl := range declared.Clients {
		if cl.Type == "public" || cl.Disabled || !slices.Contains(cl.GrantTypes, "client_credentials") {
			continue
		}
		for _, a := range cl.Resources {
			if a.ID == audience && !slices.ContainsFunc(required, func(sc string) bool { return !slices.Contains(a.Scopes, sc) }) {
				demo = true
			}
		}
	}
	if !demo {
		t.Errorf("no enabled client-credentials client may get %v at %s: a newcomer cannot call the demo API", required, audience)
	}
}

// xffAppend is how an NGINX front hands the client's address on: appending the peer to whatever
// X-Forwarded-For it got, so that the right-most untrusted entry is the client.
var xffAppend = regexp.MustCompile(`proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;`)

// TestComposeTrustedProxies checks limits.trusted_proxies against the network plan: the TLS
// front has a fixed address outside the range other containers get theirs from, it appends the
// peer to X-Forwarded-For, and every Valet service trusts that address and nothing else. Without
// it the login back-off would count the front's own address for every client; with a subnet, any
// container could claim to forward for anyone.
func TestComposeTrustedProxies(t *testing.T) {
	c := loadCompose(t)
	nw, ok := c.Networks["default"]
	if !ok || len(nw.IPAM.Config) != 1 {
		t.Fatal("the default network has no fixed subnet (ipam.config): the TLS front cannot have a fixed address")
	}
	subnet, err := netip.ParsePrefix(nw.IPAM.Config[0].Subnet)
	if err != nil {
		t.Fatalf("subnet: %v", err)
	}
	dynamic, err := netip.ParsePrefix(nw.IPAM.Config[0].IPRange)
	if err != nil {
		t.Fatalf("ip_range (where containers without a fixed address get theirs): %v", err)
	}
	if !subnet.Contains(dynamic.Addr()) || dynamic.Bits() <= subnet.Bits() {
		t.Errorf("ip_range %s is not a strict part of the subnet %s", dynamic, subnet)
	}

	// Services with a fixed address, and those of them that append X-Forwarded-For.
	fixed := map[netip.Addr]string{}
	appends := map[string]bool{}
	for _, name := range sortedServices(c) {
		s := c.Services[name]
		for nwName, n := range s.Networks {
			if n == nil || n.IPv4Address == "" {
				continue
			}
			a, err := netip.ParseAddr(n.IPv4Address)
			switch {
			case err != nil:
				t.Errorf("%s: ipv4_address: %v", name, err)
				continue
			case nwName != "default":
				t.Errorf("%s: a fixed address on network %s, which has no address plan", name, nwName)
			case !subnet.Contains(a) || dynamic.Contains(a) || a == subnet.Addr() || a == subnet.Addr().Next():
				t.Errorf("%s: ipv4_address %s must be in %s, outside ip_range %s and not the network's own", name, a, subnet, dynamic)
			}
			if other, dup := fixed[a]; dup {
				t.Errorf("%s and %s share the address %s", name, other, a)
			}
			fixed[a] = name
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[1], "/etc/nginx/") || !strings.HasPrefix(parts[0], ".") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(repoRoot, parts[0]))
			if err != nil {
				t.Fatal(err)
			}
			appends[name] = appends[name] || xffAppend.Match(b)
		}
	}

	// The TLS front: the service under the issuer's host name.
	var issuer *url.URL
	for _, name := range sortedServices(c) {
		if s := c.Services[name]; s.valetRole() == "issuer" {
			if issuer, err = url.Parse(valetConfig(t, name, s).Issuer); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if issuer == nil {
		t.Fatal("no issuer service")
	}
	var front netip.Addr
	for a, name := range fixed {
		if slices.Contains(c.Services[name].aliases(), issuer.Hostname()) {
			front = a
		}
	}
	if !front.IsValid() {
		t.Fatalf("the TLS front (alias %s) has no fixed ipv4_address to trust", issuer.Hostname())
	}
	if !appends[fixed[front]] {
		t.Errorf("%s does not append the peer to X-Forwarded-For (proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for)", fixed[front])
	}

	for _, name := range sortedServices(c) {
		s := c.Services[name]
		if r := s.valetRole(); r == "" || r == "cli" {
			continue
		}
		trusted, err := valetConfig(t, name, s).Limits.TrustedProxyPrefixes()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(front) }) {
			t.Errorf("%s: limits.trusted_proxies %v does not hold the TLS front %s (%s): every client would "+
				"count as the front's address in the login back-off", name, trusted, front, fixed[front])
		}
		for _, p := range trusted {
			if !p.IsSingleIP() || !appends[fixed[p.Addr()]] {
				t.Errorf("%s: limits.trusted_proxies holds %s, which is not the fixed address of a front that "+
					"appends X-Forwarded-For: whoever has an address there could claim to forward for anyone", name, p)
			}
		}
	}
}
