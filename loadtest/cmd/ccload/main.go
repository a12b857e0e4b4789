// Command ccload drives the client-credentials grant against a running
// issuer with the vegeta library, at a fixed number of connections and
// either a fixed rate or as fast as they go, and prints throughput and
// latency percentiles.
//
//	ccload -token-url http://127.0.0.1:18080/token -client-id loadtest -client-secret vcs_... \
//	       -connections 32 -duration 20s
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ccload:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	tokenURL, clientID, secret, resource, scope, auth string
	rate, connections                                 int
	duration, warmup                                  time.Duration
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("ccload", flag.ContinueOnError)
	fs.StringVar(&o.tokenURL, "token-url", os.Getenv("TOKEN_URL"), "token endpoint (default $TOKEN_URL)")
	fs.StringVar(&o.clientID, "client-id", os.Getenv("CLIENT_ID"), "client id (default $CLIENT_ID)")
	fs.StringVar(&o.secret, "client-secret", os.Getenv("CLIENT_SECRET"), "client secret (default $CLIENT_SECRET)")
	fs.StringVar(&o.resource, "resource", os.Getenv("RESOURCE"), "resource indicator (RFC 8707); empty for the client's default")
	fs.StringVar(&o.scope, "scope", "read", "scope to request; empty for the client's default")
	fs.StringVar(&o.auth, "auth", "basic", "client authentication: basic (client_secret_basic) or post (client_secret_post)")
	fs.IntVar(&o.rate, "rate", 0, "requests per second; 0 is as fast as the connections allow")
	fs.IntVar(&o.connections, "connections", 32, "connections (and workers)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.tokenURL == "" || o.clientID == "" || o.secret == "":
		return o, errors.New("-token-url, -client-id and -client-secret are required")
	case o.auth != "basic" && o.auth != "post":
		return o, errors.New("-auth must be basic or post")
	case o.connections < 1 || o.duration <= 0 || o.rate < 0:
		return o, errors.New("-connections and -duration must be positive, -rate not negative")
	}
	return o, nil
}

// target returns the token request the run repeats.
func (o options) target() vegeta.Target {
	form := url.Values{"grant_type": {"client_credentials"}}
	if o.scope != "" {
		form.Set("scope", o.scope)
	}
	if o.resource != "" {
		form.Set("resource", o.resource)
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if o.auth == "basic" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(o.clientID)+":"+url.QueryEscape(o.secret))))
	} else {
		form.Set("client_id", o.clientID)
		form.Set("client_secret", o.secret)
	}
	return vegeta.Target{Method: http.MethodPost, URL: o.tokenURL, Body: []byte(form.Encode()), Header: h}
}

func run(args []string, w io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	tgt := o.target()
	if err := probe(tgt); err != nil {
		return err
	}
	// An Attacker stops for good after one attack: one each.
	attacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(
			vegeta.Connections(o.connections), vegeta.MaxConnections(o.connections),
			vegeta.Workers(uint64(o.connections)), vegeta.MaxWorkers(uint64(o.connections)),
			vegeta.KeepAlive(true), vegeta.HTTP2(false), vegeta.Timeout(10*time.Second),
		)
	}
	rate := vegeta.Rate{Freq: o.rate, Per: time.Second}
	targeter := vegeta.NewStaticTargeter(tgt)
	if o.warmup > 0 {
		for range attacker().Attack(targeter, rate, o.warmup, "warmup") {
		}
	}
	var m vegeta.Metrics
	for res := range attacker().Attack(targeter, rate, o.duration, "client_credentials") {
		m.Add(res)
	}
	m.Close()
	report(w, o, &m)
	if m.Success < 0.99 {
		return fmt.Errorf("success ratio %.4f below 0.99", m.Success)
	}
	return nil
}

// probe sends one request and checks it yields a bearer token, so that a
// misconfigured run fails at once instead of measuring errors.
func probe(t vegeta.Target) error {
	req, err := t.Request()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusOK || body.AccessToken == "" || body.TokenType != "Bearer" {
		return fmt.Errorf("probe: status %d, error %q: the issuer does not issue a token for these credentials", res.StatusCode, body.Error)
	}
	return nil
}

func report(w io.Writer, o options, m *vegeta.Metrics) {
	mode := "max rate"
	if o.rate > 0 {
		mode = fmt.Sprintf("%d/s", o.rate)
	}
	ok := float64(m.StatusCodes["200"]) / m.Duration.Seconds()
	fmt.Fprintf(w, "client_credentials via vegeta: %d connections, %s, %s (%s auth)\n", o.connections, mode, o.duration, o.auth)
	fmt.Fprintf(w, "  requests      %d (%.0f/s sent, %.0f tokens/s)\n", m.Requests, m.Rate, ok)
	fmt.Fprintf(w, "  success       %.2f%%\n", 100*m.Success)
	fmt.Fprintf(w, "  latency p50   %s\n", round(m.Latencies.P50))
	fmt.Fprintf(w, "  latency p95   %s\n", round(m.Latencies.P95))
	fmt.Fprintf(w, "  latency p99   %s\n", round(m.Latencies.P99))
	fmt.Fprintf(w, "  latency max   %s\n", round(m.Latencies.Max))
	codes := make([]string, 0, len(m.StatusCodes))
	for c, n := range m.StatusCodes {
		codes = append(codes, fmt.Sprintf("%s:%d", c, n))
	}
	sort.Strings(codes)
	fmt.Fprintf(w, "  status codes  %s\n", strings.Join(codes, " "))
	if len(m.Errors) > 0 {
		fmt.Fprintf(w, "  errors        %s\n", strings.Join(first(m.Errors, 5), "; "))
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

func first(s []string, n int) []string { return s[:min(n, len(s))] }
