package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsServer is the embedded NATS server of valet dev.
type natsServer = *natsserver.Server

// startNATS starts an embedded NATS server with JetStream, its file store
// under dir, listening on 127.0.0.1:port (the services connect in-process;
// the port is for tools such as the nats CLI). A busy port, or -1, takes a
// random free one, so a NATS already on 4222 or 14222 is left alone.
func startNATS(dir string, port int) (natsServer, error) {
	if port < 0 || !portFree(port) {
		port = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "valet-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		// Bounds of a laptop run: the streams hold a day of events at most.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  4 << 30,
		NoLog:              true,
		NoSigs:             true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS: not ready after 30s")
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS: JetStream did not start (store %s)", dir)
	}
	return ns, nil
}

// portFree reports whether 127.0.0.1:port can be listened on now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
