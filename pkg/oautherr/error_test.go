package oautherr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSentinelStatus(t *testing.T) {
	tests := []struct {
		err    *Error
		code   string
		status int
	}{
		{ErrInvalidRequest, "invalid_request", 400},
		{ErrInvalidClient, "invalid_client", 401},
		{ErrInvalidGrant, "invalid_grant", 400},
		{ErrUnauthorizedClient, "unauthorized_client", 400},
		{ErrUnsupportedGrantType, "unsupported_grant_type", 400},
		{ErrInvalidScope, "invalid_scope", 400},
		{ErrInvalidTarget, "invalid_target", 400},
		{ErrUnsupportedResponseType, "unsupported_response_type", 400},
		{ErrAccessDenied, "access_denied", 403},
		{ErrServerError, "server_error", 500},
		{ErrTemporarilyUnavailable, "temporarily_unavailable", 503},
		{ErrAuthorizationPending, "authorization_pending", 400},
		{ErrSlowDown, "slow_down", 400},
		{ErrExpiredToken, "expired_token", 400},
		{ErrUnsupportedTokenType, "unsupported_token_type", 400},
		{ErrInvalidToken, "invalid_token", 401},
		{ErrInsufficientScope, "insufficient_scope", 403},
	}
	if len(tests) != len(sentinels) {
		t.Fatalf("test covers %d sentinels, package has %d", len(tests), len(sentinels))
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if tt.err.Code != tt.code || tt.err.Status != tt.status {
				t.Errorf("got %s %d, want %s %d", tt.err.Code, tt.err.Status, tt.code, tt.status)
			}
			if tt.err.Description == "" || SanitizeDescription(tt.err.Description) != tt.err.Description {
				t.Errorf("default description %q is empty or not in the RFC 6749 charset", tt.err.Description)
			}
			if tt.err.cause != nil || tt.err.retryAfter != 0 || tt.err.authScheme != "" || tt.err.URI != "" {
				t.Errorf("sentinel carries private state: %+v", tt.err)
			}
		})
	}
}

func TestIsAs(t *testing.T) {
	cause := errors.New("redis: connection refused")
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"sentinel itself", ErrInvalidGrant, ErrInvalidGrant, true},
		{"with description", ErrInvalidGrant.WithDescription("The code has expired."), ErrInvalidGrant, true},
		{"with status", ErrAccessDenied.WithStatus(400), ErrAccessDenied, true},
		{"chained modifiers", ErrInvalidClient.WithChallenge("Basic").WithCause(cause).WithURI("https://x/e"), ErrInvalidClient, true},
		{"wrapped with %w", fmt.Errorf("token handler: %w", ErrInvalidGrant.WithCause(cause)), ErrInvalidGrant, true},
		{"cause reachable", ErrTemporarilyUnavailable.WithCause(cause), cause, true},
		{"cause reachable through wrap", fmt.Errorf("x: %w", ErrServerError.WithCause(cause)), cause, true},
		{"other code", ErrInvalidGrant.WithDescription("x"), ErrInvalidRequest, false},
		{"copy as target", ErrInvalidScope, ErrInvalidScope.WithDescription("other"), true},
		{"plain error target", ErrInvalidGrant, io.EOF, false},
		{"nil *Error target", ErrInvalidGrant, (*Error)(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("As finds the copy", func(t *testing.T) {
		orig := ErrInvalidGrant.WithDescription("The refresh token was reused.")
		var e *Error
		if !errors.As(fmt.Errorf("refresh: %w", orig), &e) || e != orig {
			t.Fatalf("errors.As = %v, want the modified copy", e)
		}
	})
}

func TestSentinelImmutable(t *testing.T) {
	before := *ErrInvalidGrant
	c := ErrInvalidGrant.
		WithDescription("changed %d", 1).
		WithCause(io.EOF).
		WithURI("https://example.com/e").
		WithStatus(418).
		WithRetryAfter(time.Second).
		WithChallenge("Basic")
	if *ErrInvalidGrant != before {
		t.Fatalf("sentinel mutated: %+v, was %+v", *ErrInvalidGrant, before)
	}
	if c == ErrInvalidGrant {
		t.Fatal("modifier returned the sentinel itself")
	}
	if c.Description != "changed 1" || c.Cause() != io.EOF || c.URI != "https://example.com/e" ||
		c.Status != 418 || c.RetryAfter() != time.Second || c.AuthScheme() != "Basic" {
		t.Errorf("copy lost a modification: %+v", c)
	}
	// Deriving two errors from one copy leaves the first untouched too.
	a := c.WithDescription("a")
	b := c.WithDescription("b")
	if a.Description != "a" || b.Description != "b" || c.Description != "changed 1" {
		t.Errorf("copies share state: a=%q b=%q c=%q", a.Description, b.Description, c.Description)
	}
}

func TestWithDescriptionFormat(t *testing.T) {
	if got := ErrInvalidRequest.WithDescription("100%% sure").Description; got != "100% sure" {
		t.Errorf("no-arg description = %q, want it formatted", got)
	}
	if got := ErrInvalidRequest.WithDescription("missing %q", "code").Description; got != `missing "code"` {
		t.Errorf("formatted description = %q", got)
	}
}

func TestModifiersOnNil(t *testing.T) {
	var e *Error
	c := e.WithDescription("x")
	if c.Code != "server_error" || c.Status != 500 {
		t.Errorf("nil.WithDescription = %+v, want a server_error copy", c)
	}
	if e.Error() != "<nil>" || e.Unwrap() != nil || e.RetryAfter() != 0 || e.AuthScheme() != "" || e.Challenge() != "" {
		t.Error("accessors on a nil *Error misbehave")
	}
	if ErrServerError.Description == "x" {
		t.Error("nil modifier mutated ErrServerError")
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"code only", &Error{Code: "invalid_grant"}, "invalid_grant"},
		{"with description", ErrInvalidGrant.WithDescription("expired"), "invalid_grant: expired"},
		{"with cause", ErrServerError.WithDescription("boom").WithCause(io.EOF), "server_error: boom (cause: EOF)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFrom(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:6379: password=hunter2 rejected")
	custom := ErrInvalidGrant.WithDescription("custom")
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantSame *Error
		status   int
	}{
		{"unknown error", secret, "server_error", nil, 500},
		{"wrapped unknown", fmt.Errorf("store: get family: %w", secret), "server_error", nil, 500},
		{"*Error itself", custom, "invalid_grant", custom, 400},
		{"wrapped *Error", fmt.Errorf("handler: %w", custom), "invalid_grant", custom, 400},
		{"deadline", context.DeadlineExceeded, "temporarily_unavailable", nil, 503},
		{"wrapped deadline", fmt.Errorf("redis: %w", context.DeadlineExceeded), "temporarily_unavailable", nil, 503},
		{"canceled", context.Canceled, "temporarily_unavailable", nil, 503},
		{"nil *Error in chain", fmt.Errorf("x: %w", (*Error)(nil)), "server_error", nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := From(tt.err)
			if got.Code != tt.wantCode || got.Status != tt.status {
				t.Fatalf("From = %s %d, want %s %d", got.Code, got.Status, tt.wantCode, tt.status)
			}
			if tt.wantSame != nil {
				if got != tt.wantSame {
					t.Errorf("From returned a different *Error")
				}
				return
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("original error is not the cause")
			}
			if strings.Contains(got.Description, "hunter2") || strings.Contains(got.Description, "10.0.0.7") {
				t.Errorf("description leaks the cause: %q", got.Description)
			}
		})
	}
	if From(nil) != nil {
		t.Error("From(nil) != nil")
	}
	if got := From(context.Canceled); !errors.Is(got, context.Canceled) {
		t.Error("a client disconnect is no longer recognisable through the cause")
	}
}

