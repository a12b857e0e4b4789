package bus_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

func TestStreamsConfigValidate(t *testing.T) {
	valid := bus.StreamsConfig{MaxAccessTokenLifetime: time.Hour}
	tests := []struct {
		name    string
		mutate  func(*bus.StreamsConfig)
		wantErr string
	}{
		{"defaults", func(*bus.StreamsConfig) {}, ""},
		{"missing token lifetime", func(c *bus.StreamsConfig) { c.MaxAccessTokenLifetime = 0 }, "MaxAccessTokenLifetime"},
		{"prefix with a dot", func(c *bus.StreamsConfig) { c.Prefix = "a.b" }, "prefix"},
		{"negative margin", func(c *bus.StreamsConfig) { c.RetentionMargin = -time.Second }, "RetentionMargin"},
		{"negative max bytes", func(c *bus.StreamsConfig) { c.RevocationsMaxBytes = -1 }, "RevocationsMaxBytes"},
		{"six replicas", func(c *bus.StreamsConfig) { c.Replicas = 6 }, "Replicas"},
		{"five replicas", func(c *bus.StreamsConfig) { c.Replicas = 5 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestStreamName(t *testing.T) {
	tests := []struct {
		prefix string
		stream events.Stream
		want   string
	}{
		{"valet", events.StreamRevocations, "VALET_REVOCATIONS"},
		{"valet", events.StreamKeys, "VALET_KEYS"},
		{"valet", events.StreamAudit, "VALET_AUDIT"},
		{"t1a2b3c", events.StreamRevocations, "T1A2B3C_REVOCATIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := bus.StreamName(tt.prefix, tt.stream); got != tt.want {
				t.Fatalf("StreamName(%q, %d) = %q, want %q", tt.prefix, tt.stream, got, tt.want)
			}
		})
	}
}

func TestEnsureStreamsDeclaresRetention(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{MaxAccessTokenLifetime: 2 * time.Hour, RetentionMargin: 30 * time.Minute})
	tests := []struct {
		name   string
		stream events.Stream
		check  func(t *testing.T, c jetstream.StreamConfig)
	}{
		{"revocations keep every event for the token lifetime plus margin", events.StreamRevocations, func(t *testing.T, c jetstream.StreamConfig) {
			if c.MaxAge != 150*time.Minute {
				t.Errorf("MaxAge = %s, want 2h30m", c.MaxAge)
			}
			if c.Discard != jetstream.DiscardNew {
				t.Errorf("Discard = %v, want DiscardNew", c.Discard)
			}
			if c.MaxBytes != -1 || c.MaxMsgs != -1 || c.MaxMsgsPerSubject != -1 {
				t.Errorf("limits MaxBytes=%d MaxMsgs=%d MaxMsgsPerSubject=%d, want none", c.MaxBytes, c.MaxMsgs, c.MaxMsgsPerSubject)
			}
			if c.Duplicates != bus.DefaultDuplicates {
				t.Errorf("Duplicates = %s, want %s", c.Duplicates, bus.DefaultDuplicates)
			}
		}},
		{"keys keep the latest event per kid without age limit", events.StreamKeys, func(t *testing.T, c jetstream.StreamConfig) {
			if c.MaxMsgsPerSubject != 1 || c.Discard != jetstream.DiscardOld {
				t.Errorf("MaxMsgsPerSubject=%d Discard=%v, want 1 and DiscardOld", c.MaxMsgsPerSubject, c.Discard)
			}
			if c.MaxAge != 0 || c.MaxBytes != -1 || c.MaxMsgs != -1 {
				t.Errorf("MaxAge=%s MaxBytes=%d MaxMsgs=%d, want no limit", c.MaxAge, c.MaxBytes, c.MaxMsgs)
			}
		}},
		{"audit ages out after a week", events.StreamAudit, func(t *testing.T, c jetstream.StreamConfig) {
			if c.MaxAge != bus.DefaultAuditMaxAge || c.Discard != jetstream.DiscardOld {
				t.Errorf("MaxAge=%s Discard=%v, want %s and DiscardOld", c.MaxAge, c.Discard, bus.DefaultAuditMaxAge)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.streamInfo(t, tt.stream).Config
			if c.Storage != jetstream.FileStorage {
				t.Errorf("Storage = %v, want file", c.Storage)
			}
			if c.Replicas != 1 {
				t.Errorf("Replicas = %d, want 1", c.Replicas)
			}
			if want := events.StreamSubjects(e.cfg.Prefix, tt.stream); !slices.Equal(c.Subjects, want) {
				t.Errorf("Subjects = %v, want %v", c.Subjects, want)
			}
			tt.check(t, c)
		})
	}
}

func TestEnsureStreamsIsIdempotentAndUpdates(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	e.publish(t, revocation(t, "kept"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := bus.EnsureStreams(ctx, e.js, e.cfg); err != nil {
		t.Fatalf("EnsureStreams again: %v", err)
	}
	longer := e.cfg
	longer.MaxAccessTokenLifetime = 24 * time.Hour
	if err := bus.EnsureStreams(ctx, e.js, longer); err != nil {
		t.Fatalf("EnsureStreams with a longer lifetime: %v", err)
	}
	info := e.streamInfo(t, events.StreamRevocations)
	if info.Config.MaxAge != 25*time.Hour {
		t.Errorf("MaxAge after update = %s, want 25h", info.Config.MaxAge)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after re-declaring, want 1", info.State.Msgs)
	}
}
