package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
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

// Service is the Runner of a service main: Serve (the service's Run) with
// background work beside it. Run starts Background, serves until ctx ends
// (draining in-flight requests), then stops the background work and calls
// Close, in that order, so nothing the server still uses is closed under it.
type Service struct {
	Serve      func(ctx context.Context) error
	Background []func(ctx context.Context)
	// Close releases NATS, Redis and the like; nil for nothing.
	Close func()
}

// Run implements Runner.
func (s *Service) Run(ctx context.Context) error {
	bctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range s.Background {
		wg.Go(func() { fn(bctx) })
	}
	err := s.Serve(ctx)
	cancel()
	wg.Wait()
	if s.Close != nil {
		s.Close()
	}
	return err
}
