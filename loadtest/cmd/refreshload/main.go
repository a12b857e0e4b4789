// Command refreshload drives the refresh-token grant (RFC 6749 §6) with
// rotation against a running issuer and prints rotations/s, latency
// percentiles and every failure by status and RFC 6749 error code.
//
// A refresh family is a chain: each response's refresh_token is the next
// request's, and presenting a superseded token revokes the family (reuse
// detection, RFC 9700 §4.14.2). So this is a worker pool, not an open-loop
// attacker: each worker owns one family and rotates it in a loop, one
// request in flight per chain, which is also what a real client does. Any
// non-200, reuse detection included, is a FAILED run.
//
// The families come from the real grant by default: the user signs in at
// the login page, approves the consent page, and the code is exchanged
// with PKCE (loadtest/internal/codeflow), once per worker.
//
//	refreshload -concurrency 32 -duration 20s          # credentials from $TOKEN_URL, $WEB_CLIENT_ID, ... (cmd/cluster's creds.env)
//	refreshload -mint 64 -seed-out seed.txt            # mint families for wrk or k6 and exit
//	refreshload -seed seed.txt                         # rotate families minted before (each file works once)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/valetauth/valet/loadtest/internal/codeflow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "refreshload:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	flow                codeflow.Config
	public              bool
	narrow              string
	concurrency         int
	duration, warmup    time.Duration
	timeout             time.Duration
	seed, seedOut       string
	mint                int
	metricsURL          string
	cpuProfile          string
	mintParallel        int
	authorizationScopes string
}

func parse(args []string) (options, error) {
	var o options
	env := os.Getenv
	fs := flag.NewFlagSet("refreshload", flag.ContinueOnError)
	fs.StringVar(&o.flow.TokenURL, "token-url", env("TOKEN_URL"), "token endpoint (default $TOKEN_URL)")
	fs.StringVar(&o.flow.AuthorizeURL, "authorize-url", env("AUTHORIZE_URL"), "authorization endpoint (default $AUTHORIZE_URL)")
	fs.StringVar(&o.flow.Issuer, "issuer", env("ISSUER"), "issuer identifier the authorization responses' iss must equal; empty: unchecked (default $ISSUER)")
	fs.StringVar(&o.flow.ClientID, "client-id", env("WEB_CLIENT_ID"), "confidential client allowed authorization_code and refresh_token (default $WEB_CLIENT_ID)")
	fs.StringVar(&o.flow.ClientSecret, "client-secret", env("WEB_CLIENT_SECRET"), "its secret, sent with client_secret_basic (default $WEB_CLIENT_SECRET)")
	fs.BoolVar(&o.public, "public", false, "use the public client $PUBLIC_CLIENT_ID (or -client-id) with no secret instead")
	fs.StringVar(&o.flow.RedirectURI, "redirect-uri", env("REDIRECT_URI"), "the client's registered redirect URI (default $REDIRECT_URI)")
	fs.StringVar(&o.flow.Resource, "resource", env("RESOURCE"), "resource indicator asked at /authorize; empty for the client's default (default $RESOURCE)")
	fs.StringVar(&o.authorizationScopes, "scope", "read write", "scope asked at /authorize")
	fs.StringVar(&o.flow.Username, "user", env("LOGIN_USER"), "user who signs in (default $LOGIN_USER)")
	fs.StringVar(&o.flow.Password, "password", env("LOGIN_PASSWORD"), "the user's password (default $LOGIN_PASSWORD)")
	fs.StringVar(&o.narrow, "narrow", "", "scope sent with every refresh, narrowing the family (RFC 6749 §6); empty: no scope parameter")
	fs.IntVar(&o.concurrency, "concurrency", 32, "workers, each rotating its own family over its own connection")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured rotations before the measured run (every chain keeps rotating)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.seed, "seed", "", "file of refresh tokens (one a line) to rotate instead of minting families; each works once")
	fs.IntVar(&o.mint, "mint", 0, "mint this many families, write their refresh tokens to -seed-out and exit")
	fs.StringVar(&o.seedOut, "seed-out", "", "where -mint writes the refresh tokens (mode 0600)")
	fs.IntVar(&o.mintParallel, "mint-parallel", 4, "concurrent authorizations while minting")
	fs.StringVar(&o.metricsURL, "metrics-url", env("METRICS_URL"), "the issuer's Prometheus /metrics, to report its own rotation counts (default $METRICS_URL)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this generator's CPU profile over the run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.flow.Scope = o.authorizationScopes
	if o.public {
		o.flow.ClientSecret = ""
		if id := env("PUBLIC_CLIENT_ID"); id != "" && !flagSet(fs, "client-id") {
			o.flow.ClientID = id
		}
	}
	switch {
	case o.flow.TokenURL == "" || o.flow.ClientID == "":
		return o, errors.New("-token-url and -client-id are required")
	case !o.public && o.flow.ClientSecret == "":
		return o, errors.New("-client-secret is required (or -public)")
	case o.seed == "" && (o.flow.AuthorizeURL == "" || o.flow.RedirectURI == "" || o.flow.Username == "" || o.flow.Password == ""):
		return o, errors.New("minting families needs -authorize-url, -redirect-uri, -user and -password (or -seed)")
	case o.mint > 0 && o.seedOut == "":
		return o, errors.New("-mint needs -seed-out")
	case o.mint < 0 || o.concurrency < 1 || o.duration <= 0 || o.warmup < 0 || o.timeout <= 0 || o.mintParallel < 1:
		return o, errors.New("-concurrency, -duration, -timeout and -mint-parallel must be positive, -warmup and -mint not negative")
	}
	return o, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, w io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	if o.mint > 0 {
		return mint(ctx, o, w)
	}
	chains, err := families(ctx, o, w)
	if err != nil {
		return err
	}
	before, err := scrape(ctx, o.metricsURL)
	if err != nil {
		return err
	}
	stopProfile, err := profile(o.cpuProfile)
	if err != nil {
		return err
	}
	res := attack(ctx, o, chains)
	stopProfile()
	after, err := scrape(ctx, o.metricsURL)
	if err != nil {
		fmt.Fprintf(w, "  (server counts unavailable: %v)\n", err)
	}
	res.server = after.minus(before)
	res.report(w, o)
	return res.verdict(w)
}

