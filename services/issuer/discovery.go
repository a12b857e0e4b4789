package issuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
)

// metadataMaxAge is the Cache-Control max-age of the discovery document: it
// changes only with a deployment.
const metadataMaxAge = 300

// metadata is the authorization server metadata (RFC 8414 §2). It states
// only what is implemented: members for /authorize (response types, RFC 9207
// iss) appear once it exists, and OpenID Connect members never appear before
// OIDC does.
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	// ResponseTypesSupported is REQUIRED by RFC 8414 §2; empty until
	// /authorize exists.
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	// DeviceAuthorizationEndpoint is RFC 8628 §4's, set with the device grant.
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`
}

// discovery serves the metadata document and JWKS.
type discovery struct {
	doc       []byte
	issuerDir string
	keys      Keys
}

func newDiscovery(cfg *config.Config, k Keys, grants []string) (*discovery, error) {
	methods := clientauth.Methods()
	confidential := []string{string(clientauth.MethodBasic), string(clientauth.MethodPost)}
	m := metadata{
		Issuer:                            cfg.Issuer,
		TokenEndpoint:                     cfg.Services.Issuer.URL(tokenPath),
		JWKSURI:                           cfg.Services.Issuer.URL(jwksPath),
		IntrospectionEndpoint:             cfg.Services.Introspection.URL("/introspect"),
		RevocationEndpoint:                cfg.Services.Revocation.URL("/revoke"),
		ResponseTypesSupported:            []string{},
		GrantTypesSupported:               grants,
		TokenEndpointAuthMethodsSupported: methods,
		// Introspection is for resource servers, which are confidential;
		// revocation also serves public clients (RFC 7009 §2.1).
		IntrospectionEndpointAuthMethodsSupported: confidential,
		RevocationEndpointAuthMethodsSupported:    methods,
		CodeChallengeMethodsSupported:             []string{"S256"},
	}
	if slices.Contains(grants, grantAuthorizationCode) {
		// /authorize exists: code only (RFC 9700 §2.1.2), RFC 9207 iss.
		m.AuthorizationEndpoint = cfg.Services.Issuer.URL(authorizePath)
		m.ResponseTypesSupported = []string{"code"}
		m.AuthorizationResponseIssParameterSupported = true
	}
	if slices.Contains(grants, grantDeviceCode) {
		m.DeviceAuthorizationEndpoint = cfg.Services.Issuer.URL(deviceAuthorizationPath)
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("issuer: encode metadata: %w", err)
	}
	p, err := issuerPath(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	return &discovery{doc: doc, issuerDir: p, keys: k}, nil
}

// paths returns where the metadata is served: the well-known path, and for
// an issuer with a path component also the well-known path with the issuer's
// path appended (RFC 8414 §3.1).
func (d *discovery) paths() []string {
	if d.issuerDir == "" {
		return []string{wellKnownPath}
	}
	return []string{wellKnownPath, wellKnownPath + d.issuerDir}
}

// metadata serves the RFC 8414 §3.2 response.
func (d *discovery) metadata(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(metadataMaxAge))
	c.Response().WriteHeader(http.StatusOK)
	_, err := c.Response().Write(d.doc)
	return err
}

// jwks serves the public signing keys (RFC 7517 §5) with a max-age that lets
// a cache learn a new key before it signs (docs/keys.md). A replica whose key
// view is too old answers 503 rather than serve a set that may still hold a
// revoked key.
func (d *discovery) jwks(c echo.Context) error {
	set, err := d.keys.JWKS()
	if err != nil {
		oautherr.Write(c.Response(), oautherr.ErrTemporarilyUnavailable.
			WithDescription("The signing keys are temporarily unavailable.").
			WithRetryAfter(retryAfter).WithCause(err))
		return nil
	}
	h := c.Response().Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.keys.MaxAge().Seconds())))
	c.Response().WriteHeader(http.StatusOK)
	_, err = c.Response().Write(set)
	return err
}
