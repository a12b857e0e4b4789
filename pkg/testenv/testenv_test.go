package testenv

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resp sends one command in RESP and returns the first reply line.
func resp(t *testing.T, addr string, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if strings.HasPrefix(line, "$") && !strings.HasPrefix(line, "$-1") {
		line, _ = r.ReadString('\n')
	}
	return strings.TrimRight(line, "\r\n")
}

func TestRedisStartsAndStops(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	r := Redis(t)
	if got := resp(t, r.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if got := resp(t, r.Addr, "CONFIG", "GET", "maxmemory-policy"); got != "*2" {
		t.Fatalf("CONFIG GET reply = %q", got)
	}
	r.Stop()
	if err := ping(r.Addr); err == nil {
		t.Fatal("redis-server still answers after Stop")
	}
	r.Start()
	if got := resp(t, r.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING after Start = %q", got)
	}
}

func TestRedisPrefixesIsolateSharedServer(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	shared := Redis(t)
	var mu sync.Mutex
	prefixes := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				r := redisAt(t, shared.URL)
				mu.Lock()
				if prefixes[r.Prefix] {
					t.Errorf("prefix %q handed out twice", r.Prefix)
				}
				prefixes[r.Prefix] = true
				mu.Unlock()
				if got := resp(t, r.Addr, "GET", r.Key("k")); got != "$-1" {
					t.Fatalf("fresh prefix already has a value: %q", got)
				}
				want := fmt.Sprint("value-", i)
				resp(t, r.Addr, "SET", r.Key("k"), want)
				time.Sleep(20 * time.Millisecond) // let the siblings write theirs
				if got := resp(t, r.Addr, "GET", r.Key("k")); got != want {
					t.Fatalf("GET %s = %q, want %q: another test wrote our key", r.Key("k"), got, want)
				}
			})
		}
	})
	if len(prefixes) != 4 {
		t.Fatalf("got %d distinct prefixes, want 4", len(prefixes))
	}
}

func TestNATSJetStreamStartsStopsAndRestarts(t *testing.T) {
	t.Setenv("NATS_URL", "")
	n := NATS(t)
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stream := n.Prefix + "_S"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{n.Prefix + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, n.Prefix+".a", []byte("before")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	n.Shutdown()
	if n.Server() != nil {
		t.Fatal("server still set after Shutdown")
	}
	n.Start()
	deadline := time.Now().Add(10 * time.Second)
	for nc.Status() != nats.CONNECTED && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var info *jetstream.StreamInfo
	for time.Now().Before(deadline) {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			if info, err = s.Info(ctx); err == nil {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info == nil || info.State.Msgs != 1 {
		t.Fatalf("stream after restart: %+v, want 1 message kept on disk", info)
	}
}

func TestNATSPrefixesDiffer(t *testing.T) {
	t.Setenv("NATS_URL", "")
	a := NATS(t)
	t.Setenv("NATS_URL", a.URL)
	b, c := NATS(t), NATS(t)
	if b.URL != a.URL || c.URL != a.URL {
		t.Fatalf("NATS_URL not used: %s %s", b.URL, c.URL)
	}
	if b.Prefix == c.Prefix {
		t.Fatalf("two tests on one shared server got prefix %q", b.Prefix)
	}
}
