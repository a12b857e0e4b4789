// Command valet is Valet's operator CLI (clients, resources, keys, users,
// revocations, configuration) and the all-in-one dev server. The registry,
// key and user verbs are thin clients of the issuer's admin API, the
// revocations of the revocation service's:
//
//	valet config check [--config FILE]   validate a configuration, listing every problem
//	valet config keys                    list every configuration key and its env override
//	valet revoke family|subject|client|token ...   see docs/revocation.md
//	valet clients|resources|keys ...              the issuer's admin API, see docs/admin.md
//	valet users add|list|get|passwd|disable|enable ...   the login page's users, see docs/users.md
//	valet replay [--config FILE]                   rebuild Redis deny state from the stream
//	valet hash-secret                              the unkeyed hash of a secret read from stdin
//	valet bootstrap check [--config FILE]          validate the declarative bootstrap section
//	valet dev [--data DIR]                         the whole system in one process (README)
package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/config"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  valet config check [--config FILE]   validate a configuration (file, then VALET_* overrides)
  valet config keys                    list every configuration key with its env variable and default
  valet revoke family|subject|client|token ...   revoke through the admin API (valet revoke for help)
  valet clients create|list|get|update|rotate-secret|disable|delete ...   the client registry (valet clients for help)
  valet resources create|list|get|update|delete ...   the resource-server registry (valet resources for help)
  valet keys rotate [--immediate]|revoke KID|rewrap   signing-key operations (valet keys for help)
  valet users add|list|get|passwd|disable|enable ...   the login page's users; passwords from stdin (valet users for help)
  valet replay [--config FILE] [--since DURATION]   rebuild Redis deny state from the revocation stream
  valet hash-secret < FILE             print the unkeyed stored hash of the secret on stdin
  valet bootstrap check [--config FILE]   validate the bootstrap section and read its references (no store touched)
  valet dev [--data DIR]               run everything in one process (valet dev --help)
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "dev" {
		return runDev(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "revoke" {
		return runRevoke(args[1:], os.Getenv, stdout, stderr)
	}
	if len(args) > 0 {
		switch args[0] {
		case "clients":
			return runClients(args[1:], os.Getenv, stdout, stderr)
		case "resources":
			return runResources(args[1:], os.Getenv, stdout, stderr)
		case "keys":
			return runKeys(args[1:], os.Getenv, stdout, stderr)
		case "users":
			return runUsers(args[1:], os.Getenv, os.Stdin, stdout, stderr)
		case "bootstrap":
			return runBootstrap(args[1:], os.Getenv, stdout, stderr)
		case "hash-secret":
			return runHashSecret(args[1:], os.Stdin, stdout, stderr)
		}
	}
	if len(args) < 2 || args[0] != "config" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[1] {
	case "check":
		path := ""
		rest := args[2:]
		for i := 0; i < len(rest); i++ {
			switch {
			case rest[i] == "--config" && i+1 < len(rest):
				path = rest[i+1]
				i++
			case len(rest[i]) > 9 && rest[i][:9] == "--config=":
				path = rest[i][9:]
			default:
				fmt.Fprintf(stderr, "valet config check: unexpected argument %q\n%s", rest[i], usage)
				return 2
			}
		}
		path = boot.ConfigPath(path)
		if _, err := config.Load(path, nil); err != nil {
			fmt.Fprintf(stderr, "configuration refused:\n%v\n", err)
			return 1
		}
		if path == "" {
			path = "(defaults and environment)"
		}
		fmt.Fprintf(stdout, "configuration ok: %s\n", path)
		return 0
	case "keys":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tENV\tTYPE\tDEFAULT")
		for _, k := range config.Keys() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Path, k.Env, k.Type, k.Default)
		}
		_ = tw.Flush()
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}
