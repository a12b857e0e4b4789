package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
)

// Reverse-proxy mode (services.edge.upstream, docs/gateway.md "Reverse-proxy
// mode"): every public request outside the forward-auth paths and the
// health probes is authorized exactly as forward auth would authorize it
// (authorizer.authorize) and, when accepted, passed to the upstream with
// the identity headers. Nothing but the decision is new here: the denials
// are forward auth's, byte for byte.

// Upstream connection bounds. The response-header timeout is
// limits.request_timeout; nothing bounds a response body once its headers
// have arrived, so that streams and WebSockets last as long as both ends
// keep them.
const (
	upstreamDialTimeout = 5 * time.Second
	upstreamIdleConns   = 64
	upstreamIdleTimeout = 90 * time.Second
)

// proxy is the reverse-proxy handler.
type proxy struct {
	a *authorizer
	// upstream receives accepted requests, identity headers set: an
	// *httputil.ReverseProxy, or Deps.Upstream behind inProcess.
	upstream http.Handler
}

// newProxy returns the reverse proxy for deps.Upstream when set, else for
// the URL cfg.Services.Edge.Upstream, and a description of the upstream for
// the log.
func newProxy(cfg *config.Config, deps Deps, a *authorizer, met *upstreamMetrics, log *zap.Logger) (*proxy, string, error) {
	trusted, err := cfg.Limits.TrustedProxyPrefixes()
	if err != nil {
		return nil, "", fmt.Errorf("edge: limits.trusted_proxies: %w", err)
	}
	fw := forwarder{trusted: trusted}
	if deps.Upstream != nil {
		return &proxy{a: a, upstream: &inProcess{h: deps.Upstream, fw: fw, met: met}}, "an in-process handler", nil
	}
	target, err := upstreamURL(cfg.Services.Edge.Upstream)
	if err != nil {
		return nil, "", err
	}
	headerTimeout := cfg.Limits.RequestTimeout
	if headerTimeout <= 0 {
		headerTimeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			out, in := pr.Out.Header, pr.In.Header
			// Set again after the hop-by-hop headers went: a client listing
			// X-Valet-Subject in Connection must not strip the identity.
			out[HeaderSubject] = in[HeaderSubject]
			out[HeaderClient] = in[HeaderClient]
			out[HeaderScope] = in[HeaderScope]
			out[HeaderTokenID] = in[HeaderTokenID]
			fw.set(out, pr.In)
		},
		Transport: &timedTransport{met: met, rt: &http.Transport{
			// The upstream is a fixed internal address: no HTTP_PROXY,
			// HTTP/1.1 so that Upgrade (WebSocket) always works.
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   upstreamDialTimeout,
			ResponseHeaderTimeout: headerTimeout,
			ExpectContinueTimeout: time.Second,
			MaxIdleConns:          upstreamIdleConns,
			MaxIdleConnsPerHost:   upstreamIdleConns,
			IdleConnTimeout:       upstreamIdleTimeout,
		}},
		// FlushInterval 0: ReverseProxy already flushes every write of a
		// text/event-stream or unknown-length (streamed) response; a
		// response of known length is buffered, which is cheaper.
		ModifyResponse: func(res *http.Response) error {
			// The edge's own X-Request-Id is already on the answer.
			res.Header.Del(echo.HeaderXRequestID)
			return nil
		},
		// Without a pool every response allocates a 32 KiB copy buffer.
		BufferPool:   &bufferPool{},
		ErrorHandler: upstreamErrorHandler(log, target.Host),
		ErrorLog:     zap.NewStdLog(log.Named("upstream")),
	}
	return &proxy{a: a, upstream: rp}, target.Redacted(), nil
}

// bufferPool implements httputil.BufferPool with a sync.Pool.
type bufferPool struct{ p sync.Pool }

// Get returns a 32 KiB buffer.
func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put returns buf to the pool.
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// upstreamURL parses services.edge.upstream as pkg/config validates it:
// an absolute http(s) URL without user information, query or fragment.
func upstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("edge: services.edge.upstream %q must be an absolute http(s) URL without query, fragment or user information", raw)
	}
	return u, nil
}

// ServeHTTP refuses CONNECT and TRACE, authorizes anything else as
// forward auth would (the route, the method and the target exactly as the
// client sent them) and passes an accepted
// request upstream, with client-sent X-Valet-* headers replaced by the
// token's identity. The Authorization header is kept: the upstream may
// want the token (token exchange, its own checks).
func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		// No tunnels, and no echo of the Authorization header.
		h := w.Header()
		h["Cache-Control"] = noStore
		h["Content-Type"] = jsonType
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write(resMethodNotAllowed)
		return
	}
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI() // a request built in process
	}
	claims, res := p.a.authorize(r, r.Method, target, r.Host)
	if res != nil {
		p.a.deny(w, res)
		return
	}
	p.a.met.decided(http.StatusOK, edge.ReasonOK)

	h := r.Header
	for k := range h {
		if isIdentityHeader(k) {
			delete(h, k)
		}
	}
	setIdentity(h, &claims)
	if id := w.Header()[echo.HeaderXRequestID]; len(id) > 0 {
		h[echo.HeaderXRequestID] = id // correlate the upstream's log with ours
	}
	// The decision ran under limits.request_timeout; the exchange with
	// the upstream is bounded by the transport's timeouts and lasts while
	// the client stays.
	if ctx, ok := r.Context().Value(clientContextKey{}).(context.Context); ok {
		r = r.WithContext(ctx)
	}
	p.upstream.ServeHTTP(w, r)
}

