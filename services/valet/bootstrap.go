package main

// `valet bootstrap check`: validates the configuration's declarative
// bootstrap section and reads every reference it names (env:NAME, file:/path)
// exactly as the issuer does at start, without opening any store, so that a
// missing secret is found before a rollout rather than by a replica that
// refuses to start (docs/bootstrap.md).

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/config"
)

const bootstrapUsage = `usage:
  valet bootstrap check [--config FILE]   validate the bootstrap section and read its references
                                          (env:NAME, file:/path) as the issuer does; no store is touched
`

// runBootstrap runs `valet bootstrap ...` with the environment read
// through getenv: 0 the section is valid and every reference resolves, 1 it
// is refused (every problem printed, each naming its key), 2 usage.
func runBootstrap(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, bootstrapUsage)
		return 2
	}
	fs := flag.NewFlagSet("valet bootstrap check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bootstrapUsage) }
	path := fs.String("config", "", "configuration file (default: $"+config.FileEnv+")")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "valet bootstrap check: unexpected argument %q\n%s", fs.Arg(0), bootstrapUsage)
		return 2
	}
	if *path == "" {
		*path = getenv(config.FileEnv)
	}
	lookup := func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
	cfg, err := config.Load(*path, lookup)
	if err != nil {
		fmt.Fprintf(stderr, "configuration refused:\n%v\n", err)
		return 1
	}
	name := *path
	if name == "" {
		name = "(defaults and environment)"
	}
	if cfg.Bootstrap.Empty() {
		fmt.Fprintf(stdout, "bootstrap ok: %s declares nothing\n", name)
		return 0
	}
	spec, err := bootstrap.Resolve(cfg, lookup)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap refused:\n%v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "bootstrap ok: %s\n", name)
	printSpec(stdout, spec)
	return 0
}

// printSpec lists the declared records with where each credential comes
// from; never a secret, a password or a hash.
func printSpec(w io.Writer, spec bootstrap.Spec) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tDECLARED AT\tCREDENTIALS")
	for _, r := range spec.ResourceServers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t-\n", bootstrap.KindResourceServer, r.ID, r.Key)
	}
	for _, c := range spec.Clients {
		creds := "-"
		if len(c.Secrets) > 0 {
			var src []string
			for _, s := range c.Secrets {
				src = append(src, s.Source)
			}
			creds = "secret from " + strings.Join(src, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", bootstrap.KindClient, c.ID, c.Key, creds)
	}
	for _, u := range spec.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\tpassword from %s\n", bootstrap.KindUser, u.Username, u.Key, u.Password.Source)
	}
	_ = tw.Flush()
}
