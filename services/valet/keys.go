package main

// `valet keys ...`: signing-key operations through the issuer's admin API
// (docs/keys.md, docs/admin.md).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

const keysUsage = `usage:
  valet keys rotate [--immediate]   create a successor key: published now, signing after the lead time
                                     (--immediate: signing at once, the current key retires — emergencies)
  valet keys revoke KID             compromise: drop KID from JWKS at once and publish key.revoked
  valet keys rewrap                 re-seal every stored private key under the active key-encryption key
`

// runKeys runs `valet keys VERB ...`: 0 done, 1 refused or failed, 2 usage.
func runKeys(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage+adminFlagsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("valet keys "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conn := addAdminFlags(fs, getenv)
	immediate := fs.Bool("immediate", false, "")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "valet keys %s: %v\n%s", verb, err, keysUsage)
		return 2
	}
	var path string
	switch verb {
	case "rotate":
		path = "/admin/keys/rotate"
		if *immediate {
			path += "?immediate=true"
		}
	case "rewrap":
		path = "/admin/keys/rewrap"
	case "revoke":
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "valet keys revoke: exactly one KID argument is required\n%s", keysUsage)
			return 2
		}
		path = "/admin/keys/" + url.PathEscape(pos[0]) + "/revoke"
	default:
		fmt.Fprintf(stderr, "valet keys: unknown verb %q\n%s", verb, keysUsage)
		return 2
	}
	if verb != "revoke" && len(pos) != 0 {
		fmt.Fprintf(stderr, "valet keys %s: unexpected argument %q\n%s", verb, pos[0], keysUsage)
		return 2
	}
	if m := conn.missing(); len(m) > 0 {
		fmt.Fprintf(stderr, "valet keys %s: missing %s\n", verb, strings.Join(m, ", "))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var res struct {
		KID       string `json:"kid,omitempty"`
		Immediate bool   `json:"immediate,omitempty"`
		Revoked   string `json:"revoked,omitempty"`
		Rewrapped *int   `json:"rewrapped,omitempty"`
	}
	if err := conn.do(ctx, "POST", path, nil, &res); err != nil {
		fmt.Fprintf(stderr, "valet keys %s: %v\n", verb, err)
		return 1
	}
	if *conn.json {
		printJSON(stdout, res)
		return 0
	}
	switch verb {
	case "rotate":
		when := "after the publish lead time"
		if res.Immediate {
			when = "now"
		}
		fmt.Fprintf(stdout, "rotated: new key %s is in JWKS and signs %s\n", res.KID, when)
	case "revoke":
		fmt.Fprintf(stdout, "revoked key %s: out of JWKS, key.revoked published\n", res.Revoked)
	case "rewrap":
		n := 0
		if res.Rewrapped != nil {
			n = *res.Rewrapped
		}
		fmt.Fprintf(stdout, "rewrapped %d key(s) under the active key-encryption key\n", n)
	}
	return 0
}
