// Package edge is the reference forward-auth authorizer built on pkg/edge,
// for Envoy ext_authz, NGINX auth_request and Traefik forwardAuth.
package edge
