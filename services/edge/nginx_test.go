package edge_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/services/edge"
)

// nginxTemplate is the shipped NGINX configuration the test runs.
const nginxTemplate = "../../deploy/gateways/nginx/valet.conf.template"

// TestNGINX runs a real nginx with deploy/gateways/nginx's configuration in
// front of an upstream, with auth_request against the authorizer.
func TestNGINX(t *testing.T) {
	bin := nginxBinary(t)
	e := newEnv(t)
	a := e.startAuthz(t, testPolicy)

	var mu sync.Mutex
	var seen []http.Header
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		_, _ = w.Write([]byte("upstream ok"))
	}))
	t.Cleanup(app.Close)
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	lastSeen := func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return nil
		}
		return seen[len(seen)-1]
	}
	front := runNGINX(t, bin, map[string]string{
		"VALET_EDGE":   strings.TrimPrefix(a.url, "http://"),
		"APP_UPSTREAM": strings.TrimPrefix(app.URL, "http://"),
	})

	victim := claims()
	vt, tok := e.sign(t, victim), e.sign(t, claims())
	call := func(t *testing.T, method, path, token string, hdr ...string) reply {
		t.Helper()
		req, err := http.NewRequest(method, front+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		return reply{status: res.StatusCode, header: res.Header}
	}

	t.Run("valid token reaches the upstream with the identity", func(t *testing.T) {
		r := call(t, "GET", "/public/x?page=1", tok, edge.HeaderSubject, "root", edge.HeaderScope, "admin")
		if r.status != 200 {
			t.Fatalf("status %d, want 200", r.status)
		}
		h := lastSeen()
		if h == nil {
			t.Fatal("upstream saw nothing")
		}
		if got := h.Values(edge.HeaderSubject); len(got) != 1 || got[0] != "alice" {
			t.Errorf("upstream %s = %q, want [alice] (never the client's)", edge.HeaderSubject, got)
		}
		if got := h.Values(edge.HeaderScope); len(got) != 1 || got[0] != "read write" {
			t.Errorf("upstream %s = %q, want [read write]", edge.HeaderScope, got)
		}
		if got := h.Get(edge.HeaderClient); got != "web-portal" {
			t.Errorf("upstream %s = %q, want web-portal", edge.HeaderClient, got)
		}
	})
	t.Run("missing token", func(t *testing.T) {
		n := calls()
		r := call(t, "GET", "/public/x", "", edge.HeaderSubject, "root")
		if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="valet"` {
			t.Fatalf("status %d, WWW-Authenticate %q; want 401 and the bare challenge", r.status, r.header.Get("WWW-Authenticate"))
		}
		if calls() != n {
			t.Error("the upstream was called")
		}
	})
	t.Run("insufficient scope", func(t *testing.T) {
		r := call(t, "GET", "/admin/users", tok)
		want := `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="admin"`
		if r.status != 403 || r.header.Get("WWW-Authenticate") != want {
			t.Fatalf("status %d, WWW-Authenticate %q; want 403 and %q", r.status, r.header.Get("WWW-Authenticate"), want)
		}
	})
	t.Run("dot segments", func(t *testing.T) {
		if r := call(t, "GET", "/public/%2e%2e/admin/users", tok); r.status != 400 {
			t.Fatalf("status %d, want 400", r.status)
		}
	})
	t.Run("revoked token gets 401", func(t *testing.T) {
		if r := call(t, "GET", "/public/x", vt); r.status != 200 {
			t.Fatalf("before revocation: status %d, want 200", r.status)
		}
		e.revoke(t, victim)
		servicetest.Eventually(t, wait, func() error {
			r := call(t, "GET", "/public/x", vt)
			want := `Bearer realm="valet", error="invalid_token", error_description="the access token is revoked"`
			if r.status != 401 || r.header.Get("WWW-Authenticate") != want {
				return fmt.Errorf("status %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
			}
			return nil
		})
	})
	t.Run("stale edge is 503", func(t *testing.T) {
		e.nats.Shutdown()
		servicetest.Eventually(t, wait, func() error {
			r := call(t, "GET", "/public/x", tok)
			if r.status != 503 {
				return fmt.Errorf("status %d, want 503", r.status)
			}
			if got := r.header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("503 carries WWW-Authenticate %q", got)
			}
			if got := r.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
			return nil
		})
		e.nats.Start()
		servicetest.Eventually(t, wait, func() error {
			if r := call(t, "GET", "/public/x", tok); r.status != 200 {
				return fmt.Errorf("status %d, want 200", r.status)
			}
			return nil
		})
	})
}

// nginxBinary returns the nginx executable, failing with an install hint
// when there is none: a skipped test verifies nothing.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("nginx not found: install it (Debian: apt-get install -y nginx; .ci/run does so when it is missing)")
	return ""
}

// runNGINX renders the shipped template with vars and a free listen port,
// runs nginx in the foreground with every path in a temp dir until the test
// ends, and returns its base URL once it answers.
func runNGINX(t *testing.T, bin string, vars map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	vars["NGINX_LISTEN"] = "127.0.0.1:" + port
	tmpl, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(tmpl)
	for k, v := range vars {
		conf = strings.ReplaceAll(conf, "${"+k+"}", v)
	}
	if i := strings.Index(conf, "${"); i >= 0 {
		t.Fatalf("template placeholder left unset: %.40s", conf[i:])
	}
	site := filepath.Join(dir, "valet.conf")
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, site)
	for name, body := range map[string]string{site: conf, filepath.Join(dir, "nginx.conf"): main} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out.String(), log)
		default:
		}
		res, err := http.Get(base + "/")
		if err == nil {
			res.Body.Close()
			return base
		}
		var uerr *url.Error
		if time.Now().After(deadline) || !errors.As(err, &uerr) {
			t.Fatalf("nginx does not answer on %s: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
