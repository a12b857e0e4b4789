// Package events is Valet's event contract: the versioned envelope and the typed
// payloads every service publishes on the JetStream streams, the subjects they
// go to, and the decoder every consumer (services, edges, gateways) uses.
//
// It imports only the standard library, so a gateway can depend on it cheaply,
// and it does no I/O: publishing and consuming live in pkg/bus.
//
// Compatibility policy (docs/events.md): added fields are tolerated by every
// consumer; an event a consumer cannot decode — an unknown type, an unknown
// major schema version, or a payload missing what the type requires — is an
// error, never silently skipped, and makes that consumer stale so that it fails
// closed. Upgrade consumers before producers.
package events
