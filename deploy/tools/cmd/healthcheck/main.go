// Command healthcheck is the container healthcheck of Valet's distroless image, which has no
// shell, curl or wget: it GETs one URL on the local admin listener and exits 0 when the answer is
// 200, 1 otherwise (printing why, which `docker inspect` shows).
//
//	valet-healthcheck http://127.0.0.1:9080/readyz
//	valet-healthcheck -timeout 2s http://127.0.0.1:9083/healthz
//
// Only plain-http loopback URLs are accepted: the admin listener is probed from inside the
// container, and a healthcheck that could be pointed elsewhere would be a request forger.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("valet-healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "bound on the whole request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: valet-healthcheck [-timeout 2s] http://127.0.0.1:PORT/readyz")
		return 2
	}
	target, err := loopbackURL(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	client := &http.Client{
		// Never follow a redirect away from the probed listener.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s: %s\n", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s\n", resp.Status)
	return 0
}

// loopbackURL returns raw if it is an http URL whose host is a loopback address or localhost.
func loopbackURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", raw, err)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if u.Scheme != "http" || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return "", fmt.Errorf("bad URL %q: want http://127.0.0.1:PORT/path (the container's own admin listener)", raw)
	}
	return u.String(), nil
}
