// Command revocation runs Valet's revocation service.
package main

import (
	"context"
	"os"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/services/revocation"
)

func main() {
	os.Exit(boot.Main("revocation", os.Args[1:], func(ctx context.Context, env boot.Env) (boot.Runner, error) {
		return revocation.New(env.Config, revocation.Deps{Logger: env.Logger, Registry: env.Registry})
	}))
}
