package edge_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/pkg/edge"
)

// Example embeds the edge in a Go gateway: connect to NATS, build the
// Verifier, start it, and protect a handler. It compiles as part of the
// tests; docs/gateway.md shows the same code.
func Example() {
	// As the edge NATS user, with the edge's reply inboxes (docs/gateway.md,
	// "The NATS connection").
	nkey, err := nats.NkeyOptionFromSeed("/run/secrets/valet/nats-edge.nk")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect("nats://nats.internal.example.com:4222",
		nkey, nats.CustomInboxPrefix("_INBOX_edge"), nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	v, err := edge.New(edge.Config{
		Issuer:           "https://auth.example.com",
		Audience:         "https://api.example.com",
		JWKSURL:          "https://auth.example.com/jwks.json",
		JetStream:        js,
		MaxTokenLifetime: 15 * time.Minute, // tokens.max_access_token_lifetime
	},
		edge.WithStalenessBound(15*time.Second),
		edge.WithObserver(edge.Observer{
			OnDecision: func(reason string) { /* decisions.WithLabelValues(reason).Inc() */ },
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil { // no JWKS: refuse to start
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitCurrent(ctx); err != nil { // replayed and heard a heartbeat
		log.Fatal(err)
	}

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := r.Context().Value(claimsKey{}).(edge.Claims)
		_, _ = w.Write([]byte("hello " + claims.Subject))
	})
	http.Handle("/reports/", requireScopes(v, api, "reports:read"))
	log.Fatal(http.ListenAndServe(":8443", nil))
}

type claimsKey struct{}

// requireScopes answers 401/403/503 per RFC 6750 §3 unless the request
// carries a valid bearer token with every scope.
func requireScopes(v *edge.Verifier, next http.Handler, scopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		claims, err := v.VerifyScopes(r.Context(), token, scopes...)
		if err != nil {
			var e *edge.Error
			if !errors.As(err, &e) {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			if code := e.BearerError(); code != "" {
				h := `Bearer realm="api", error="` + code + `"`
				if code == "insufficient_scope" {
					h += `, scope="` + strings.Join(scopes, " ") + `"`
				}
				w.Header().Set("WWW-Authenticate", h)
			} else {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, http.StatusText(e.StatusCode()), e.StatusCode())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}

// bearer extracts the token of an "Authorization: Bearer" header (RFC 6750
// §2.1).
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
