// Command issuer runs Valet's issuer service.
package main

import (
	"context"
	"os"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/services/issuer"
)

func main() {
	os.Exit(boot.Main("issuer", os.Args[1:], func(ctx context.Context, env boot.Env) (boot.Runner, error) {
		return issuer.New(env.Config, issuer.Deps{Logger: env.Logger, Registry: env.Registry})
	}))
}
