package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
)

// Env is what a service's main hands its constructor: the validated
// configuration, a logger and the metrics registry.
type Env struct {
	Config   *config.Config
	Logger   *zap.Logger
	Registry *prometheus.Registry
}

// Runner is a built service.
type Runner interface {
	// Run serves until ctx ends, then shuts down gracefully.
	Run(ctx context.Context) error
}

// Main is the body of every service's main: it parses --config, loads and
// validates the configuration (refusing unsafe settings with every problem
// listed), builds the logger and registry, calls build, and runs the result
// until SIGINT or SIGTERM. It returns the process exit code.
func Main(service string, args []string, build func(ctx context.Context, env Env) (Runner, error)) int {
	fs := flag.NewFlagSet(service, flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (default: $"+config.FileEnv+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(ConfigPath(*path), nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration refused:\n%v\n", service, err)
		return 2
	}
	log, err := NewLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("service", service))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := build(ctx, Env{Config: cfg, Logger: log, Registry: reg})
	if err != nil {
		log.Error("start failed", zap.Error(err))
		return 1
	}
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with error", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}
