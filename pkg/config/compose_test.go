package config

// Static validation of the deployment files against the real configuration: docker-compose.yml,
// the Dockerfile, deploy/ (NATS, Redis, NGINX, Prometheus, Grafana, Kubernetes) and the runbooks
// the alerts point at. No container engine runs in CI, so `docker compose config` cannot be
// relied on: the compose file is decoded here (yaml.v3 resolves its anchors and merge keys) and
// every service, port, healthcheck, file and VALET_* variable is checked against pkg/config. The
// NATS configuration is parsed by nats-server itself and its subject permissions are exercised
// by a real server with the accounts it declares.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsconf "github.com/nats-io/nats-server/v2/conf"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

// repoRoot is the repository root seen from this package.
const repoRoot = "../.."

// valetImage is the image of every Valet service in docker-compose.yml.
const valetImage = "${VALET_IMAGE:-valet:dev}"

// generatedSecrets is where deploy/compose/init-secrets.sh writes what compose mounts; its files
// do not exist in a fresh clone.
const generatedSecrets = "deploy/compose/secrets/"

// runbookURLPrefix is how alert rules link the runbooks under docs/runbooks/.
const runbookURLPrefix = "https://github.com/valetauth/valet/blob/main/"

// pendingMetrics are metrics the alert rules and the dashboard use that the services do not
// export yet (promised by the issues named), so that their absence is a known gap rather than a
// typo. Every other valet_ metric they reference must be a literal name in the Go sources.
var pendingMetrics = map[string]string{}

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes  map[string]any            `yaml:"volumes"`
	Networks map[string]composeNetwork `yaml:"networks"`
}

// composeNetwork is a network of docker-compose.yml, with its fixed address plan if any.
type composeNetwork struct {
	Name string `yaml:"name"`
	IPAM struct {
		Config []struct {
			Subnet  string `yaml:"subnet"`
			IPRange string `yaml:"ip_range"`
		} `yaml:"config"`
	} `yaml:"ipam"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []composeSecret   `yaml:"secrets"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Networks map[string]*struct {
		Aliases     []string `yaml:"aliases"`
		IPv4Address string   `yaml:"ipv4_address"`
	} `yaml:"networks"`
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	Profiles    []string                              `yaml:"profiles"`
	User        string                                `yaml:"user"`
	ReadOnly    bool                                  `yaml:"read_only"`
	CapDrop     []string                              `yaml:"cap_drop"`
	SecurityOpt []string                              `yaml:"security_opt"`
}

// composeSecret is a service's secret in short ("name") or long ({source, target}) syntax.
type composeSecret struct{ Source, Target string }

func (s *composeSecret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Source, s.Target = n.Value, n.Value
		return nil
	}
	var long struct{ Source, Target string }
	if err := n.Decode(&long); err != nil {
		return err
	}
	s.Source, s.Target = long.Source, long.Target
	if s.Target == "" {
		s.Target = s.Source
	}
	return nil
}

// aliases returns the service's network aliases.
func (s composeService) aliases() []string {
	var out []string
	for _, n := range s.Networks {
		if n != nil {
			out = append(out, n.Aliases...)
		}
	}
	return out
}

// mountSource returns the repository path (./deploy/...) of what the service mounts at the
// container path p: the bind-mounted file itself, or a file inside a bind-mounted directory.
func (s composeService) mountSource(p string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		if parts[1] == p {
			return path.Clean(parts[0]), true
		}
		if rest, ok := strings.CutPrefix(p, strings.TrimSuffix(parts[1], "/")+"/"); ok {
			return path.Join(parts[0], rest), true
		}
	}
	return "", false
}

// secretPath returns where the service sees a secret, or "".
func (s composeService) secretPath(source string) string {
	for _, sec := range s.Secrets {
		if sec.Source == source {
			return "/run/secrets/" + sec.Target
		}
	}
	return ""
}

// mounted reports whether the service has a volume or secret at the container path p.
func (s composeService) mounted(p string) bool {
	for _, sec := range s.Secrets {
		if "/run/secrets/"+sec.Target == p {
			return true
		}
	}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		// The path itself, a file inside a mounted directory, or a directory holding a mount.
		if len(parts) >= 2 && (parts[1] == p || strings.HasPrefix(p, strings.TrimSuffix(parts[1], "/")+"/") ||
			strings.HasPrefix(parts[1], strings.TrimSuffix(p, "/")+"/")) {
			return true
		}
	}
	return false
}

// valetRole returns the Valet binary a service runs (issuer, introspection, revocation, edge,
// cli), or "" for a service that is not Valet.
func (s composeService) valetRole() string {
	if s.Image != valetImage || len(s.Command) == 0 {
		return ""
	}
	bin := path.Base(s.Command[0])
	if bin == "valet" {
		return "cli"
	}
	return strings.TrimPrefix(bin, "valet-")
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return c
}

// valetConfig loads a Valet service's configuration through pkg/config, as the service would:
// the file VALET_CONFIG_FILE names, if any (read from the repository file mounted there, strictly:
// unknown keys and bad values are refused), under the service's environment.
func valetConfig(t *testing.T, name string, s composeService) *Config {
	t.Helper()
	file := ""
	if p := s.Environment[FileEnv]; p != "" {
		src, ok := s.mountSource(p)
		if !ok {
			t.Fatalf("%s: %s=%s is not a file the service mounts from the repository", name, FileEnv, p)
		}
		if strings.HasPrefix(path.Clean(src), generatedSecrets) {
			t.Fatalf("%s: %s=%s is a generated secret; the configuration file is committed", name, FileEnv, p)
		}
		file = filepath.Join(repoRoot, src)
	}
	cfg, err := Load(file, envMap(s.Environment))
	if err != nil {
		t.Fatalf("%s: configuration refused by pkg/config:\n%v", name, err)
	}
	return cfg
}

// listenPort returns the port of a host:port listener.
func listenPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listener %q: %v", addr, err)
	}
	return port
}

// listeners returns the public and admin listeners of a Valet role.
func listeners(t *testing.T, cfg *Config, role string) (public, admin string) {
	t.Helper()
	switch role {
	case "issuer":
		return listenPort(t, cfg.Services.Issuer.Listen), listenPort(t, cfg.Services.Issuer.AdminListen)
	case "introspection":
		return listenPort(t, cfg.Services.Introspection.Listen), listenPort(t, cfg.Services.Introspection.AdminListen)
	case "revocation":
		return listenPort(t, cfg.Services.Revocation.Listen), listenPort(t, cfg.Services.Revocation.AdminListen)
	case "edge":
		return listenPort(t, cfg.Services.Edge.Listen), listenPort(t, cfg.Services.Edge.AdminListen)
	}
	return "", ""
}