// isIdentityHeader reports whether k names an X-Valet-* header, in any
// case and with "_" for "-": CGI-style upstreams (PHP, WSGI, nginx with
// underscores_in_headers) read X_Valet_Subject as X-Valet-Subject.
func isIdentityHeader(k string) bool {
	const prefix = "x-valet-"
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// clientContextKey holds, in a proxied request's context, the context it
// had before the server's request timeout was applied (keepClientContext).
type clientContextKey struct{}

// keepClientContext is a pre-routing middleware: it records the request's
// context before pkg/server bounds it by limits.request_timeout, so that
// the proxy can stream a response or a WebSocket for longer while still
// stopping when the client goes away.
func keepClientContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := r.Context()
		c.SetRequest(r.WithContext(context.WithValue(ctx, clientContextKey{}, ctx)))
		return next(c)
	}
}

// forwarder sets the X-Forwarded-* headers of a proxied request. Only a
// peer in limits.trusted_proxies may extend them; any other client's
// values are replaced, and its Forwarded and X-Real-Ip removed.
type forwarder struct {
	trusted []netip.Prefix
}

// set writes X-Forwarded-For (the chain, ending with the peer),
// X-Forwarded-Host and X-Forwarded-Proto onto out, read from in. out may
// be in.Header.
func (f forwarder) set(out http.Header, in *http.Request) {
	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = ""
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	host, xff := in.Host, peer
	if peer != "" && f.trusts(peer) {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
	} else {
		delete(out, "X-Real-Ip")
	}
	delete(out, "Forwarded")
	if xff != "" {
		out["X-Forwarded-For"] = []string{xff}
	} else {
		delete(out, "X-Forwarded-For")
	}
	out["X-Forwarded-Host"] = []string{host}
	out["X-Forwarded-Proto"] = []string{proto}
}

// trusts reports whether addr is in limits.trusted_proxies.
func (f forwarder) trusts(addr string) bool {
	if len(f.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range f.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// timedTransport counts upstream exchanges by status and times them to the
// response headers (a streamed body's duration says nothing about the
// upstream).
type timedTransport struct {
	rt  http.RoundTripper
	met *upstreamMetrics
}

// RoundTrip implements http.RoundTripper.
func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.rt.RoundTrip(req)
	if err != nil {
		t.met.failed(req.Context(), err)
		return nil, err
	}
	t.met.answered(res.StatusCode, time.Since(start))
	return res, nil
}

// upstreamErrorHandler answers a request the upstream did not answer: 504
// on a timeout, 413 on a request body over limits.max_body_bytes, 502
// otherwise. The bodies are plain text: the token is not at fault, so no
// RFC 6750 challenge. The log names the upstream host and the cause, never
// the URL (its query may carry secrets).
func upstreamErrorHandler(log *zap.Logger, upstream string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if res, ok := w.(*echo.Response); ok && res.Committed {
			return // a failed upgrade after the 101: nothing left to say
		}
		cause := err
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			cause = ue.Err
		}
		status, msg := http.StatusBadGateway, "bad gateway: the upstream did not answer\n"
		var he *echo.HTTPError
		switch {
		case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
			status, msg = he.Code, "request body too large\n"
		case r.Context().Err() != nil:
			// The client went away: nobody reads this answer.
			log.Debug("client gone before the upstream answered", zap.String("request_id", w.Header().Get(echo.HeaderXRequestID)))
		case isTimeout(err):
			status, msg = http.StatusGatewayTimeout, "gateway timeout: the upstream did not answer in time\n"
		}
		if status >= 500 && r.Context().Err() == nil {
			log.Warn("upstream request failed",
				zap.String("request_id", w.Header().Get(echo.HeaderXRequestID)),
				zap.String("upstream", upstream),
				zap.String("method", r.Method),
				zap.Int("status", status),
				zap.NamedError("error", cause))
		}
		h := w.Header()
		h["Content-Type"] = plainType
		h["Cache-Control"] = noStore
		h["X-Content-Type-Options"] = nosniff
		w.WriteHeader(status)
		_, _ = w.Write([]byte(msg))
	}
}

var (
	resMethodNotAllowed = errorBody("method_not_allowed", "CONNECT and TRACE are not proxied")
	plainType           = []string{"text/plain; charset=utf-8"}
	nosniff             = []string{"nosniff"}
)

// isTimeout reports whether err is a dial, TLS or response-header timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// inProcess serves accepted requests with Deps.Upstream in process, with
// the same X-Forwarded-* headers and metrics as the HTTP upstream.
type inProcess struct {
	h   http.Handler
	fw  forwarder
	met *upstreamMetrics
}

// ServeHTTP implements http.Handler.
func (u *inProcess) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.fw.set(r.Header, r)
	sw := &statusWriter{ResponseWriter: w, start: time.Now(), met: u.met}
	u.h.ServeHTTP(sw, r)
	if !sw.wrote { // nothing written (or hijacked): net/http answers 200
		u.met.answered(http.StatusOK, time.Since(sw.start))
	}
}

// statusWriter records the status of an in-process upstream's answer in
// the upstream metrics when the answer starts.
type statusWriter struct {
	http.ResponseWriter
	start time.Time
	met   *upstreamMetrics
	wrote bool
}

// WriteHeader implements http.ResponseWriter.
func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.wrote = true
		w.met.answered(code, time.Since(w.start))
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher, for handlers that assert it rather than
// use http.ResponseController.
func (w *statusWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker (WebSocket libraries assert it); the
// connection counts as a 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.wrote {
		w.wrote = true
		w.met.answered(http.StatusSwitchingProtocols, time.Since(w.start))
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
