package issuer

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/server"
)

// Deps are the service's dependencies, built by its main or by the
// all-in-one dev server.
type Deps struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Ready lists what /readyz checks (Redis, NATS, ...).
	Ready []server.Check
}

// Service is one running issuer.
type Service struct {
	srv *server.Server
}

// New builds the service from a validated configuration.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if cfg == nil || deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("issuer: config, logger and registry are required")
	}
	sc := cfg.Services.Issuer
	srv, err := server.New(server.Options{
		Service:        "issuer",
		PublicAddr:     sc.Listen,
		AdminAddr:      sc.AdminListen,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		RequestTimeout: cfg.Limits.RequestTimeout,
		Logger:         deps.Logger,
		Registry:       deps.Registry,
		Ready:          deps.Ready,
	})
	if err != nil {
		return nil, err
	}
	return &Service{srv: srv}, nil
}

// Server returns the listeners, for tests and for hosts that add routes.
func (s *Service) Server() *server.Server { return s.srv }

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.srv.Run(ctx) }