// containerPort returns the container side of a compose port ("127.0.0.1:8443:8443", "8080").
func containerPort(p string) string {
	parts := strings.Split(p, ":")
	return strings.Split(parts[len(parts)-1], "/")[0]
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if s.Image == "" && s.Build == nil {
				t.Fatal("neither image nor build")
			}
			if s.Image != valetImage {
				// Third-party images are pinned to a version.
				if i := strings.LastIndex(s.Image, ":"); i < 0 || s.Image[i+1:] == "latest" {
					t.Errorf("image %q is not pinned to a version", s.Image)
				}
			}
			if s.valetRole() != "" {
				if s.Build == nil {
					t.Error("a Valet service without build: docker compose up --build would not build it")
				}
				if s.User == "" || strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root") {
					t.Errorf("user %q: Valet runs as non-root", s.User)
				}
				if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
					t.Error("a Valet container runs read_only, with cap_drop [ALL] and no-new-privileges")
				}
			}
			for dep := range s.DependsOn {
				if _, ok := c.Services[dep]; !ok {
					t.Errorf("depends_on %q: no such service", dep)
				}
			}
			for _, sec := range s.Secrets {
				if _, ok := c.Secrets[sec.Source]; !ok {
					t.Errorf("secret %q is not declared", sec.Source)
				}
			}
			for _, v := range s.Volumes {
				src := strings.Split(v, ":")[0]
				if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
					if _, ok := c.Volumes[src]; !ok {
						t.Errorf("volume %q is not declared", src)
					}
				}
			}
			// Only the front doors and the observability UIs are published, on loopback.
			for _, p := range s.Ports {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("port %q is published on every interface; bind it to 127.0.0.1", p)
				}
			}
		})
	}
}

