// Command valet is Valet's operator CLI (clients, keys, revocations, users)
// and, later, the all-in-one dev server. Today it checks configurations and
// revokes through the revocation service's admin API:
//
//	valet config check [--config FILE]   validate a configuration, listing every problem
//	valet config keys                    list every configuration key and its env override
//	valet revoke family|subject|client|token ...   see docs/revocation.md
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
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "revoke" {
		return runRevoke(args[1:], os.Getenv, stdout, stderr)
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