func TestRedirectQuery(t *testing.T) {
	tests := []struct {
		name  string
		err   *Error
		state string
		iss   string
		want  url.Values
	}{
		{
			name:  "all parameters",
			err:   ErrAccessDenied.WithDescription("The user said no.").WithURI("https://valet.example/e/denied"),
			state: "xyz", iss: "https://valet.example",
			want: url.Values{
				"error":             {"access_denied"},
				"error_description": {"The user said no."},
				"error_uri":         {"https://valet.example/e/denied"},
				"state":             {"xyz"},
				"iss":               {"https://valet.example"},
			},
		},
		{
			name: "no state, no iss, no description",
			err:  &Error{Code: "invalid_scope", Status: 400},
			want: url.Values{"error": {"invalid_scope"}},
		},
		{
			name:  "description sanitized",
			err:   ErrInvalidRequest.WithDescription("bad \"param\"\r\nLocation: x"),
			state: "s",
			want: url.Values{
				"error":             {"invalid_request"},
				"error_description": {"bad 'param'  Location: x"},
				"state":             {"s"},
			},
		},
		{
			name: "invalid code becomes server_error",
			err:  &Error{Code: "bad\ncode", Status: 400},
			want: url.Values{"error": {"server_error"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.err.RedirectQuery(tt.state, tt.iss)
			if got.Encode() != tt.want.Encode() {
				t.Errorf("RedirectQuery = %s, want %s", got.Encode(), tt.want.Encode())
			}
		})
	}
}

func TestSanitizeDescription(t *testing.T) {
	long := strings.Repeat("a", 2000)
	tests := []struct {
		name, in, want string
	}{
		{"allowed unchanged", "The code has expired! [#1] ~ok~", "The code has expired! [#1] ~ok~"},
		{"quote and backslash", `a "b" c\d`, "a 'b' c/d"},
		{"CRLF injection", "x\r\nSet-Cookie: a=b", "x  Set-Cookie: a=b"},
		{"tab and DEL", "a\tb\x7fc", "a b?c"},
		{"non-ASCII", "café ☕", "caf? ?"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"line separator", "a\u2028b", "a b"},
		{"empty", "", ""},
		{"too long", long, strings.Repeat("a", maxDescription-3) + "..."},
		{"exactly max with a bad char", strings.Repeat("a", maxDescription-1) + "\n", strings.Repeat("a", maxDescription-1) + " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SanitizeDescription(tt.in)
			if got != tt.want {
				t.Errorf("SanitizeDescription(%.40q) = %.60q, want %.60q", tt.in, got, tt.want)
			}
			if !isParamValue(got, true) || len(got) > maxDescription {
				t.Errorf("result outside the RFC 6749 charset or cap: %.60q", got)
			}
		})
	}
}