// cliEnv returns the VALET_* variables the valet CLI reads besides the configuration keys (the
// admin verbs' connection, docs/admin.md): every such name written as a literal in its sources.
func cliEnv(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "services/valet/*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources of the valet CLI (%v)", err)
	}
	lit := regexp.MustCompile(`"(VALET_[A-Z0-9_]+)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	return out
}

func TestComposeValetServices(t *testing.T) {
	c := loadCompose(t)
	keyEnv := map[string]bool{FileEnv: true}
	for _, k := range Keys() {
		keyEnv[k.Env] = true
	}
	cliOnly := cliEnv(t)
	subscribeAllow := natsSubscribeAllow(t)
	roles := map[string]int{}
	for name, s := range c.Services {
		role := s.valetRole()
		if role == "" {
			continue
		}
		if !slices.Contains(s.Profiles, "tools") {
			roles[role]++
		}
		t.Run(name, func(t *testing.T) {
			for k := range s.Environment {
				if strings.HasPrefix(k, "VALET_") && !keyEnv[k] && !(role == "cli" && cliOnly[k]) {
					t.Errorf("environment %s is no configuration key (pkg/config.Keys)", k)
				}
			}
			if _, ok := s.Environment["VALET_ADMIN_CLIENT_SECRET"]; ok {
				t.Error("VALET_ADMIN_CLIENT_SECRET is written in the compose file; pass it from the host's environment (run -e)")
			}
			cfg := valetConfig(t, name, s)
			if cfg.Dev {
				t.Error("dev mode: the compose file is the production topology (VALET_DEV=false)")
			}

			// Secrets the configuration names are mounted where it names them.
			uses := map[string]bool{ // what each role opens
				"kek":   role == "issuer" || role == "introspection" || role == "revocation" || role == "cli",
				"redis": role != "edge",
			}
			if uses["kek"] {
				for _, k := range cfg.Keys.EncryptionKeys {
					if p, ok := strings.CutPrefix(k.Source, "file:"); ok && !s.mounted(p) {
						t.Errorf("key-encryption key %s: %s is not mounted", k.ID, p)
					}
				}
			} else if s.secretPath("kek-1") != "" {
				t.Errorf("%s never opens the key-encryption key: do not mount it", role)
			}
			if uses["redis"] && cfg.Redis.PasswordFile != "" && !s.mounted(cfg.Redis.PasswordFile) {
				t.Errorf("redis.password_file %s is not mounted", cfg.Redis.PasswordFile)
			}
			if !uses["redis"] && s.secretPath("redis-password") != "" {
				t.Errorf("%s never opens Redis: do not mount its password", role)
			}
			if cfg.NATS.NKeySeedFile == "" || !s.mounted(cfg.NATS.NKeySeedFile) {
				t.Errorf("nats.nkey_seed_file %q is not mounted", cfg.NATS.NKeySeedFile)
			}
			// Its replies come on the inboxes its NATS user alone may subscribe to.
			user := s.natsUser(cfg)
			if allow, ok := subscribeAllow[user]; !ok {
				t.Errorf("nats.nkey_seed_file %s: no seed of a service user of deploy/nats/accounts.conf is mounted there", cfg.NATS.NKeySeedFile)
			} else if want := cfg.NATS.InboxPrefix + ".>"; !slices.Equal(allow, []string{want}) {
				t.Errorf("nats.inbox_prefix %q: NATS user %s may subscribe to %q only, want %q (deploy/nats/accounts.conf)",
					cfg.NATS.InboxPrefix, user, allow, want)
			}
			if role == "edge" && !s.mounted(cfg.Services.Edge.RoutesFile) {
				t.Errorf("services.edge.routes_file %s is not mounted", cfg.Services.Edge.RoutesFile)
			}
			if d := s.Environment["SSL_CERT_DIR"]; d == "" || !s.mounted(d) {
				t.Errorf("SSL_CERT_DIR %q (the TLS front's CA, for JWKS over https) is not mounted", d)
			}

			// Redis and NATS are services of this file.
			ru, err := url.Parse(cfg.Redis.URL)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Services[ru.Hostname()]; !ok {
				t.Errorf("redis.url host %q is no service", ru.Hostname())
			}
			for _, srv := range cfg.NATS.Servers() {
				nu, err := url.Parse(srv)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := c.Services[nu.Hostname()]; !ok {
					t.Errorf("nats.url host %q is no service", nu.Hostname())
				}
			}

			// The issuer is reached at the same https URL inside the network and from the host.
			iu, err := url.Parse(cfg.Issuer)
			if err != nil {
				t.Fatal(err)
			}
			if iu.Scheme != "https" {
				t.Errorf("issuer %q is not https", cfg.Issuer)
			}
			front := ""
			for fname, f := range c.Services {
				if slices.Contains(f.aliases(), iu.Hostname()) {
					front = fname
					published := false
					for _, p := range f.Ports {
						published = published || strings.HasSuffix(p, ":"+iu.Port()+":"+iu.Port())
					}
					if !published {
						t.Errorf("%s (alias %s) does not publish port %s on the same port", fname, iu.Hostname(), iu.Port())
					}
				}
			}
			if front == "" {
				t.Errorf("no service has the network alias %q of the issuer URL", iu.Hostname())
			}

			if role == "cli" {
				return
			}
			// Listeners: what the service exposes and probes is what it listens on.
			public, admin := listeners(t, cfg, role)
			for _, p := range append(slices.Clone(s.Expose), s.Ports...) {
				if cp := containerPort(p); cp != public && cp != admin {
					t.Errorf("port %q is neither the public (%s) nor the admin (%s) listener", p, public, admin)
				}
			}
			if s.Healthcheck == nil {
				t.Fatal("no healthcheck")
			}
			want := []string{"CMD", "/usr/local/bin/valet-healthcheck", "http://127.0.0.1:" + admin + "/readyz"}
			if !slices.Equal(s.Healthcheck.Test, want) {
				t.Errorf("healthcheck %q, want %q (the admin listener's /readyz)", s.Healthcheck.Test, want)
			}
			if !slices.Contains(s.aliases(), role) {
				t.Errorf("no network alias %q: the front doors reach every replica by it", role)
			}
		})
	}
	want := map[string]int{"issuer": 2, "introspection": 2, "revocation": 1, "edge": 2}
	for r, n := range want {
		if roles[r] != n {
			t.Errorf("%d %s replicas, want %d", roles[r], r, n)
		}
	}
}

// TestComposeFiles checks that every file the compose file mounts exists, or is one the secrets
// generator writes (TestComposeSecretsGenerator runs it).
func TestComposeFiles(t *testing.T) {
	c := loadCompose(t)
	gen := generateSecrets(t)
	check := func(where, src string) {
		t.Helper()
		rel := path.Clean(strings.TrimPrefix(src, "./"))
		if !strings.HasPrefix(rel, "deploy/") {
			t.Errorf("%s: %s is outside ./deploy", where, src)
			return
		}
		if sub, ok := strings.CutPrefix(rel, generatedSecrets); ok {
			if _, err := os.Stat(filepath.Join(gen, sub)); err != nil {
				t.Errorf("%s: %s is neither committed nor written by deploy/compose/init-secrets.sh: %v", where, src, err)
			}
			return
		}
		if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			if src := strings.Split(v, ":")[0]; strings.HasPrefix(src, ".") {
				check(name, src)
			}
		}
	}
	for name, sec := range c.Secrets {
		check("secret "+name, sec.File)
	}
	if b, err := os.ReadFile(filepath.Join(repoRoot, generatedSecrets, ".gitignore")); err != nil || !bytes.Contains(b, []byte("*")) {
		t.Errorf("%s.gitignore must keep the generated secrets out of git (%v)", generatedSecrets, err)
	}
}

// generateSecrets runs the compose secrets generator (deploy/tools/cmd/compose-secrets, what
// deploy/compose/init-secrets.sh runs) into a temporary directory, once per test binary, and
// returns the directory.
func generateSecrets(t *testing.T) string {
	t.Helper()
	genOnce.Do(func() {
		dir, err := os.MkdirTemp("", "valet-compose-secrets-")
		if err != nil {
			genErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			genErr = fmt.Errorf("the go command is needed to run deploy/tools/cmd/compose-secrets: %w", err)
			return
		}
		for range 2 { // the second run must keep everything
			cmd := exec.Command(goBin, "run", "./cmd/compose-secrets", "-out", dir)
			cmd.Dir = filepath.Join(repoRoot, "deploy/tools")
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				genErr = fmt.Errorf("go run ./cmd/compose-secrets: %v\n%s", err, out)
				return
			}
			genOut = append(genOut, string(out))
		}
		genDir = dir
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genDir
}

var (
	genOnce sync.Once
	genDir  string
	genOut  []string
	genErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if genDir != "" {
		_ = os.RemoveAll(genDir)
	}
	os.Exit(code)
}

// TestComposeSecretsGenerator checks what the compose services get from init-secrets.sh: NKey
// seeds whose public keys are the ones the NATS accounts name, a 32-byte key-encryption key
// pkg/config resolves, and a TLS certificate for the issuer's host that chains to the CA the
// Valet containers trust; and that a second run changes nothing. (The bootstrap's client secrets
// are checked by TestComposeBootstrap.)
func TestComposeSecretsGenerator(t *testing.T) {
	dir := generateSecrets(t)
	if len(genOut) != 2 || !strings.Contains(genOut[1], "kept     kek-1") {
		t.Errorf("a second run must keep every secret:\n%s", strings.Join(genOut, "---\n"))
	} else {
		for _, line := range strings.Split(strings.TrimSpace(genOut[1]), "\n") {
			// Only the public keys' file is rewritten, from the kept seeds.
			if strings.HasPrefix(line, "wrote") && !strings.HasSuffix(line, "nats/nkeys.conf") {
				t.Errorf("second run: %q; a second run must keep every secret", line)
			}
		}
	}

	conf, err := natsconf.ParseFile(filepath.Join(dir, "nats", "nkeys.conf"))
	if err != nil {
		t.Fatalf("nkeys.conf: %v", err)
	}
	for _, u := range natsUsers {
		seed, err := os.ReadFile(filepath.Join(dir, "nats", u+".nk"))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := nkeys.ParseDecoratedNKey(seed)
		if err != nil {
			t.Fatalf("%s.nk: %v", u, err)
		}
		pub, err := kp.PublicKey()
		if err != nil || !nkeys.IsValidPublicUserKey(pub) {
			t.Fatalf("%s.nk: not a user seed (%v)", u, err)
		}
		if got := conf["VALET_"+strings.ToUpper(u)+"_NKEY"]; got != pub {
			t.Errorf("nkeys.conf names %v for %s, its seed's public key is %s", got, u, pub)
		}
	}

	kek, err := KeyEncryptionKey{ID: "kek-1", Source: "file:" + filepath.Join(dir, "kek-1")}.Resolve(nil)
	if err != nil || len(kek) != 32 {
		t.Errorf("kek-1: %d bytes, %v", len(kek), err)
	}

	c := loadCompose(t)
	issuer, err := url.Parse(valetConfig(t, "issuer-1", c.Services["issuer-1"]).Issuer)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls", "server.pem"), filepath.Join(dir, "tls", "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{issuer.Hostname(), "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("server.pem for %s: %v", host, err)
		}
	}
}

// TestComposeFrontDoors checks the NGINX front of the Valet services and the API gateway against
// the services' listeners.
func TestComposeFrontDoors(t *testing.T) {
	c := loadCompose(t)
	byAlias := map[string]composeService{}
	for _, s := range c.Services {
		for _, a := range s.aliases() {
			byAlias[a] = s
		}
	}
	port := func(alias string) string {
		t.Helper()
		s, ok := byAlias[alias]
		if !ok || s.valetRole() == "" {
			t.Fatalf("%q is no Valet service alias", alias)
		}
		public, _ := listeners(t, valetConfig(t, alias, s), s.valetRole())
		return public
	}

	conf, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/nginx/frontend.conf"))
	if err != nil {
		t.Fatal(err)
	}
	upstreams := regexp.MustCompile(`(?m)^\s*server\s+([a-z.-]+):(\d+);`).FindAllStringSubmatch(string(conf), -1)
	if len(upstreams) != 3 {
		t.Fatalf("frontend.conf: %d upstream servers, want issuer, introspection and revocation", len(upstreams))
	}
	for _, u := range upstreams {
		if p := port(u[1]); u[2] != p {
			t.Errorf("frontend.conf: %s:%s, but the service listens on %s", u[1], u[2], p)
		}
	}
	for _, loc := range []string{"location = /introspect", "location = /revoke", "location / "} {
		if !bytes.Contains(conf, []byte(loc)) {
			t.Errorf("frontend.conf: no %q", loc)
		}
	}

	gw, ok := c.Services["gateway"]
	if !ok {
		t.Fatal("no gateway service")
	}
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "deploy/gateways/nginx/valet.conf.template"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(string(tmpl), -1) {
		if gw.Environment[m[1]] == "" {
			t.Errorf("gateway: the template's ${%s} is not set", m[1])
		}
	}
	host, p, err := net.SplitHostPort(gw.Environment["VALET_EDGE"])
	if err != nil {
		t.Fatal(err)
	}
	if want := port(host); p != want {
		t.Errorf("gateway: VALET_EDGE port %s, the edge listens on %s", p, want)
	}
	if up, _, _ := net.SplitHostPort(gw.Environment["APP_UPSTREAM"]); c.Services[up].Image == "" {
		t.Errorf("gateway: APP_UPSTREAM %q is no service", up)
	}
}

func TestComposeRedis(t *testing.T) {
	c := loadCompose(t)
	r, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !strings.HasPrefix(r.Image, "redis:7") {
		t.Errorf("image %q: Valet needs Redis 7", r.Image)
	}
	settings := map[string]string{}
	for _, v := range r.Volumes {
		if parts := strings.Split(v, ":"); strings.HasSuffix(parts[0], ".conf") {
			b, err := os.ReadFile(filepath.Join(repoRoot, parts[0]))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
					settings[f[0]] = strings.Join(f[1:], " ")
				}
			}
			if !strings.Contains(strings.Join(r.Command, " "), parts[1]) {
				t.Errorf("redis-server is not started with %s", parts[1])
			}
		}
	}
	for _, f := range regexp.MustCompile(`--([a-z-]+) +([^ \n]+)`).FindAllStringSubmatch(strings.Join(r.Command, " "), -1) {
		settings[f[1]] = f[2]
	}
	for k, want := range map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "everysec"} {
		if settings[k] != want {
			t.Errorf("redis %s %q, want %q (docs/redis.md)", k, settings[k], want)
		}
	}
}

// natsUsers are the NATS users of deploy/nats/accounts.conf, by the variable naming their key.
var natsUsers = []string{"issuer", "introspection", "revocation", "edge", "admin"}

// natsConfigDir copies deploy/nats to a temporary directory with an nkeys.conf of fresh keys
// (the file init-secrets.sh generates), and returns the directory and the users' key pairs.
func natsConfigDir(t *testing.T) (string, map[string]nkeys.KeyPair) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"nats.conf", "accounts.conf"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kps := map[string]nkeys.KeyPair{}
	var conf strings.Builder
	for _, u := range natsUsers {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		fmt.Fprintf(&conf, "VALET_%s_NKEY: %q\n", strings.ToUpper(u), pub)
		kps[u] = kp
	}
	if err := os.WriteFile(filepath.Join(dir, "nkeys.conf"), []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_SERVER_NAME", "nats-test")
	return dir, kps
}

func TestComposeNATSCluster(t *testing.T) {
	c := loadCompose(t)
	var nodes []string
	names := map[string]bool{}
	for name, s := range c.Services {
		if !strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		nodes = append(nodes, name)
		names[s.Environment["NATS_SERVER_NAME"]] = true
		var conf, data bool
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			conf = conf || parts[0] == "./deploy/nats/nats.conf"
			data = data || (!strings.HasPrefix(parts[0], ".") && parts[1] == "/data")
		}
		if !conf || !data {
			t.Errorf("%s: mounts deploy/nats/nats.conf %v, its own volume at /data %v", name, conf, data)
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 || len(names) != 3 {
		t.Fatalf("NATS nodes %v with %d distinct server names, want three", nodes, len(names))
	}

	dir, kps := natsConfigDir(t)
	m, err := natsconf.ParseFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	cluster, _ := m["cluster"].(map[string]any)
	var routes []string
	for _, r := range asSlice(cluster["routes"]) {
		u, err := url.Parse(fmt.Sprint(r))
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, u.Hostname())
		if _, p, _ := net.SplitHostPort(fmt.Sprint(cluster["listen"])); u.Port() != p {
			t.Errorf("route %s: port is not the cluster listen port %s", r, p)
		}
	}
	slices.Sort(routes)
	if !slices.Equal(routes, nodes) {
		t.Errorf("cluster routes %v, want the compose NATS services %v", routes, nodes)
	}
	js, _ := m["jetstream"].(map[string]any)
	if sd := fmt.Sprint(js["store_dir"]); sd != "/data" && !strings.HasPrefix(sd, "/data/") {
		t.Errorf("jetstream store_dir %q is not on the /data volume", sd)
	}

	// Permissions, as parsed: who may publish on valet.>, and where each receives replies.
	acc, _ := m["accounts"].(map[string]any)
	valet, _ := acc["VALET"].(map[string]any)
	if fmt.Sprint(valet["jetstream"]) != "enabled" {
		t.Errorf("account VALET: jetstream %v", valet["jetstream"])
	}
	perms := natsPermissions(t, m, kps)
	for user, wantPublish := range map[string]bool{"issuer": true, "revocation": true, "introspection": false, "edge": false} {
		pub, _ := perms[user]["publish"].(map[string]any)
		allowed := slices.ContainsFunc(asSlice(pub["allow"]), func(s any) bool { return s == "valet.>" })
		denied := slices.ContainsFunc(asSlice(pub["deny"]), func(s any) bool { return s == "valet.>" })
		if allowed != wantPublish || denied == wantPublish {
			t.Errorf("user %s: publish valet.> allowed %v denied %v, want allowed %v", user, allowed, denied, wantPublish)
		}
	}
	if perms["admin"] != nil {
		t.Error("the admin user is the account's operator: no permissions block")
	}
	// Each service user subscribes to its own reply inboxes only: nothing under another user's
	// prefix, no NATS default _INBOX.>, no wildcard above them.
	for user, allow := range natsSubscribeAllow(t) {
		if want := []string{"_INBOX_" + user + ".>"}; !slices.Equal(allow, want) {
			t.Errorf("user %s: subscribe allow %q, want %q (its own reply inboxes only)", user, allow, want)
		}
		if sub, _ := perms[user]["subscribe"].(map[string]any); len(sub) != 1 {
			t.Errorf("user %s: subscribe %v: an allow list only", user, sub)
		}
	}
	// The producers share one publish block (PRODUCER in accounts.conf); they differ only in
	// their inboxes.
	if !reflect.DeepEqual(perms["issuer"]["publish"], perms["revocation"]["publish"]) {
		t.Errorf("issuer and revocation publish %v and %v, want the same PRODUCER block", perms["issuer"]["publish"], perms["revocation"]["publish"])
	}
}

// natsPermissions returns the permissions block of every user of the VALET account of a parsed
// nats.conf, by user name (nil for a user without one), and fails unless every user of natsUsers
// is there.
func natsPermissions(t *testing.T, m map[string]any, kps map[string]nkeys.KeyPair) map[string]map[string]any {
	t.Helper()
	acc, _ := m["accounts"].(map[string]any)
	valet, _ := acc["VALET"].(map[string]any)
	perms := map[string]map[string]any{}
	for _, u := range asSlice(valet["users"]) {
		um, _ := u.(map[string]any)
		for name, kp := range kps {
			if pub, _ := kp.PublicKey(); um["nkey"] == pub {
				p, _ := um["permissions"].(map[string]any)
				perms[name] = p
			}
		}
	}
	if len(perms) != len(natsUsers) {
		t.Fatalf("account VALET has users %v, want %v", slices.Collect(maps.Keys(perms)), natsUsers)
	}
	return perms
}

// natsSubscribeAllow returns, for every service user of deploy/nats/accounts.conf (all but
// admin), the subjects it may subscribe to, as nats-server parses them.
func natsSubscribeAllow(t *testing.T) map[string][]string {
	t.Helper()
	dir, kps := natsConfigDir(t)
	m, err := natsconf.ParseFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	out := map[string][]string{}
	for user, p := range natsPermissions(t, m, kps) {
		if user == "admin" {
			continue
		}
		sub, _ := p["subscribe"].(map[string]any)
		allow := []string{}
		for _, a := range asSlice(sub["allow"]) {
			allow = append(allow, fmt.Sprint(a))
		}
		out[user] = allow
	}
	return out
}

// natsUser returns the NATS user a Valet service of the compose file connects as: the one whose
// seed secret (nats-<user>-nkey) it mounts at nats.nkey_seed_file, or "".
func (s composeService) natsUser(cfg *Config) string {
	for _, sec := range s.Secrets {
		if "/run/secrets/"+sec.Target == cfg.NATS.NKeySeedFile {
			if u, ok := strings.CutPrefix(sec.Source, "nats-"); ok {
				if u, ok := strings.CutSuffix(u, "-nkey"); ok {
					return u
				}
			}
		}
	}
	return ""
}

// composeInboxPrefixes returns the nats.inbox_prefix of each NATS user the Valet services of the
// compose file connect as, loaded through pkg/config as the services load it, and fails if two
// services of one user disagree.
func composeInboxPrefixes(t *testing.T) map[string]string {
	t.Helper()
	c := loadCompose(t)
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		if s.valetRole() == "" {
			continue
		}
		cfg := valetConfig(t, name, s)
		user := s.natsUser(cfg)
		if p, ok := out[user]; ok && p != cfg.NATS.InboxPrefix {
			t.Fatalf("%s: nats.inbox_prefix %q, another service of NATS user %s has %q", name, cfg.NATS.InboxPrefix, user, p)
		}
		out[user] = cfg.NATS.InboxPrefix
	}
	return out
}

func TestComposeNATSPermissions(t *testing.T) {
	dir, kps := natsConfigDir(t)
	opts, err := natsserver.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	// One node, on free ports, with the accounts and permissions as configured.
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes = natsserver.ClusterOpts{}, nil
	opts.StoreDir, opts.JetStreamMaxStore = t.TempDir(), 1<<30
	opts.NoLog, opts.NoSigs = true, true
	srv := testenv.NATSWith(t, opts)
	// Each service connects with the reply-inbox prefix its compose configuration sets, as
	// pkg/boot does (the admin, an operator's nats CLI, with NATS's default); connectInbox with
	// any other. errs receives the asynchronous errors the server sends, such as a refused
	// subscription.
	inboxes := composeInboxPrefixes(t)
	for _, user := range []string{"issuer", "introspection", "revocation", "edge"} {
		if inboxes[user] == "" {
			t.Fatalf("no Valet service of docker-compose.yml connects as NATS user %s", user)
		}
	}
	connectInbox := func(user, prefix string) (nc *nats.Conn, js jetstream.JetStream, errs <-chan error) {
		t.Helper()
		kp := kps[user]
		pub, _ := kp.PublicKey()
		ch := make(chan error, 16)
		o := []nats.Option{nats.Nkey(pub, kp.Sign), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case ch <- err:
			default:
			}
		})}
		if prefix != DefaultInboxPrefix {
			o = append(o, nats.CustomInboxPrefix(prefix))
		}
		nc, err := nats.Connect(srv.ClientURL(), o...)
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		if js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
		return nc, js, ch
	}
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		prefix := inboxes[user]
		if prefix == "" {
			prefix = DefaultInboxPrefix
		}
		nc, js, _ := connectInbox(user, prefix)
		return nc, js
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	streams := bus.StreamsConfig{Prefix: "valet", MaxAccessTokenLifetime: 15 * time.Minute}
	revocations := bus.StreamName("valet", events.StreamRevocations)

	// The services declare the streams at start; the edges cannot.
	_, edgeJS := connect("edge")
	ectx, ecancel := context.WithTimeout(ctx, time.Second) // a refused request times out
	defer ecancel()
	if err := bus.EnsureStreams(ectx, edgeJS, streams); err == nil {
		t.Error("edge: EnsureStreams succeeded; edges must not manage streams")
	}
	for _, user := range []string{"introspection", "issuer", "revocation"} {
		_, js := connect(user)
		if err := bus.EnsureStreams(ctx, js, streams); err != nil {
			t.Fatalf("%s: EnsureStreams: %v", user, err)
		}
	}

	// Producers publish heartbeats; everyone else is refused.
	publish := func(user string) error {
		_, js := connect(user)
		pub, err := bus.NewPublisher(js, "valet", bus.WithAckTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.New(events.NewID(), "https://valet.test", time.Now(), &events.Heartbeat{Service: user, Instance: "test"})
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second) // a refused publish times out
		defer pcancel()
		_, err = pub.Publish(pctx, e)
		return err
	}
	for user, allowed := range map[string]bool{"issuer": true, "revocation": true, "introspection": false, "edge": false} {
		if err := publish(user); (err == nil) != allowed {
			t.Errorf("%s: publish a heartbeat: %v, want allowed %v", user, err, allowed)
		}
	}
	_, adminJS := connect("admin")
	st, err := adminJS.Stream(ctx, revocations)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("%s holds %d events, want the 2 heartbeats of the producers", revocations, n)
	}

	// An edge replays and follows the revocation and key streams with pkg/bus, as pkg/edge does.
	for _, stream := range []string{revocations, bus.StreamName("valet", events.StreamKeys)} {
		cons, err := bus.NewConsumer(edgeJS, stream, func(context.Context, events.Event, bus.Meta) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cons.Run(cctx) }()
		select {
		case <-cons.Ready():
		case err := <-done:
			t.Errorf("edge: consume %s: %v", stream, err)
		case <-time.After(10 * time.Second):
			t.Errorf("edge: consume %s: not caught up after 10s", stream)
		}
		ccancel()
		<-done
	}
	// And cannot destroy them; neither can the services.
	for _, user := range []string{"edge", "issuer"} {
		_, js := connect(user)
		dctx, dcancel := context.WithTimeout(ctx, time.Second) // a refused request times out
		if err := js.DeleteStream(dctx, revocations); err == nil {
			t.Errorf("%s deleted the revocation stream", user)
		}
		dcancel()
	}

	// An edge cannot subscribe to the services' reply inboxes, nor to NATS's default ones.
	edgeNC, edgeJS, edgeErrs := connectInbox("edge", inboxes["edge"])
	for _, subj := range []string{inboxes["issuer"] + ".>", inboxes["revocation"] + ".>", inboxes["introspection"] + ".>", "_INBOX.>", ">"} {
		sub, err := edgeNC.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		if err := edgeNC.Flush(); err != nil {
			t.Fatal(err)
		}
		waitSubscribeRefused(t, edgeErrs, subj)
		_ = sub.Unsubscribe()
	}

	// What the issuer's replies carry (JetStream API answers, the messages its pull consumers
	// fetch) reaches its inboxes only: the admin, who may subscribe to anything, sees them under
	// the issuer's prefix and none under _INBOX; an edge subscribed to all it may (its own
	// inboxes) sees only its own replies.
	edgeNC, edgeJS, _ = connectInbox("edge", inboxes["edge"]) // a LastError of its own
	adminNC, _ := connect("admin")
	issuerSeen, err := adminNC.SubscribeSync(inboxes["issuer"] + ".>")
	if err != nil {
		t.Fatal(err)
	}
	defaultSeen, err := adminNC.SubscribeSync("_INBOX.>")
	if err != nil {
		t.Fatal(err)
	}
	edgeSeen, err := edgeNC.SubscribeSync(inboxes["edge"] + ".>")
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{adminNC, edgeNC} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := edgeNC.LastError(); err != nil {
		t.Fatalf("edge: subscribe to its own inboxes: %v", err)
	}
	_, issuerJS := connect("issuer")
	if _, err := issuerJS.Stream(ctx, revocations); err != nil { // an API request
		t.Fatalf("issuer: stream info: %v", err)
	}
	oc, err := issuerJS.OrderedConsumer(ctx, revocations, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("issuer: ordered consumer: %v", err)
	}
	batch, err := oc.Fetch(1, jetstream.FetchMaxWait(5*time.Second)) // a pull request
	if err != nil {
		t.Fatalf("issuer: fetch: %v", err)
	}
	fetched := 0
	for range batch.Messages() {
		fetched++
	}
	if fetched != 1 || batch.Error() != nil {
		t.Fatalf("issuer: fetched %d events (%v), want a heartbeat", fetched, batch.Error())
	}
	if _, err := edgeJS.Stream(ctx, revocations); err != nil { // the edge's own request
		t.Fatalf("edge: stream info: %v", err)
	}
	// Whatever the server sent these subscribers before the PONG of a flush has been read.
	for _, nc := range []*nats.Conn{adminNC, edgeNC} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(sub *nats.Subscription) int {
		t.Helper()
		n, _, err := sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := pending(issuerSeen); n < 3 { // stream info, consumer create, the fetched heartbeat
		t.Errorf("%d messages under %s.>, want the issuer's replies (at least 3): its requests do not use its inbox prefix", n, inboxes["issuer"])
	}
	if n := pending(defaultSeen); n != 0 {
		t.Errorf("%d messages under _INBOX.>: the issuer's replies leave its own inboxes", n)
	}
	if n := pending(edgeSeen); n != 1 {
		t.Errorf("the edge saw %d messages on its inboxes, want only the answer to its own request", n)
	}
	for n := pending(edgeSeen); n > 0; n-- {
		m, err := edgeSeen.NextMsg(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Subject, inboxes["edge"]+".") {
			t.Errorf("the edge saw a message on %s", m.Subject)
		}
	}

	// A service left on NATS's default prefix gets no reply at all: its reply subscription is
	// refused, so it fails at start (pkg/boot.NATS checks its inbox and names
	// nats.inbox_prefix) instead of running without answers. The requests run together: each
	// waits out the same one-second deadline.
	rctx, rcancel := context.WithTimeout(ctx, time.Second) // a request without reply times out
	defer rcancel()
	var wg sync.WaitGroup
	for _, user := range []string{"issuer", "introspection", "revocation", "edge"} {
		nc, js, errs := connectInbox(user, DefaultInboxPrefix)
		wg.Go(func() {
			if _, err := js.AccountInfo(rctx); err == nil {
				t.Errorf("%s with prefix _INBOX: a JetStream request was answered", user)
			}
			waitSubscribeRefused(t, errs, "_INBOX.")
			if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("%s with prefix _INBOX: last error %v, want the refused subscription", user, err)
			}
		})
	}
	// What bus.EnsureStreams (every service but the edge, at start) then reports: a timeout, as
	// if JetStream were down; only the refused subscription says why.
	_, js, _ := connectInbox("issuer", DefaultInboxPrefix)
	wg.Go(func() {
		if err := bus.EnsureStreams(rctx, js, streams); !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("issuer with prefix _INBOX: EnsureStreams: %v, want event stream unavailable after a timeout", err)
		} else {
			t.Logf("issuer with prefix _INBOX: EnsureStreams: %v", err)
		}
	})
	wg.Wait()
}

// waitSubscribeRefused waits for the permission violation the server sends when it refuses a
// subscription to a subject starting with subj, as nats.go hands it to the ErrorHandler feeding
// errs, and fails after a few seconds without one. Other errors are skipped.
func waitSubscribeRefused(t *testing.T, errs <-chan error, subj string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Subscription to "`+subj) {
				return
			}
		case <-timeout:
			t.Errorf("no permission violation for a subscription to %s within 5s: the subscription was allowed", subj)
			return
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// prometheusConfig is the part of deploy/prometheus/prometheus.yml the tests read.
type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusScrapesEveryService(t *testing.T) {
	c := loadCompose(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pc prometheusConfig
	if err := yaml.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	for _, g := range pc.RuleFiles {
		if m, _ := filepath.Glob(filepath.Join(repoRoot, "deploy/prometheus", g)); len(m) == 0 {
			t.Errorf("rule_files %q matches nothing", g)
		}
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		role, ok := strings.CutPrefix(sc.JobName, "valet-")
		if !ok {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Fatal(err)
				}
				s, ok := c.Services[host]
				if !ok || s.valetRole() != role {
					t.Errorf("job %s: target %s is no %s service", sc.JobName, target, role)
					continue
				}
				if _, admin := listeners(t, valetConfig(t, host, s), role); port != admin {
					t.Errorf("job %s: target %s, but the admin listener is on %s", sc.JobName, target, admin)
				}
				scraped[host] = true
			}
		}
	}
	for name, s := range c.Services {
		if r := s.valetRole(); r != "" && r != "cli" && !scraped[name] {
			t.Errorf("%s is not scraped", name)
		}
	}
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// metricRef finds valet_ metric names in PromQL or panel queries (not recording-rule names such
// as slo:valet_x:rate5m, which contain colons).
var metricRef = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])(valet_[a-z0-9_]+)`)

// codeMetrics returns every valet_ metric name written as a literal in the Go sources.
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(valet_[a-z0-9_]+)"`)
	out := map[string]bool{}
	for _, dir := range []string{"pkg", "services", "events"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllSubmatch(b, -1) {
				out[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// checkMetrics reports valet_ metrics referenced in expr that neither exist nor are pending.
func checkMetrics(t *testing.T, where, expr string, code map[string]bool) {
	t.Helper()
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		base := name
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suf); ok && code[b] {
				base = b
			}
		}
		if !code[base] && pendingMetrics[base] == "" {
			t.Errorf("%s: metric %s is exported by no service (a typo, or add it to pendingMetrics)", where, name)
		}
	}
}

func TestAlertRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy/prometheus/rules/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files (%v)", err)
	}
	code := codeMetrics(t)
	for m := range pendingMetrics {
		if code[m] {
			t.Logf("%s is exported now: remove it from pendingMetrics", m)
		}
	}
	index, err := os.ReadFile(filepath.Join(repoRoot, "docs/runbooks/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	records, alerts := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				name := r.Record + r.Alert
				where := filepath.Base(f) + " " + name
				if (r.Record == "") == (r.Alert == "") || strings.TrimSpace(r.Expr) == "" {
					t.Errorf("%s: a rule is a record or an alert, with an expr", where)
					continue
				}
				checkMetrics(t, where, r.Expr, code)
				if r.Record != "" {
					if records[r.Record+fmt.Sprint(r.Labels)] {
						t.Errorf("%s: recorded twice", where)
					}
					records[r.Record+fmt.Sprint(r.Labels)] = true
					continue
				}
				if alerts[r.Alert] {
					t.Errorf("%s: alert name used twice", where)
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
					t.Errorf("%s: severity %q, want critical, warning or info", where, s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: summary and description are required", where)
				}
				checkRunbook(t, where, r.Annotations["runbook_url"])
				if !bytes.Contains(index, []byte("`"+r.Alert+"`")) {
					t.Errorf("%s: not listed in docs/runbooks/README.md", where)
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts")
	}
}

// checkRunbook checks that u links a runbook under docs/runbooks/ that exists, and the heading
// its fragment names, if any.
func checkRunbook(t *testing.T, where, u string) {
	t.Helper()
	rel, ok := strings.CutPrefix(u, runbookURLPrefix)
	file, frag, _ := strings.Cut(rel, "#")
	if !ok || !strings.HasPrefix(file, "docs/runbooks/") || !strings.HasSuffix(file, ".md") {
		t.Errorf("%s: runbook_url %q is not %sdocs/runbooks/<name>.md", where, u, runbookURLPrefix)
		return
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Errorf("%s: runbook_url: %v", where, err)
		return
	}
	if frag != "" && !slices.Contains(headingAnchors(string(b)), frag) {
		t.Errorf("%s: runbook_url: %s has no heading #%s", where, file, frag)
	}
}

// headingAnchors returns GitHub's anchors of a Markdown document's headings.
func headingAnchors(doc string) []string {
	var out []string
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			out = append(out, strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-"))
		}
	}
	return out
}

func TestRunbooks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs/runbooks/*.md"))
	if err != nil {
		t.Fatal(err)
	}
	// One per failure of MISSION §2b at least.
	for _, want := range []string{"key-compromise", "authorization-server-overload", "refresh-token-reuse",
		"revocation-not-enforced", "clock-skew", "jwks-mismatch", "introspection-abuse", "redis-outage", "nats-outage"} {
		if !slices.Contains(files, filepath.Join(repoRoot, "docs/runbooks", want+".md")) {
			t.Errorf("no runbook docs/runbooks/%s.md", want)
		}
	}
	for _, f := range files {
		if filepath.Base(f) == "README.md" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		anchors := headingAnchors(string(b))
		for _, section := range []string{"symptoms", "impact", "diagnosis", "mitigation", "follow-up"} {
			if !slices.Contains(anchors, section) {
				t.Errorf("%s: no %q section", filepath.Base(f), section)
			}
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/provisioning/datasources/prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct{ UID, Type string }
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("datasource provisioning: %v", err)
	}
	b, err = os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/provisioning/dashboards/valet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Providers []struct {
			Options struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	c := loadCompose(t)
	if !slices.Contains(c.Services["grafana"].Volumes, "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path+":ro") {
		t.Errorf("grafana does not mount deploy/grafana/dashboards at the provider's path %s", prov.Providers[0].Options.Path)
	}

	b, err = os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/valet.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string
		Datasource struct{ UID string }
	}
	type panel struct {
		ID      int
		Type    string
		Title   string
		Targets []target
		Panels  []json.RawMessage
	}
	var dash struct {
		UID    string
		Panels []json.RawMessage
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("valet.json: %v", err)
	}
	code := codeMetrics(t)
	ids := map[int]bool{}
	count := 0
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			count++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, "valet_") {
					t.Errorf("panel %q: %q references no valet_ metric", p.Title, tg.Expr)
				}
				if tg.Datasource.UID != ds.Datasources[0].UID {
					t.Errorf("panel %q: datasource %q, provisioned %q", p.Title, tg.Datasource.UID, ds.Datasources[0].UID)
				}
				checkMetrics(t, "panel "+p.Title, tg.Expr, code)
			}
		}
	}
	walk(dash.Panels)
	if dash.UID == "" || count < 10 {
		t.Errorf("dashboard uid %q with %d panels", dash.UID, count)
	}
}

// k8sObject is the part of a Kubernetes manifest the tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Resources []string          `yaml:"resources"` // Kustomization
	Data      map[string]string `yaml:"data"`      // ConfigMap
	Spec      yaml.Node         `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name, Value string
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sDeployment struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
			SecurityContext              struct {
				RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
				RunAsUser      int   `yaml:"runAsUser"`
				SeccompProfile struct {
					Type string `yaml:"type"`
				} `yaml:"seccompProfile"`
			} `yaml:"securityContext"`
			Containers []k8sContainer `yaml:"containers"`
			Volumes    []struct {
				Name   string `yaml:"name"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

func loadK8s(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy/k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (%v)", err)
	}
	var objs []k8sObject
	var kustomized []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.APIVersion == "" {
				t.Errorf("%s: a document without kind or apiVersion", f)
				continue
			}
			if o.Kind == "Kustomization" {
				kustomized = o.Resources
				continue
			}
			objs = append(objs, o)
		}
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(kustomized, base) {
			t.Errorf("%s is not listed in kustomization.yaml", base)
		}
	}
	return objs
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestK8sManifests(t *testing.T) {
	objs := loadK8s(t)
	byKind := map[string][]k8sObject{}
	configMaps := map[string]map[string]string{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
		if o.Kind == "ConfigMap" {
			configMaps[o.Metadata.Name] = o.Data
		}
	}
	roles := map[string]bool{}
	subscribeAllow := natsSubscribeAllow(t)
	for _, o := range byKind["Deployment"] {
		var d k8sDeployment
		if err := o.Spec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", o.Metadata.Name, err)
		}
		t.Run(o.Metadata.Name, func(t *testing.T) {
			ps := d.Template.Spec
			if d.Replicas < 2 {
				t.Errorf("replicas %d: every Valet service runs at least two", d.Replicas)
			}
			if !selects(d.Selector.MatchLabels, d.Template.Metadata.Labels) {
				t.Error("the selector does not select the pod template")
			}
			if ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot || ps.SecurityContext.RunAsUser == 0 ||
				ps.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
				t.Error("pod securityContext: runAsNonRoot, a non-zero runAsUser and the RuntimeDefault seccomp profile")
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken: false (Valet never calls the Kubernetes API)")
			}
			if len(ps.Containers) != 1 {
				t.Fatalf("%d containers", len(ps.Containers))
			}
			ctr := ps.Containers[0]
			role := strings.TrimPrefix(path.Base(ctr.Command[0]), "valet-")
			roles[role] = true
			sc := ctr.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				!slices.Contains(sc.Capabilities.Drop, "ALL") || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("container securityContext: runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL")
			}
			if ctr.Resources.Requests["cpu"] == "" || ctr.Resources.Requests["memory"] == "" {
				t.Error("resource requests for cpu and memory")
			}

			// The configuration the pod mounts is valid, outside dev mode, for this role.
			env := map[string]string{}
			for _, e := range ctr.Env {
				env[e.Name] = e.Value
			}
			mounts := map[string]string{} // mount path -> volume
			for _, m := range ctr.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			volumes := map[string]string{} // volume -> ConfigMap or Secret name
			for _, v := range ps.Volumes {
				switch {
				case v.ConfigMap != nil:
					volumes[v.Name] = "configmap/" + v.ConfigMap.Name
				case v.Secret != nil:
					volumes[v.Name] = "secret/" + v.Secret.SecretName
				}
			}
			file := env[FileEnv]
			vol := volumes[mounts[path.Dir(file)]]
			data, ok := configMaps[strings.TrimPrefix(vol, "configmap/")][path.Base(file)]
			if !ok {
				t.Fatalf("%s=%s is not a mounted ConfigMap key", FileEnv, file)
			}
			cfg, err := Parse([]byte(data), envMap(env))
			if err != nil {
				t.Fatalf("the configuration is refused by pkg/config:\n%v", err)
			}
			if cfg.Dev {
				t.Error("dev mode in a production manifest")
			}
			secretAt := func(p string) bool { return strings.HasPrefix(volumes[mounts[path.Dir(p)]], "secret/") }
			if !secretAt(cfg.NATS.NKeySeedFile) {
				t.Errorf("nats.nkey_seed_file %s is not in a mounted Secret", cfg.NATS.NKeySeedFile)
			}
			// Its replies come on the inboxes its NATS user (Secret valet-nats-<user>) alone may
			// subscribe to.
			user, _ := strings.CutPrefix(volumes[mounts[path.Dir(cfg.NATS.NKeySeedFile)]], "secret/valet-nats-")
			if allow, ok := subscribeAllow[user]; !ok {
				t.Errorf("nats.nkey_seed_file %s: the Secret mounted there is not valet-nats-<user> of a service user of deploy/nats/accounts.conf", cfg.NATS.NKeySeedFile)
			} else if want := cfg.NATS.InboxPrefix + ".>"; !slices.Equal(allow, []string{want}) {
				t.Errorf("nats.inbox_prefix %q: NATS user %s may subscribe to %q only, want %q (deploy/nats/accounts.conf)",
					cfg.NATS.InboxPrefix, user, allow, want)
			}
			if role != "edge" {
				if !secretAt(cfg.Redis.PasswordFile) {
					t.Errorf("redis.password_file %s is not in a mounted Secret", cfg.Redis.PasswordFile)
				}
				for _, k := range cfg.Keys.EncryptionKeys {
					if p, _ := strings.CutPrefix(k.Source, "file:"); !secretAt(p) {
						t.Errorf("key-encryption key %s (%s) is not in a mounted Secret", k.ID, k.Source)
					}
				}
			} else {
				if _, ok := mounts[path.Dir(cfg.Services.Edge.RoutesFile)]; !ok {
					t.Errorf("services.edge.routes_file %s is not mounted", cfg.Services.Edge.RoutesFile)
				}
				for _, v := range volumes {
					if v == "secret/valet-kek" || v == "secret/valet-redis" {
						t.Errorf("the edge mounts %s, which it never uses", v)
					}
				}
			}

			// Behind the ingress, the client is found in X-Forwarded-For only from trusted proxies.
			if trusted, err := cfg.Limits.TrustedProxyPrefixes(); err != nil || len(trusted) == 0 {
				t.Errorf("limits.trusted_proxies is empty (%v): every client would count as the ingress's "+
					"address in the login back-off", err)
			} else {
				for _, p := range trusted {
					if p.Bits() == 0 {
						t.Errorf("limits.trusted_proxies holds %s: every client could choose its address", p)
					}
				}
			}

			// The bootstrap section: the first admin client, its secret from a Secret the issuer
			// alone mounts.
			if len(cfg.Bootstrap.AdminClients) == 0 {
				t.Error("the bootstrap section declares no admin client: nobody could use the admin API")
			}
			for _, ref := range bootstrapRefs(cfg.Bootstrap) {
				p, isFile := strings.CutPrefix(ref.value, "file:")
				switch {
				case strings.HasPrefix(ref.value, "env:"):
					t.Errorf("%s is %s: mount the secret from a Secret as a file", ref.key, ref.value)
				case !isFile:
				case role == "issuer" && !secretAt(p):
					t.Errorf("%s: %s is not in a mounted Secret", ref.key, p)
				case role != "issuer" && secretAt(p):
					t.Errorf("%s: %s mounts %s, which only the issuer reads", ref.key, role, p)
				}
			}

			// Ports and probes match the configured listeners.
			public, admin := listeners(t, cfg, role)
			ports := map[string]string{}
			for _, p := range ctr.Ports {
				ports[p.Name] = fmt.Sprint(p.ContainerPort)
			}
			if ports["http"] != public || ports["admin"] != admin {
				t.Errorf("container ports http %s admin %s, configured %s and %s", ports["http"], ports["admin"], public, admin)
			}
			for probe, want := range map[*k8sProbe]string{ctr.ReadinessProbe: "/readyz", ctr.LivenessProbe: "/healthz"} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || fmt.Sprint(probe.HTTPGet.Port) != "admin" {
					t.Errorf("probe on %s of the admin port missing", want)
				}
			}

			// A Service and a PodDisruptionBudget select it.
			for _, kind := range []string{"Service", "PodDisruptionBudget"} {
				found := false
				for _, so := range byKind[kind] {
					// A Service selects with a map, a PodDisruptionBudget with matchLabels.
					var svc struct {
						Selector map[string]any `yaml:"selector"`
					}
					if err := so.Spec.Decode(&svc); err != nil {
						t.Fatal(err)
					}
					sel := map[string]string{}
					for k, v := range svc.Selector {
						if k == "matchLabels" {
							m, _ := v.(map[string]any)
							for mk, mv := range m {
								sel[mk] = fmt.Sprint(mv)
							}
						} else {
							sel[k] = fmt.Sprint(v)
						}
					}
					found = found || selects(sel, d.Template.Metadata.Labels)
				}
				if !found {
					t.Errorf("no %s selects it", kind)
				}
			}
		})
	}
	for _, r := range []string{"issuer", "introspection", "revocation", "edge"} {
		if !roles[r] {
			t.Errorf("no Deployment runs %s", r)
		}
	}

	// Network policies: default deny, and the admin port open to named peers only.
	var denyAll, adminGuarded bool
	for _, o := range byKind["NetworkPolicy"] {
		var np struct {
			PodSelector map[string]any `yaml:"podSelector"`
			Ingress     []struct {
				From  []any `yaml:"from"`
				Ports []struct {
					Port any `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		}
		if err := o.Spec.Decode(&np); err != nil {
			t.Fatal(err)
		}
		if len(np.PodSelector) == 0 && len(np.Ingress) == 0 {
			denyAll = true
		}
		for _, in := range np.Ingress {
			for _, p := range in.Ports {
				if fmt.Sprint(p.Port) == "admin" && len(in.From) > 0 {
					adminGuarded = true
				}
				if fmt.Sprint(p.Port) == "admin" && len(in.From) == 0 {
					t.Errorf("%s opens the admin port to everyone", o.Metadata.Name)
				}
			}
		}
	}
	if !denyAll || !adminGuarded {
		t.Errorf("network policies: default deny %v, admin port restricted %v", denyAll, adminGuarded)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"FROM golang:", "ARG GO_VERSION=1.26", "CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`,
		"FROM gcr.io/distroless/static", ":nonroot", "USER 65532:65532"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: no %q", want)
		}
	}
	// Every service binary is built, under the name compose and the manifests run.
	cmds, err := filepath.Glob(filepath.Join(repoRoot, "services/*/cmd/*"))
	if err != nil || len(cmds) == 0 {
		t.Fatalf("no service commands (%v)", err)
	}
	built := map[string]bool{"valet": true, "valet-healthcheck": true}
	loop := regexp.MustCompile(`for s in ([a-z ]+); do`).FindStringSubmatch(df)
	if loop == nil {
		t.Fatal("Dockerfile: no build loop over the services")
	}
	for _, c := range cmds {
		name := filepath.Base(c)
		if !slices.Contains(strings.Fields(loop[1]), name) {
			t.Errorf("Dockerfile does not build services/%s/cmd/%s", filepath.Base(filepath.Dir(filepath.Dir(c))), name)
		}
		built["valet-"+name] = true
	}
	for _, want := range []string{"./services/valet", "cd deploy/tools", "./cmd/healthcheck"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: no %q", want)
		}
	}
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Image == valetImage && !built[path.Base(s.Command[0])] {
			t.Errorf("compose %s runs %s, which the image does not hold", name, s.Command[0])
		}
		if s.Healthcheck != nil && len(s.Healthcheck.Test) > 1 && s.Image == valetImage && !built[path.Base(s.Healthcheck.Test[1])] {
			t.Errorf("compose %s: healthcheck %s is not in the image", name, s.Healthcheck.Test[1])
		}
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil || !bytes.Contains(ignore, []byte(generatedSecrets)) {
		t.Errorf(".dockerignore must exclude %s (%v)", generatedSecrets, err)
	}
}

// TestDockerComposeConfig runs `docker compose config -q` where a container engine's compose
// plugin is installed. CI has none: the static tests above are what guard the file there.
func TestDockerComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil || exec.Command(docker, "compose", "version").Run() != nil {
		t.Log("docker compose not available: validated statically only")
		return
	}
	cmd := exec.Command(docker, "compose", "-f", "docker-compose.yml", "config", "-q")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
}
