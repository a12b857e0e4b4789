package issuer_test

// Helpers of the end-to-end browser tests (browser_test.go): a headless
// Chromium driven over the DevTools protocol with chromedp, a recording
// "client" redirect endpoint, and the screenshots under docs/screenshots.

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browserDeadline bounds a whole browser test. It is generous: it only stops
// a hung browser, it is not a performance bound.
const browserDeadline = 90 * time.Second

// chromiumPath is the browser the tests drive: $VALET_CHROMIUM, else the
// Debian package's /usr/bin/chromium, else chromium on $PATH.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VALET_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("VALET_CHROMIUM=%q is not an executable: %v", p, err)
		}
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
	}
	t.Fatalf("the browser tests need Chromium: install it with `apt-get install -y chromium` " +
		"(.ci/run does when it is missing) or point VALET_CHROMIUM at a Chromium or Chrome binary")
	return ""
}

// newChromium starts a headless Chromium with a fresh profile and returns the
// browser's context; it stops when the test ends. Every tab of the test is a
// child of it (newTab).
func newChromium(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir() // removed after the browser has exited (cleanups run LIFO)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(800, 720),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "en-US"),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserDeadline)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc(); cancelTimeout() })
	// Start the browser now, so a broken install fails here, clearly.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return bctx
}

// newTab opens a tab in a new browser context of browser: its own cookies,
// so every tab starts signed out.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// documents records the response of every document a tab loads, by URL.
type documents struct {
	mu   sync.Mutex
	resp []*network.Response
}

func recordDocuments(t *testing.T, tab context.Context) *documents {
	t.Helper()
	d := &documents{}
	if err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument && e.Response != nil {
			d.mu.Lock()
			d.resp = append(d.resp, e.Response)
			d.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// first returns the first document response whose URL starts with prefix.
func (d *documents) first(prefix string) *network.Response {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.resp {
		if strings.HasPrefix(r.URL, prefix) {
			return r
		}
	}
	return nil
}

// header looks a response header up case-insensitively (HTTP/2 lowercases).
func header(r *network.Response, name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// callbackServer is the client's redirect endpoint: it records the query of
// every request to /cb and shows a page with id "done".
type callbackServer struct {
	*httptest.Server
	got chan url.Values
}

func newCallbackServer(t *testing.T) *callbackServer {
	t.Helper()
	c := &callbackServer{got: make(chan url.Values, 16)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cb" {
			http.NotFound(w, r)
			return
		}
		select {
		case c.got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>client</title><p id="done">back at the client</p>`))
	}))
	t.Cleanup(c.Close)
	return c
}

// next waits for the next callback.
func (c *callbackServer) next(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the browser never reached the client's redirect URI")
		return nil
	}
}

// screenshot takes a full-page PNG of the tab, checks it decodes, and, when
// VALET_UPDATE_SCREENSHOTS=1, writes it to docs/screenshots/name.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width < 200 || cfg.Height < 200 {
		t.Fatalf("screenshot %s: %dx%d, %v: want a PNG of the page", name, cfg.Width, cfg.Height, err)
	}
	if os.Getenv("VALET_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	dst := filepath.Join("..", "..", "docs", "screenshots", name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%dx%d)", dst, cfg.Width, cfg.Height)
}
