// Package revocation is Valet's RFC 7009 revocation service and the admin
// revocation API (by family, subject, client and jti).
package revocation
