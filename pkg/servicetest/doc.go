// Package servicetest stands up, for the tests of a Valet service, what the
// service's main builds around it, and talks to the running service the way
// its clients do. It is imported by tests only.
//
// An Env is the backbone every token service shares: a token store on a
// real redis-server, JetStream with the Valet streams (both from
// pkg/testenv, never mocks), a secret hasher and a running signing-key ring
// under one key-encryption key. Serve runs a service until the test ends;
// Go, Heartbeat, Checker and FollowClients run the background parts a main
// would. Response, PostForm, the Want checks, the CORS probes and Counter
// are how a test reads an answer; AccessClaims and Env.Mint make the tokens
// it sends, and ProxiedLimits puts a service behind a trusted proxy for the
// request-limit tests.
//
// What belongs here is what two or more services' tests do alike; fixtures
// and the wiring of one service stay in that service's helpers_test.go.
// The edge library pkg/edge must not import this package: it would pull
// Redis into gateways.
package servicetest
