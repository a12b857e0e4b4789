// Package introspection is Valet's RFC 7662 token introspection service.
package introspection
