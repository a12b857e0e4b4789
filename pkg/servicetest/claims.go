package servicetest

import (
	"time"

	"github.com/valetauth/valet/pkg/token"
)

// AccessClaims returns the claims of a valid client-credentials access
// token of client for aud with scope, issued by iss now for five minutes
// with a fresh jti. kv are claim name, value pairs that override them, a
// nil value deleting the claim: a test starts from a token that passes and
// changes the one thing it is about.
func AccessClaims(iss, client, aud, scope string, kv ...any) map[string]any {
	now := time.Now().Unix()
	jti, _ := token.NewID()
	c := map[string]any{
		"iss": iss, "sub": client, "aud": aud, "exp": now + 300, "iat": now, "nbf": now,
		"jti": jti, "client_id": client, "scope": scope,
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}
