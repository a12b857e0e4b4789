package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisServer is a Redis server a test may use. URL is a redis:// URL for
// go-redis's ParseURL; Prefix is the key prefix this test must put in front of
// every key it writes (it ends with ':').
type RedisServer struct {
	URL    string
	Addr   string
	Prefix string

	t       testing.TB
	dir     string
	port    int
	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
	log     *bytes.Buffer
}

// Redis returns a Redis server for t: the one at REDIS_URL when that is set,
// otherwise a fresh redis-server on 127.0.0.1 on a free port, with persistence
// off and t.TempDir() as its directory, killed in t.Cleanup.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return redisAt(t, u)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (%v); install it (Debian: apt-get install redis-server) or set REDIS_URL", err)
	}
	s := &RedisServer{t: t, dir: t.TempDir(), Prefix: newPrefix() + ":"}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: find a free port: %v", err)
		}
		s.port = port
		if lastErr = s.start(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: start redis-server: %v", lastErr)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	t.Cleanup(s.Stop)
	return s
}

func redisAt(t testing.TB, rawURL string) *RedisServer {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testenv: REDIS_URL %q: %v", rawURL, err)
	}
	return &RedisServer{t: t, URL: rawURL, Addr: u.Host, Prefix: newPrefix() + ":"}
}

func (s *RedisServer) start(bin string) error {
	s.log = &bytes.Buffer{}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--maxmemory-policy", "noeviction",
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-waitErr:
			return fmt.Errorf("redis-server exited: %v: %s", err, strings.TrimSpace(s.log.String()))
		default:
		}
		if ping(addr) == nil {
			s.mu.Lock()
			s.cmd, s.waitErr = cmd, waitErr
			s.mu.Unlock()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-waitErr
	return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", addr, s.log.String())
}

// Stop kills the server and waits for it to exit. Tests use it to simulate an
// outage; Start brings the same server back on the same port. Stopping a
// shared server (REDIS_URL) is a test error.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	cmd, waitErr := s.cmd, s.waitErr
	s.cmd, s.waitErr = nil, nil
	s.mu.Unlock()
	if s.dir == "" {
		s.t.Errorf("testenv: cannot stop the shared Redis at %s", s.URL)
		return
	}
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-waitErr
}

// Start restarts a server that Stop stopped, on the same port. Its data is
// gone: persistence is off.
func (s *RedisServer) Start() {
	s.t.Helper()
	if s.dir == "" {
		s.t.Fatalf("testenv: cannot start the shared Redis at %s", s.URL)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("testenv: redis-server not found: %v", err)
	}
	if err := s.start(bin); err != nil {
		s.t.Fatalf("testenv: restart redis-server: %v", err)
	}
}

// Key returns name behind this test's prefix.
func (s *RedisServer) Key(name string) string { return s.Prefix + name }

// ping sends one RESP PING and expects +PONG, so the harness needs no client
// library (the edge module's graph must not contain go-redis).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
