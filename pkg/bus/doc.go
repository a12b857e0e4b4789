// Package bus is Valet's one JetStream implementation: it declares the three
// streams (revocations, keys, audit), publishes events and waits for the
// stream's acknowledgement before a caller may answer 200, and consumes a
// stream in order into a projection — resuming after reconnects and server
// restarts without losing or re-applying an event, and turning stale rather
// than skipping an event it cannot apply.
//
// Services and gateways (through pkg/edge) share it, so it depends on nothing
// but the standard library, events and nats.go: logging and metrics are hooks
// (func options), never a logging or metrics library.
//
// Every type depends on a narrow role interface of jetstream.JetStream
// (StreamManager, AckPublisher, OrderedConsumers), which a jetstream.JetStream
// satisfies.
//
// docs/streams.md describes the streams, their retention and why, the
// consumer's guarantees and the measured figures.
package bus
