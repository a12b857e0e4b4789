// Package testenv starts the real services Valet's tests talk to: a redis-server
// process on a free port and an embedded NATS server with JetStream. Tests that
// claim to test storage or events use these, never mocks.
//
// When REDIS_URL or NATS_URL is set the shared server is used instead, and each
// test gets its own key prefix, stream prefix and subject prefix, so that
// packages running in parallel against one server never see each other's data.
//
// A missing redis-server binary fails the test with an install hint: a skipped
// test verifies nothing.
package testenv
