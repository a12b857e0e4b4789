package main

// `valet resources ...`: the resource-server registry (RFC 8707 resource
// indicators, the tokens' aud) through the issuer's admin API
// (docs/admin.md).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const resourcesUsage = `usage:
  valet resources create URI --scope SCOPE[,SCOPE...] [--name NAME] [--lifetime DURATION]
  valet resources list
  valet resources get URI
  valet resources update URI [--scope ...] [--name NAME] [--lifetime DURATION]   (compare-and-set on the version)
  valet resources delete URI
`

// resourceJSON mirrors the admin API's resource-server object.
type resourceJSON struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name,omitempty"`
	Scopes              []string `json:"scopes"`
	AccessTokenLifetime int64    `json:"access_token_lifetime,omitempty"`
	Version             int64    `json:"version,omitempty"`
}

// runResources runs `valet resources VERB ...`: 0 done, 1 refused or
// failed, 2 usage.
func runResources(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, resourcesUsage+adminFlagsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("valet resources "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conn := addAdminFlags(fs, getenv)
	var scopes listFlag
	fs.Var(&scopes, "scope", "")
	name := fs.String("name", "", "")
	life := fs.Duration("lifetime", 0, "")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "valet resources %s: %v\n%s", verb, err, resourcesUsage)
		return 2
	}
	wantPos := 1
	switch verb {
	case "list":
		wantPos = 0
	case "create", "get", "update", "delete":
	default:
		fmt.Fprintf(stderr, "valet resources: unknown verb %q\n%s", verb, resourcesUsage)
		return 2
	}
	if len(pos) != wantPos {
		fmt.Fprintf(stderr, "valet resources %s: want %d URI argument(s), got %d\n%s", verb, wantPos, len(pos), resourcesUsage)
		return 2
	}
	if *life < 0 || *life%time.Second != 0 {
		fmt.Fprintf(stderr, "valet resources %s: --lifetime must be a whole number of seconds\n", verb)
		return 2
	}
	if m := conn.missing(); len(m) > 0 {
		fmt.Fprintf(stderr, "valet resources %s: missing %s\n", verb, strings.Join(m, ", "))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "valet resources %s: %v\n", verb, err)
		return 1
	}
	var path string
	if wantPos == 1 {
		path = "/admin/resource-servers/" + url.PathEscape(pos[0])
	}
	apply := func(r *resourceJSON) {
		if isSet(fs, "scope") {
			r.Scopes = scopes
		}
		if isSet(fs, "name") {
			r.Name = *name
		}
		if isSet(fs, "lifetime") {
			r.AccessTokenLifetime = int64(*life / time.Second)
		}
	}
	var out resourceJSON
	switch verb {
	case "list":
		var res struct {
			ResourceServers []resourceJSON `json:"resource_servers"`
		}
		if err := conn.do(ctx, "GET", "/admin/resource-servers", nil, &res); err != nil {
			return fail(err)
		}
		if *conn.json {
			printJSON(stdout, res)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tLIFETIME\tVERSION")
		for _, r := range res.ResourceServers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.ID, dash(r.Name), dash(strings.Join(r.Scopes, ",")), lifetime(r.AccessTokenLifetime), r.Version)
		}
		_ = tw.Flush()
		return 0
	case "get":
		if err := conn.do(ctx, "GET", path, nil, &out); err != nil {
			return fail(err)
		}
	case "create":
		in := resourceJSON{ID: pos[0], Scopes: []string{}}
		apply(&in)
		if err := conn.do(ctx, "POST", "/admin/resource-servers", in, &out); err != nil {
			return fail(err)
		}
	case "update":
		var cur resourceJSON
		if err := conn.do(ctx, "GET", path, nil, &cur); err != nil {
			return fail(err)
		}
		apply(&cur)
		if err := conn.do(ctx, "PUT", path, cur, &out); err != nil {
			return fail(err)
		}
	case "delete":
		var res map[string]any
		if err := conn.do(ctx, "DELETE", path, nil, &res); err != nil {
			return fail(err)
		}
		if *conn.json {
			printJSON(stdout, res)
		} else {
			fmt.Fprintf(stdout, "deleted resource server %s\n", pos[0])
		}
		return 0
	}
	if *conn.json {
		printJSON(stdout, out)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nname\t%s\nscopes\t%s\naccess_token_lifetime\t%s\nversion\t%d\n",
		out.ID, dash(out.Name), dash(strings.Join(out.Scopes, ",")), lifetime(out.AccessTokenLifetime), out.Version)
	_ = tw.Flush()
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lifetime(secs int64) string {
	if secs == 0 {
		return "default"
	}
	return (time.Duration(secs) * time.Second).String()
}
