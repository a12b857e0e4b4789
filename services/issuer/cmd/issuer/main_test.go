package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
)

// TestBuildServesTokens runs the real wiring (build) against a harness Redis
// and an embedded JetStream: it becomes ready, issues a token to a client
// whose secret was hashed under the configured KEK, and shuts down cleanly.
func TestBuildServesTokens(t *testing.T) {
	rs, ns := testenv.Redis(t), testenv.NATS(t)
	kek := strings.Repeat("ab", 32)
	t.Setenv("VALET_TEST_KEK", kek)

	cfg := config.Default()
	cfg.Dev = true
	cfg.Redis.URL, cfg.Redis.KeyPrefix = rs.URL, rs.Prefix
	cfg.NATS.URL, cfg.NATS.SubjectPrefix = ns.URL, ns.Prefix
	pubAddr, admAddr := freeAddr(t), freeAddr(t)
	cfg.Services.Issuer.Listen, cfg.Services.Issuer.AdminListen = pubAddr, admAddr
	cfg.Keys.EncryptionKeys = []config.KeyEncryptionKey{{ID: "k1", Source: "env:VALET_TEST_KEK"}}
	cfg.Keys.ActiveEncryptionKey = "k1"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := build(ctx, boot.Env{Config: &cfg, Logger: zaptest.NewLogger(t), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	// A client registered by another process sharing the KEK.
	raw, _ := hex.DecodeString(kek)
	hasher, err := secret.NewHasher("k1", map[string][]byte{"k1": raw})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(raw)
	aead, _ := cipher.NewGCM(block)
	opt, _ := goredis.ParseURL(rs.URL)
	st, err := redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(rs.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sec, _ := secret.New()
	if err := st.CreateResourceServer(ctx, store.ResourceServer{ID: "https://api.example.test/", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateClient(ctx, store.Client{
		ID: "svc", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Secrets:   []store.Secret{{ID: "s1", Hash: hasher.Hash(sec)}},
		Resources: map[string][]string{"https://api.example.test/": {"read"}}, DefaultResource: "https://api.example.test/",
	}); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get("http://" + admAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {sec}}
	res, err := http.PostForm("http://"+pubAddr+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if res.StatusCode != 200 || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" || tok.Scope != "read" {
		t.Fatalf("token: %d %s", res.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no graceful shutdown within 20s")
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
