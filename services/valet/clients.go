package main

// `valet clients ...`: the client registry through the issuer's admin API
// (docs/admin.md).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const clientsUsage = `usage:
  valet clients create CLIENT_ID [client flags]      register a client; a confidential client's secret is printed ONCE
  valet clients list                                 list every client
  valet clients get CLIENT_ID
  valet clients update CLIENT_ID [client flags] [--enable]   change the given fields (compare-and-set on the version)
  valet clients rotate-secret CLIENT_ID [--previous-ttl 24h]  new secret printed ONCE; the old one works until previous-ttl
  valet clients disable CLIENT_ID                    disable and revoke every token of the client (client.revoked)
  valet clients delete CLIENT_ID                     delete, and revoke every token of the client

client flags (lists are repeatable or comma-separated):
  --name NAME  --type confidential|public  --grant GRANT  --resource URI=SCOPE[,SCOPE...]
  --default-resource URI  --resource-id URI  --redirect-uri URI  --cors-origin ORIGIN
  --lifetime DURATION (access-token lifetime, 0 = the resource's)  --first-party
`

// clientJSON mirrors the admin API's client object (services/issuer
// ClientView); a service never imports another, so the CLI keeps its own.
type clientJSON struct {
	ID                  string              `json:"client_id"`
	Name                string              `json:"name,omitempty"`
	Type                string              `json:"type,omitempty"`
	GrantTypes          []string            `json:"grant_types"`
	RedirectURIs        []string            `json:"redirect_uris,omitempty"`
	Resources           map[string][]string `json:"resources,omitempty"`
	DefaultResource     string              `json:"default_resource,omitempty"`
	ResourceIDs         []string            `json:"resource_ids,omitempty"`
	AccessTokenLifetime int64               `json:"access_token_lifetime,omitempty"`
	CORSOrigins         []string            `json:"cors_origins,omitempty"`
	FirstParty          bool                `json:"first_party,omitempty"`
	Disabled            bool                `json:"disabled"`
	Secrets             []struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"secrets,omitempty"`
	Version      int64  `json:"version,omitempty"`
	Secret       string `json:"client_secret,omitempty"`
	EventPending bool   `json:"event_pending,omitempty"`
}

// clientFlags are the flags that set client fields.
type clientFlags struct {
	name, typ, defaultResource                   *string
	grants, resources, resourceIDs, redirs, cors listFlag
	lifetime                                     *time.Duration
	firstParty, enable                           *bool
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{
		name: fs.String("name", "", ""), typ: fs.String("type", "", ""), defaultResource: fs.String("default-resource", "", ""),
		lifetime: fs.Duration("lifetime", 0, ""), firstParty: fs.Bool("first-party", false, ""), enable: fs.Bool("enable", false, ""),
	}
	fs.Var(&f.grants, "grant", "")
	fs.Var(&f.redirs, "redirect-uri", "")
	fs.Var(&f.resourceIDs, "resource-id", "")
	fs.Var(&f.cors, "cors-origin", "")
	// --resource URI=a,b: the comma splits scopes, so it is not a listFlag.
	fs.Func("resource", "", func(v string) error { f.resources = append(f.resources, v); return nil })
	return f
}

// apply sets on c the fields whose flags were given.
func (f *clientFlags) apply(fs *flag.FlagSet, c *clientJSON) error {
	if isSet(fs, "name") {
		c.Name = *f.name
	}
	if isSet(fs, "type") {
		c.Type = *f.typ
	}
	if isSet(fs, "grant") {
		c.GrantTypes = f.grants
	}
	if isSet(fs, "redirect-uri") {
		c.RedirectURIs = f.redirs
	}
	if isSet(fs, "resource-id") {
		c.ResourceIDs = f.resourceIDs
	}
	if isSet(fs, "cors-origin") {
		c.CORSOrigins = f.cors
	}
	if isSet(fs, "resource") {
		c.Resources = map[string][]string{}
		for _, r := range f.resources {
			uri, scopes, _ := strings.Cut(r, "=")
			if uri == "" {
				return fmt.Errorf("--resource %q: want URI=SCOPE[,SCOPE...]", r)
			}
			var l listFlag
			_ = l.Set(scopes)
			c.Resources[uri] = append([]string{}, l...)
		}
	}
	if isSet(fs, "default-resource") {
		c.DefaultResource = *f.defaultResource
	}
	if isSet(fs, "lifetime") {
		if *f.lifetime < 0 || *f.lifetime%time.Second != 0 {
			return fmt.Errorf("--lifetime must be a whole number of seconds, not %s", *f.lifetime)
		}
		c.AccessTokenLifetime = int64(*f.lifetime / time.Second)
	}
	if isSet(fs, "first-party") {
		c.FirstParty = *f.firstParty
	}
	if *f.enable {
		c.Disabled = false
	}
	return nil
}

