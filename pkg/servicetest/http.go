package servicetest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Response is a service's answer as a client reads it: status, headers and
// the body, raw and decoded as a JSON object when it is one.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// Code returns the RFC 6749 §5.2 error member, or "" when there is none.
func (r Response) Code() string { return r.Str("error") }

// Str returns the string member k of the body, or "".
func (r Response) Str(k string) string { s, _ := r.Body[k].(string); return s }

// Bool returns the boolean member k of the body (false when absent), such
// as RFC 7662's active.
func (r Response) Bool(k string) bool { b, _ := r.Body[k].(bool); return b }

// Do sends req with the default client and reads the whole answer, failing
// t only when no answer came.
func Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := Response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// PostForm posts body as application/x-www-form-urlencoded, the encoding
// of every OAuth endpoint, to target with the headers given as name, value
// pairs; a pair with an empty value is left out, so that callers pass
// optional credentials or X-Forwarded-For as they are.
func PostForm(t testing.TB, target, body string, header ...string) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return Do(t, req)
}

// Basic returns an Authorization header value for client credentials, with
// both parts form-url-encoded first as RFC 6749 §2.3.1 requires.
func Basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(user)+":"+url.QueryEscape(pass)))
}

// ClientAuth returns the Authorization header value with which client
// authenticates by secret (RFC 6749 §2.3.1). With no secret it returns ""
// and names the client in form instead (client_id), as a public client
// does.
func ClientAuth(form url.Values, client, secret string) string {
	if secret == "" {
		form.Set("client_id", client)
		return ""
	}
	return Basic(client, secret)
}

// WantStatus fails t unless r has status and the error code code ("" for
// none): endpoint tests check both, as the RFCs define the pair.
func WantStatus(t testing.TB, what string, r Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Code() != code {
		t.Fatalf("%s: %d %q, want %d %q: %s", what, r.Status, r.Code(), status, code, r.Raw)
	}
}
