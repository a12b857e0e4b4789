// Command edge runs Valet's edge service.
package main

import (
	"context"
	"os"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/services/edge"
)

func main() {
	os.Exit(boot.Main("edge", os.Args[1:], func(ctx context.Context, env boot.Env) (boot.Runner, error) {
		return edge.New(env.Config, edge.Deps{Logger: env.Logger, Registry: env.Registry})
	}))
}
