package oautherr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	leak := errors.New("pq: password authentication failed for user valet at 10.1.2.3")
	tests := []struct {
		name       string
		err        error
		status     int
		body       map[string]string // decoded JSON members; absent ones must be absent
		challenge  string            // expected WWW-Authenticate; "" means no header
		retryAfter string            // expected Retry-After; "" means no header
	}{
		{
			name:   "sentinel",
			err:    ErrInvalidGrant,
			status: 400,
			body:   map[string]string{"error": "invalid_grant", "error_description": ErrInvalidGrant.Description},
		},
		{
			name:   "custom description and uri",
			err:    ErrInvalidScope.WithDescription("Scope %q is unknown.", "admin").WithURI("https://valet.example/docs/errors#invalid_scope"),
			status: 400,
			body: map[string]string{
				"error":             "invalid_scope",
				"error_description": "Scope 'admin' is unknown.",
				"error_uri":         "https://valet.example/docs/errors#invalid_scope",
			},
		},
		{
			name:   "invalid_client without challenge",
			err:    ErrInvalidClient,
			status: 401,
			body:   map[string]string{"error": "invalid_client", "error_description": ErrInvalidClient.Description},
		},
		{
			name:      "invalid_client with Basic challenge",
			err:       ErrInvalidClient.WithDescription("Client authentication failed.").WithChallenge("Basic"),
			status:    401,
			body:      map[string]string{"error": "invalid_client", "error_description": "Client authentication failed."},
			challenge: `Basic realm="valet", error="invalid_client", error_description="Client authentication failed."`,
		},
		{
			name:      "Bearer invalid_token",
			err:       ErrInvalidToken.WithDescription("The access token expired").WithChallenge("Bearer"),
			status:    401,
			body:      map[string]string{"error": "invalid_token", "error_description": "The access token expired"},
			challenge: `Bearer realm="valet", error="invalid_token", error_description="The access token expired"`,
		},
		{
			name:      "Bearer insufficient_scope with uri",
			err:       ErrInsufficientScope.WithDescription("").WithURI("https://e/x").WithChallenge("Bearer"),
			status:    403,
			body:      map[string]string{"error": "insufficient_scope", "error_uri": "https://e/x"},
			challenge: `Bearer realm="valet", error="insufficient_scope", error_uri="https://e/x"`,
		},
		{
			name:      "challenge description sanitized",
			err:       ErrInvalidToken.WithDescription("bad \"tok\"\r\nX: y").WithChallenge("Bearer"),
			status:    401,
			body:      map[string]string{"error": "invalid_token", "error_description": "bad 'tok'  X: y"},
			challenge: `Bearer realm="valet", error="invalid_token", error_description="bad 'tok'  X: y"`,
		},
		{
			name:   "invalid scheme is ignored",
			err:    ErrInvalidClient.WithChallenge("Basic realm=x"),
			status: 401,
			body:   map[string]string{"error": "invalid_client", "error_description": ErrInvalidClient.Description},
		},
		{
			name:       "retry after rounds up",
			err:        ErrTemporarilyUnavailable.WithRetryAfter(1500 * time.Millisecond),
			status:     503,
			body:       map[string]string{"error": "temporarily_unavailable", "error_description": ErrTemporarilyUnavailable.Description},
			retryAfter: "2",
		},
		{
			name:       "retry after whole seconds",
			err:        ErrTemporarilyUnavailable.WithRetryAfter(30 * time.Second),
			status:     503,
			body:       map[string]string{"error": "temporarily_unavailable", "error_description": ErrTemporarilyUnavailable.Description},
			retryAfter: "30",
		},
		{
			name:   "negative retry after is dropped",
			err:    ErrTemporarilyUnavailable.WithRetryAfter(-time.Second),
			status: 503,
			body:   map[string]string{"error": "temporarily_unavailable", "error_description": ErrTemporarilyUnavailable.Description},
		},
		{
			name:   "unknown error leaks nothing",
			err:    fmt.Errorf("load client: %w", leak),
			status: 500,
			body:   map[string]string{"error": "server_error", "error_description": ErrServerError.Description},
		},
		{
			name:   "nil error",
			err:    nil,
			status: 500,
			body:   map[string]string{"error": "server_error", "error_description": ErrServerError.Description},
		},
		{
			name:   "deadline exceeded",
			err:    fmt.Errorf("redis: %w", context.DeadlineExceeded),
			status: 503,
			body:   map[string]string{"error": "temporarily_unavailable", "error_description": ErrTemporarilyUnavailable.Description},
		},
		{
			name:   "wrapped *Error keeps its code",
			err:    fmt.Errorf("device: %w", ErrSlowDown),
			status: 400,
			body:   map[string]string{"error": "slow_down", "error_description": ErrSlowDown.Description},
		},
		{
			name:   "access_denied at the device token endpoint",
			err:    ErrAccessDenied.WithStatus(http.StatusBadRequest),
			status: 400,
			body:   map[string]string{"error": "access_denied", "error_description": ErrAccessDenied.Description},
		},
		{
			name:   "description sanitized",
			err:    ErrInvalidRequest.WithDescription("param \"x\\y\" has\tctrl é"),
			status: 400,
			body:   map[string]string{"error": "invalid_request", "error_description": "param 'x/y' has ctrl ?"},
		},
		{
			name:   "empty description omitted",
			err:    ErrInvalidRequest.WithDescription(""),
			status: 400,
			body:   map[string]string{"error": "invalid_request"},
		},
		{
			name:   "uri with forbidden characters dropped",
			err:    ErrInvalidRequest.WithDescription("x").WithURI("https://e/a b\"c"),
			status: 400,
			body:   map[string]string{"error": "invalid_request", "error_description": "x"},
		},
		{
			name:   "out of range status uses the sentinel's",
			err:    ErrInvalidClient.WithStatus(200),
			status: 401,
			body:   map[string]string{"error": "invalid_client", "error_description": ErrInvalidClient.Description},
		},
		{
			name:   "unregistered code without status",
			err:    &Error{Code: "custom_error", Description: "d"},
			status: 500,
			body:   map[string]string{"error": "custom_error", "error_description": "d"},
		},
		{
			name:   "malformed code becomes server_error",
			err:    &Error{Code: "bad\"code", Description: "secret detail", Status: 400},
			status: 500,
			body:   map[string]string{"error": "server_error", "error_description": ErrServerError.Description},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Length", "9999")
			Write(rec, tt.err)
			res := rec.Result()

			if res.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.status)
			}
			wantHeaders := map[string]string{
				"Content-Type":     "application/json;charset=UTF-8",
				"Cache-Control":    "no-store",
				"Pragma":           "no-cache",
				"Www-Authenticate": tt.challenge,
				"Retry-After":      tt.retryAfter,
				"Content-Length":   "",
			}
			for k, want := range wantHeaders {
				if got := res.Header.Values(k); (want == "" && len(got) != 0) || (want != "" && (len(got) != 1 || got[0] != want)) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}

			raw := rec.Body.Bytes()
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", raw, err)
			}
			if len(got) != len(tt.body) {
				t.Errorf("body = %s, want members %v", raw, tt.body)
			}
			for k, want := range tt.body {
				if got[k] != want {
					t.Errorf("body[%s] = %v, want %q", k, got[k], want)
				}
			}
			if s := string(raw); strings.Contains(s, "password") || strings.Contains(s, "10.1.2.3") || strings.Contains(s, "secret detail") {
				t.Errorf("body leaks detail: %s", s)
			}
		})
	}
}

func TestWriteJSONEscaping(t *testing.T) {
	tests := []struct {
		name, desc, want string
	}{
		{"html", `<script>alert(1)</script> & co`, `<script>alert(1)</script> & co`},
		{"quotes and backslashes", `"}` + `,"error":"x\`, `'},'error':'x/`},
		{"braces", `{"a":1}`, `{'a':1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, ErrInvalidRequest.WithDescription("%s", tt.desc))
			raw := rec.Body.String()
			if strings.ContainsAny(raw, "<>") {
				t.Errorf("raw body carries unescaped markup: %s", raw)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", raw, err)
			}
			if got["error"] != "invalid_request" || got["error_description"] != tt.want {
				t.Errorf("decoded %v, want error_description %q", got, tt.want)
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	e := ErrInvalidGrant.WithDescription("The refresh token is invalid.")
	h := make(http.Header)
	w := &discard{h: h}
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		Write(w, e)
	}
}

// discard is an http.ResponseWriter that keeps headers and drops the body.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