// profile starts a CPU profile into path (nothing when empty) and returns
// what stops it.
func profile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// mint obtains o.mint families and writes their refresh tokens, one a
// line, for wrk or k6.
func mint(ctx context.Context, o options, w io.Writer) error {
	flow, err := codeflow.New(o.flow, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	fams, err := flow.Families(ctx, o.mint, o.mintParallel)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, f := range fams {
		b.WriteString(f.RefreshToken)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(o.seedOut, []byte(b.String()), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "minted %d families in %s (/authorize, login, consent, code exchange with PKCE); refresh tokens in %s\n",
		len(fams), time.Since(start).Round(time.Millisecond), o.seedOut)
	return nil
}

// families returns one refresh token per worker: from the seed file, or
// minted through the real grant.
func families(ctx context.Context, o options, w io.Writer) ([]string, error) {
	if o.seed != "" {
		raw, err := os.ReadFile(o.seed)
		if err != nil {
			return nil, err
		}
		var toks []string
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				toks = append(toks, l)
			}
		}
		if len(toks) < o.concurrency {
			return nil, fmt.Errorf("%s holds %d refresh tokens; -concurrency %d needs one each", o.seed, len(toks), o.concurrency)
		}
		return toks[:o.concurrency], nil
	}
	flow, err := codeflow.New(o.flow, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	fams, err := flow.Families(ctx, o.concurrency, o.mintParallel)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%d families minted in %s: one login, /authorize → consent → code → /token with PKCE each\n",
		len(fams), time.Since(start).Round(time.Millisecond))
	toks := make([]string, len(fams))
	for i, f := range fams {
		toks[i] = f.RefreshToken
	}
	return toks, nil
}
