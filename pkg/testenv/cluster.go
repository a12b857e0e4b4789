package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisClusterServer is a Redis Cluster a test may use: Addrs are its
// masters' host:port, for go-redis's ClusterOptions; Prefix is the key prefix
// this test must put in front of every key it writes (it ends with ':').
type RedisClusterServer struct {
	Addrs  []string
	Prefix string
}

// clusterNodes is how many masters the harness's cluster has: three, the
// least redis-cli --cluster create accepts, so that slots, and therefore
// keys of different hash tags, are spread over several servers.
const clusterNodes = 3

// RedisCluster returns a Redis Cluster for t: the one whose masters are
// listed in REDIS_CLUSTER_ADDRS (comma-separated host:port) when that is set,
// otherwise three fresh redis-server processes on 127.0.0.1 with cluster mode
// on, persistence off and directories under t.TempDir(), joined by
// redis-cli --cluster create with no replicas, and killed in t.Cleanup. It
// returns once every node reports cluster_state:ok with all 16384 slots
// assigned.
func RedisCluster(t testing.TB) *RedisClusterServer {
	t.Helper()
	if v := os.Getenv("REDIS_CLUSTER_ADDRS"); v != "" {
		return &RedisClusterServer{Addrs: strings.Split(v, ","), Prefix: newPrefix() + ":"}
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (%v); install it (Debian: apt-get install redis-server) or set REDIS_CLUSTER_ADDRS", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testenv: redis-cli not found on PATH (%v); install it (Debian: apt-get install redis-tools) or set REDIS_CLUSTER_ADDRS", err)
	}
	c := &RedisClusterServer{Prefix: newPrefix() + ":"}
	for i := range clusterNodes {
		addr, err := startClusterNode(t, server, filepath.Join(t.TempDir(), strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("testenv: start cluster node %d: %v", i, err)
		}
		c.Addrs = append(c.Addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range c.Addrs {
		for {
			info, err := command(addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_assigned:16384") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: cluster node %s not ready within 30s: %v %s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// startClusterNode starts one cluster-enabled redis-server in dir on a free
// port, with its cluster bus on another free port, and registers its kill
// with t.Cleanup.
func startClusterNode(t testing.TB, bin, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		bus, err := freePort()
		if err != nil {
			return "", err
		}
		log := &bytes.Buffer{}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port),
			"--cluster-port", strconv.Itoa(bus),
			"--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--maxmemory-policy", "noeviction",
			"--daemonize", "no",
			"--loglevel", "warning",
		)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return "", err
		}
		waitErr := make(chan error, 1)
		go func() { waitErr <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitPing(addr, waitErr, log); lastErr != nil {
			_ = cmd.Process.Kill()
			<-waitErr
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-waitErr
		})
		return addr, nil
	}
	return "", lastErr
}

// waitPing waits until addr answers PING, or the process exits, for 10 s.
func waitPing(addr string, exited <-chan error, log *bytes.Buffer) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v: %s", err, strings.TrimSpace(log.String()))
		default:
		}
		if ping(addr) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", addr, log.String())
}

// command sends one command in RESP and returns a bulk or simple string
// reply, without a client library (see ping).
func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
