package issuer_test

// End-to-end browser test of the device flow (issue 6 item 7, RFC 8628): a
// device (golang.org/x/oauth2) asks for a user code, the user opens the
// plain verification_uri in a headless Chromium, types the code, signs in,
// lands on the consent page at once (no second Continue), checks the code
// there and approves, while the device polls and gets its token. Refresh docs/screenshots/{device,device-consent}.png
// with VALET_UPDATE_SCREENSHOTS=1.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestBrowserDeviceApprove enters the user code in the browser and approves.
func TestBrowserDeviceApprove(t *testing.T) {
	a := newDeviceHarness(t)
	browser := newChromium(t)
	tab := newTab(t, browser)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf := a.deviceConf(tvID, "read", "write")
	da, err := conf.DeviceAuth(ctx, oauth2.SetAuthURLParam("resource", apiID))
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if !userCodeRE.MatchString(da.UserCode) || da.VerificationURI != testIssuer+"/device" {
		t.Fatalf("device authorization %+v", da)
	}
	// The device polls from now on; the browser answers meanwhile.
	type result struct {
		tok *oauth2.Token
		err error
	}
	polled := make(chan result, 1)
	go func() {
		tok, err := conf.DeviceAccessToken(ctx, da)
		polled <- result{tok, err}
	}()

	// The user opens verification_uri (not _complete): the issuer's public
	// URL is testIssuer, served here at a.url.
	verify := a.url + strings.TrimPrefix(da.VerificationURI, testIssuer)
	if err := chromedp.Do(tab, chromedp.Navigate(verify), chromedp.WaitVisible(chromedp.ID("user_code"))); err != nil {
		t.Fatalf("device page: %v", err)
	}
	if v, err := chromedp.Run(tab, chromedp.Value(chromedp.ID("user_code"))); err != nil || v != "" {
		t.Fatalf("device page user_code %q (%v), want an empty field", v, err)
	}
	// Typed as the device shows it (the normalisation of other spellings
	// is covered by device_test.go).
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("user_code"), da.UserCode)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, tab, "device.png")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
		t.Fatalf("continue to login: %v", err)
	}

	// Sign in: straight to the consent page for the code typed before
	// login, no second Continue. The consent page, which shows the code to
	// compare with the device, is the confirmation (RFC 8628 §5.4).
	if err := chromedp.Do(tab,
		chromedp.SendKeys(chromedp.ID("username"), alice),
		chromedp.SendKeys(chromedp.ID("password"), alicePW),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	); err != nil {
		t.Fatalf("sign in, then the consent page: %v", err)
	}
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#user_code, #continue").length`)); err != nil || n != 0 {
		t.Fatalf("after login: %v user-code form elements (%v), want the consent page only", n, err)
	}
	text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Living Room TV", alice} {
		if !strings.Contains(text, want) {
			t.Fatalf("device consent page does not mention %q:\n%s", want, text)
		}
	}
	if code, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("confirm_code"))); err != nil || code != da.UserCode {
		t.Fatalf("device consent code %q (%v), want %q", code, err, da.UserCode)
	}
	if sc, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("scopes"))); err != nil ||
		!strings.Contains(sc, "read") || !strings.Contains(sc, "write") {
		t.Fatalf("device consent scopes %q, %v", sc, err)
	}
	select {
	case r := <-polled:
		t.Fatalf("the device got an answer before approval: %+v, %v", r.tok, r.err)
	default:
	}
	screenshot(t, tab, "device-consent.png")

	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if h, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("result"))); err != nil || h != "Device connected" {
		t.Fatalf("result %q, %v", h, err)
	}

	var r result
	select {
	case r = <-polled:
	case <-ctx.Done():
		t.Fatal("the device never got an answer")
	}
	if r.err != nil {
		t.Fatalf("DeviceAccessToken: %v", r.err)
	}
	c := claimsOf(t, r.tok.AccessToken)
	if sub, _ := c["sub"].(string); !strings.HasPrefix(sub, "usr_") || c["client_id"] != tvID ||
		c["scope"] != "read write" || c["aud"] != apiID || r.tok.RefreshToken == "" {
		t.Fatalf("token %+v claims %v", r.tok, c)
	}
}
