// Command introspection runs Valet's introspection service.
package main

import (
	"context"
	"os"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/services/introspection"
)

func main() {
	os.Exit(boot.Main("introspection", os.Args[1:], func(ctx context.Context, env boot.Env) (boot.Runner, error) {
		return introspection.New(env.Config, introspection.Deps{Logger: env.Logger, Registry: env.Registry})
	}))
}