// runClients runs `valet clients VERB ...` and returns the exit code: 0
// done, 1 refused or failed, 2 usage.
func runClients(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientsUsage+adminFlagsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("valet clients "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conn := addAdminFlags(fs, getenv)
	cf := addClientFlags(fs)
	prevTTL := fs.String("previous-ttl", "", "")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "valet clients %s: %v\n%s", verb, err, clientsUsage)
		return 2
	}
	wantPos := 1
	switch verb {
	case "list":
		wantPos = 0
	case "create", "get", "update", "rotate-secret", "disable", "delete":
	default:
		fmt.Fprintf(stderr, "valet clients: unknown verb %q\n%s", verb, clientsUsage)
		return 2
	}
	if len(pos) != wantPos {
		fmt.Fprintf(stderr, "valet clients %s: want %d CLIENT_ID argument(s), got %d\n%s", verb, wantPos, len(pos), clientsUsage)
		return 2
	}
	if m := conn.missing(); len(m) > 0 {
		fmt.Fprintf(stderr, "valet clients %s: missing %s\n", verb, strings.Join(m, ", "))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "valet clients %s: %v\n", verb, err)
		return 1
	}
	var path string
	if wantPos == 1 {
		path = "/admin/clients/" + url.PathEscape(pos[0])
	}
	var out clientJSON
	switch verb {
	case "list":
		var res struct {
			Clients []clientJSON `json:"clients"`
		}
		if err := conn.do(ctx, "GET", "/admin/clients", nil, &res); err != nil {
			return fail(err)
		}
		if *conn.json {
			printJSON(stdout, res)
			return 0
		}
		printClients(stdout, res.Clients)
		return 0
	case "get":
		if err := conn.do(ctx, "GET", path, nil, &out); err != nil {
			return fail(err)
		}
	case "create":
		in := clientJSON{ID: pos[0]}
		if err := cf.apply(fs, &in); err != nil {
			fmt.Fprintf(stderr, "valet clients create: %v\n", err)
			return 2
		}
		if err := conn.do(ctx, "POST", "/admin/clients", in, &out); err != nil {
			return fail(err)
		}
	case "update":
		var cur clientJSON
		if err := conn.do(ctx, "GET", path, nil, &cur); err != nil {
			return fail(err)
		}
		if err := cf.apply(fs, &cur); err != nil {
			fmt.Fprintf(stderr, "valet clients update: %v\n", err)
			return 2
		}
		cur.Secrets = nil
		if err := conn.do(ctx, "PUT", path, cur, &out); err != nil {
			return fail(err)
		}
	case "rotate-secret":
		body := map[string]any{}
		if *prevTTL != "" {
			body["previous_ttl"] = *prevTTL
		}
		if err := conn.do(ctx, "POST", path+"/secret", body, &out); err != nil {
			return fail(err)
		}
	case "disable":
		if err := conn.do(ctx, "POST", path+"/disable", nil, &out); err != nil {
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
			fmt.Fprintf(stdout, "deleted client %s; its tokens are revoked\n", pos[0])
		}
		return 0
	}
	if out.EventPending {
		fmt.Fprintln(stderr, "warning: the change is stored but its event is not yet published; other issuer replicas may serve the previous registration for a few minutes")
	}
	if *conn.json {
		printJSON(stdout, out)
		return 0
	}
	printClient(stdout, out)
	if out.Secret != "" {
		fmt.Fprintf(stdout, "\nclient_secret: %s\nThis secret is shown once and stored only as a hash: keep it now.\n", out.Secret)
	}
	return 0
}

func printClients(w io.Writer, cs []clientJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tGRANTS\tRESOURCES\tDISABLED\tVERSION")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%d\n", c.ID, c.Type, strings.Join(c.GrantTypes, ","), resourceList(c.Resources), c.Disabled, c.Version)
	}
	_ = tw.Flush()
}

func resourceList(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Join(m[k], ","))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func printClient(w io.Writer, c clientJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("client_id", c.ID)
	row("name", c.Name)
	row("type", c.Type)
	row("grant_types", strings.Join(c.GrantTypes, ","))
	row("resources", resourceList(c.Resources))
	row("default_resource", c.DefaultResource)
	row("resource_ids", strings.Join(c.ResourceIDs, ","))
	row("redirect_uris", strings.Join(c.RedirectURIs, ","))
	row("cors_origins", strings.Join(c.CORSOrigins, ","))
	if c.AccessTokenLifetime > 0 {
		row("access_token_lifetime", (time.Duration(c.AccessTokenLifetime) * time.Second).String())
	}
	row("first_party", fmt.Sprint(c.FirstParty))
	row("disabled", fmt.Sprint(c.Disabled))
	for _, s := range c.Secrets {
		exp := "never"
		if !s.ExpiresAt.IsZero() {
			exp = s.ExpiresAt.UTC().Format(time.RFC3339)
		}
		row("secret", fmt.Sprintf("%s (created %s, expires %s)", s.ID, s.CreatedAt.UTC().Format(time.RFC3339), exp))
	}
	row("version", fmt.Sprint(c.Version))
	_ = tw.Flush()
}
