package main

// The admin-API client shared by every verb that calls an admin listener:
// an admin token from the client credentials grant (RFC 6749 §4.4) for the
// admin audience (RFC 8707 resource <issuer>/admin) and the valet:admin
// scope, exactly as `valet revoke` gets it, and JSON requests with errors
// explained in words an operator can act on.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/valetauth/valet/pkg/adminauth"
)

// envIssuerAdminURL is the issuer's admin listener, where the registry and
// key verbs go.
const envIssuerAdminURL = "VALET_ISSUER_ADMIN_URL"

// adminHTTPClient returns an HTTP client that sends an admin access token,
// fetched (and refreshed) through the client credentials grant at tokenURL.
func adminHTTPClient(ctx context.Context, tokenURL, clientID, secret, issuer string) *http.Client {
	cc := clientcredentials.Config{
		ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL,
		Scopes:         []string{adminauth.Scope},
		EndpointParams: url.Values{"resource": {adminauth.Audience(issuer)}},
		AuthStyle:      oauth2.AuthStyleInHeader,
	}
	return cc.Client(ctx)
}

// adminConn holds the connection flags of the issuer admin verbs.
type adminConn struct {
	adminURL, tokenURL, clientID, issuer *string
	json                                 *bool
	getenv                               func(string) string
}

// addAdminFlags registers the connection flags on fs, each defaulting to
// its environment variable, and --json.
func addAdminFlags(fs *flag.FlagSet, getenv func(string) string) *adminConn {
	return &adminConn{
		adminURL: fs.String("admin-url", getenv(envIssuerAdminURL), ""),
		tokenURL: fs.String("token-url", getenv(envTokenURL), ""),
		clientID: fs.String("client-id", getenv(envClientID), ""),
		issuer:   fs.String("issuer", getenv(envIssuer), ""),
		json:     fs.Bool("json", false, ""),
		getenv:   getenv,
	}
}

const adminFlagsUsage = `connection flags (each defaults to its environment variable):
  --admin-url URL    issuer admin listener                 ($` + envIssuerAdminURL + `)
  --token-url URL    issuer token endpoint                 ($` + envTokenURL + `)
  --client-id ID     admin client id                       ($` + envClientID + `)
  --issuer URL       issuer identifier; the admin audience is <issuer>/admin ($` + envIssuer + `)
  --json             print the API's JSON instead of a table
  the admin client's secret is read from $` + envClientSecret + ` only.
`

// missing lists the connection settings that are not set.
func (a *adminConn) missing() []string {
	var out []string
	for _, m := range []struct{ v, name string }{
		{*a.adminURL, "--admin-url or $" + envIssuerAdminURL},
		{*a.tokenURL, "--token-url or $" + envTokenURL},
		{*a.clientID, "--client-id or $" + envClientID},
		{a.getenv(envClientSecret), "$" + envClientSecret},
		{*a.issuer, "--issuer or $" + envIssuer},
	} {
		if m.v == "" {
			out = append(out, m.name)
		}
	}
	return out
}

// apiError is an error answer of an admin API.
type apiError struct {
	Status      int
	Code        string
	Description string
}

func (e *apiError) Error() string {
	d := e.Code
	if e.Description != "" {
		d += ": " + e.Description
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Sprintf("admin API refused the token (HTTP %d): %s", e.Status, d)
	case http.StatusServiceUnavailable:
		return "admin API unavailable, retry: " + d
	}
	return fmt.Sprintf("admin API answered HTTP %d: %s", e.Status, d)
}

// do sends method path with body as JSON (nil: no body) and decodes a 2xx
// answer into out (nil: discard). Errors say what went wrong.
func (a *adminConn) do(ctx context.Context, method, path string, body, out any) error {
	c := adminHTTPClient(ctx, *a.tokenURL, *a.clientID, a.getenv(envClientSecret), *a.issuer)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(*a.adminURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("admin URL: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return fmt.Errorf("getting an admin token failed: %s %s (check the client id, $%s, and that the client may request scope %s for resource %s)",
				re.ErrorCode, re.ErrorDescription, envClientSecret, adminauth.Scope, "<issuer>/admin")
		}
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("admin API answered HTTP %d with unexpected content", resp.StatusCode)
		}
		return nil
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(raw, &e)
	ae := &apiError{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	if ae.Code == "" {
		ae.Code = strings.TrimSpace(string(raw))
	}
	if ra := resp.Header.Get("Retry-After"); resp.StatusCode == http.StatusServiceUnavailable {
		if _, err := strconv.Atoi(ra); err == nil {
			ae.Description += " (retry in " + ra + " s)"
		}
	}
	return ae
}

// parseArgs parses args with fs, allowing flags before and after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// listFlag is a repeatable flag; each value may also hold a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// printJSON writes v indented.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
