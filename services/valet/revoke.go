package main

// The revocation verbs: clients of the revocation service's admin API
// (docs/revocation.md), authenticated with an admin client's credentials
// through the client credentials grant (RFC 6749 §4.4) for the admin
// audience (RFC 8707 resource) and the valet:admin scope.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/valetauth/valet/pkg/adminauth"
)

// Environment variables of the revocation verbs. The secret is read only
// from the environment: a flag would leave it in the shell history and in
// the process list.
const (
	envTokenURL     = "VALET_ADMIN_TOKEN_URL"
	envClientID     = "VALET_ADMIN_CLIENT_ID"
	envClientSecret = "VALET_ADMIN_CLIENT_SECRET"
	envAdminURL     = "VALET_REVOCATION_ADMIN_URL"
	envIssuer       = "VALET_ISSUER"
)

const revokeUsage = `usage:
  valet revoke family FID                          revoke a refresh family and every token minted from it
  valet revoke subject SUB [--type user|client]    revoke every token and grant of a subject (cut-off: now)
  valet revoke client CLIENT_ID                    revoke every token and grant of a client (cut-off: now)
  valet revoke token JTI --exp UNIX                revoke one access token by jti until its exp

flags (each defaults to its environment variable):
  --admin-url URL    revocation service admin listener   ($` + envAdminURL + `)
  --token-url URL    issuer token endpoint                ($` + envTokenURL + `)
  --client-id ID     admin client id                      ($` + envClientID + `)
  --issuer URL       issuer identifier; the admin audience is <issuer>/admin ($` + envIssuer + `)
  the admin client's secret is read from $` + envClientSecret + ` only.
`

// runRevoke runs `valet revoke ...` and returns the exit code: 0 done, 1
// refused or failed, 2 usage.
func runRevoke(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, revokeUsage)
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("valet revoke "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	adminURL := fs.String("admin-url", getenv(envAdminURL), "")
	tokenURL := fs.String("token-url", getenv(envTokenURL), "")
	clientID := fs.String("client-id", getenv(envClientID), "")
	issuer := fs.String("issuer", getenv(envIssuer), "")
	subType := fs.String("type", "user", "")
	exp := fs.Int64("exp", 0, "")
	// Flags may come before or after the positional argument. Family ids
	// and jtis are base64url and may start with '-', so only the names of
	// defined flags are taken as flags; "--" ends the flags.
	flags, pos := splitFlags(fs, args[1:])
	if err := fs.Parse(flags); err != nil {
		fmt.Fprintf(stderr, "valet revoke %s: %v\n%s", kind, err, revokeUsage)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "valet revoke %s: exactly one %s argument is required\n%s", kind, strings.ToUpper(kind), revokeUsage)
		return 2
	}
	var body map[string]any
	switch kind {
	case "family":
		body = map[string]any{"fid": pos[0]}
	case "subject":
		if *subType != "user" && *subType != "client" {
			fmt.Fprintf(stderr, "valet revoke subject: --type must be user or client, not %q\n", *subType)
			return 2
		}
		body = map[string]any{"sub": pos[0], "sub_type": *subType}
	case "client":
		body = map[string]any{"client_id": pos[0]}
	case "token":
		if *exp <= 0 {
			fmt.Fprint(stderr, "valet revoke token: --exp UNIX (the token's exp claim) is required\n")
			return 2
		}
		body = map[string]any{"jti": pos[0], "exp": *exp}
	default:
		fmt.Fprintf(stderr, "valet revoke: unknown kind %q\n%s", kind, revokeUsage)
		return 2
	}
	secret := getenv(envClientSecret)
	var missing []string
	for _, m := range []struct{ v, name string }{
		{*adminURL, "--admin-url or $" + envAdminURL},
		{*tokenURL, "--token-url or $" + envTokenURL},
		{*clientID, "--client-id or $" + envClientID},
		{secret, "$" + envClientSecret},
		{*issuer, "--issuer or $" + envIssuer},
	} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "valet revoke %s: missing %s\n", kind, strings.Join(missing, ", "))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := postAdmin(ctx, adminHTTPClient(ctx, *tokenURL, *clientID, secret, *issuer), strings.TrimSuffix(*adminURL, "/")+"/admin/revoke/"+kind, body)
	if err != nil {
		fmt.Fprintf(stderr, "valet revoke %s: %v\n", kind, err)
		return 1
	}
	msg := fmt.Sprintf("revoked %s %s", kind, pos[0])
	if res.Cutoff > 0 {
		msg += " (cut-off " + time.Unix(res.Cutoff, 0).UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(stdout, "%s, as %s: durable in the event stream\n", msg, res.Actor)
	return 0
}

type adminResponse struct {
	Revoked     string `json:"revoked"`
	Cutoff      int64  `json:"cutoff"`
	Actor       string `json:"actor"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// postAdmin posts body as JSON and returns the decoded success, or an error
// that says what went wrong in words an operator can act on.
func postAdmin(ctx context.Context, c *http.Client, target string, body any) (adminResponse, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return adminResponse{}, fmt.Errorf("admin URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return adminResponse{}, fmt.Errorf("getting an admin token failed: %s %s (check the client id, $%s, and that the client may request scope %s for resource %s)",
				re.ErrorCode, re.ErrorDescription, envClientSecret, adminauth.Scope, "<issuer>/admin")
		}
		return adminResponse{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out adminResponse
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode == http.StatusOK {
		return out, nil
	}
	detail := out.Error
	if out.Description != "" {
		detail += ": " + out.Description
	}
	if detail == "" {
		detail = strings.TrimSpace(string(raw))
	}
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		ra := resp.Header.Get("Retry-After")
		if _, err := strconv.Atoi(ra); err == nil {
			detail += " (retry in " + ra + " s; a recorded revocation is completed by the relay)"
		}
		return out, fmt.Errorf("revocation service unavailable: %s", detail)
	case http.StatusUnauthorized, http.StatusForbidden:
		return out, fmt.Errorf("admin API refused the token (HTTP %d): %s", resp.StatusCode, detail)
	}
	return out, fmt.Errorf("admin API answered HTTP %d: %s", resp.StatusCode, detail)
}

// splitFlags separates the arguments that set fs's flags ("--name value",
// "--name=value", one or two dashes) from positional ones. Anything else that
// starts with '-' is positional: a family id or jti may begin with '-'.
func splitFlags(fs *flag.FlagSet, args []string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(pos, args[i+1:]...)
		}
		name, hasValue := strings.TrimLeft(a, "-"), false
		if n, _, ok := strings.Cut(name, "="); ok {
			name, hasValue = n, true
		}
		if !strings.HasPrefix(a, "-") || fs.Lookup(name) == nil {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		if !hasValue && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return flags, pos
}
