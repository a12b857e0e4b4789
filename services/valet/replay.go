package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/revoke"
)

const replayUsage = `usage: valet replay [--config FILE] [--since DURATION]

Rebuilds the Redis deny state (revoked jtis, families, subject and client
cut-offs) from the revocation stream, e.g. after Redis lost its data. It reads
redis.* and nats.* from the configuration, replays every revocation of the
last --since (default: the stream's retention) and returns once caught up.
Replaying onto a Redis that still holds some state is safe: revocations are
idempotent and cut-offs never move backwards.
`

// runReplay is `valet replay`.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("valet replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "")
	since := fs.Duration("since", 0, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprint(stderr, replayUsage)
		return 2
	}
	cfg, err := config.Load(boot.ConfigPath(*path), nil)
	if err != nil {
		fmt.Fprintf(stderr, "valet replay: configuration refused:\n%v\n", err)
		return 2
	}
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		fmt.Fprintln(stderr, "valet replay: redis.url and nats.url are required (valet dev keeps its own state in its data directory)")
		return 2
	}
	window := cfg.StreamRetention()
	if *since > 0 {
		window = *since
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stats, err := replay(ctx, cfg, time.Now().Add(-window))
	if err != nil {
		fmt.Fprintf(stderr, "valet replay: %v\n", err)
		return 1
	}
	types := make([]string, 0, len(stats.Applied))
	total := 0
	for t, n := range stats.Applied {
		types = append(types, fmt.Sprintf("%s=%d", t, n))
		total += n
	}
	sort.Strings(types)
	fmt.Fprintf(stdout, "replayed %d revocations up to stream sequence %d %v (%d other events skipped)\n", total, stats.LastSeq, types, stats.Skipped)
	return 0
}

func replay(ctx context.Context, cfg *config.Config, since time.Time) (revoke.ReplayStats, error) {
	log := zap.NewNop()
	active, keks, err := boot.StandaloneKEKs(cfg, log, "valet replay")
	if err != nil {
		return revoke.ReplayStats{}, err
	}
	aead, err := boot.SuccessorAEAD(keks[active])
	if err != nil {
		return revoke.ReplayStats{}, err
	}
	st, err := boot.Store(ctx, cfg, aead, log)
	if err != nil {
		return revoke.ReplayStats{}, err
	}
	defer st.Close()
	nc, js, err := boot.JetStream(ctx, cfg, "valet-replay")
	if err != nil {
		return revoke.ReplayStats{}, err
	}
	defer nc.Close()
	stream := bus.StreamName(cfg.NATS.SubjectPrefix, events.StreamRevocations)
	return revoke.ReplayStream(ctx, js, stream, st, cfg.Tokens.ReplayWindow(), since)
}
