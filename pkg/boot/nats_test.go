package boot_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/testenv"
)

// startRestrictedNATS starts a server whose only user may subscribe to
// _INBOX_x.> and nothing else, as deploy/nats/accounts.conf restricts each
// service to its own reply inboxes, and returns the user's URL.
func startRestrictedNATS(t *testing.T) string {
	t.Helper()
	srv := testenv.NATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*natsserver.User{{Username: "svc", Password: "pw", Permissions: &natsserver.Permissions{
			Subscribe: &natsserver.SubjectPermission{Allow: []string{"_INBOX_x.>"}},
		}}}})
	return fmt.Sprintf("nats://svc:pw@%s", srv.Addr())
}

// TestNATSChecksInboxPrefix: a service whose inbox prefix its NATS user may
// not subscribe to is refused at start with an error naming
// nats.inbox_prefix, instead of starting and timing out on every reply; the
// allowed prefix connects; a server that is down is not checked (the
// connection retries in the background, as before).
func TestNATSChecksInboxPrefix(t *testing.T) {
	url := startRestrictedNATS(t)
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"_INBOX_x", true},
		{"", false}, // NATS's own _INBOX
		{config.DefaultInboxPrefix, false},
		{"_INBOX_y", false},
	} {
		nc, err := boot.NATS(config.NATS{URL: url, InboxPrefix: tc.prefix}, "test")
		if tc.ok {
			if err != nil {
				t.Fatalf("prefix %q: %v", tc.prefix, err)
			}
			nc.Close()
			continue
		}
		if err == nil {
			nc.Close()
			t.Fatalf("prefix %q: connected, want an error naming nats.inbox_prefix", tc.prefix)
		}
		if !strings.Contains(err.Error(), "nats.inbox_prefix") {
			t.Fatalf("prefix %q: %v, want it to name nats.inbox_prefix", tc.prefix, err)
		}
	}

	// Nothing listens: the connection retries, unchecked.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "nats://" + l.Addr().String()
	_ = l.Close()
	nc, err := boot.NATS(config.NATS{URL: down, InboxPrefix: "_INBOX_y"}, "test")
	if err != nil {
		t.Fatalf("server down: %v, want a connection that retries", err)
	}
	nc.Close()
}
