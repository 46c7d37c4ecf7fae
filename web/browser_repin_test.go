package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// TestBrowserRepin: on the page of an API-SSL router whose certificate
// changed, "Re-pin certificate…" shows the pinned and the presented
// fingerprints and pins the new one only on confirmation; a plain-API
// router has no such button.
func TestBrowserRepin(t *testing.T) {
	browsertest.Need(t)
	e := newEnv(t)
	e.addUser("admin", store.RoleAdmin)
	old, presented := strings.Repeat("aa", 32), strings.Repeat("b1", 32)
	e.prov.setPresented(presented)
	r := e.addRouter(store.Router{Name: "tower-1", Address: "192.0.2.1:8729", TLS: true, TLSFingerprint: old, State: store.StateConfigured})
	plain := e.addRouter(store.Router{Name: "tower-2", Address: "192.0.2.2:8728", State: store.StateConfigured})
	ctx := browsertest.Start(t, 60*time.Second, nil)
	art := browsertest.Artifacts(t, "web-repin")
	base := e.ts.URL
	page := fmt.Sprintf("/routers/%d", r.ID)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login?next="+url.QueryEscape(page)),
		chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"),
		chromedp.SendKeys(`#password`, testPassword),
		chromedp.Submit(`#login-form`),
		chromedp.WaitVisible(`#btn-repin`),
		chromedp.Click(`#btn-repin`),
		chromedp.WaitVisible(`#repin-confirm`),
	); err != nil {
		t.Fatalf("open the re-pin panel: %v", err)
	}
	screenshot(t, ctx, art, "repin-1-confirm")
	colons := func(fp string) string {
		var p []string
		for i := 0; i < len(fp); i += 2 {
			p = append(p, strings.ToUpper(fp[i:i+2]))
		}
		return strings.Join(p, ":")
	}
	shown := must(t, ctx, chromedp.Evaluate[[]string](`[".repin-old", ".repin-new"].map(s => document.querySelector(s).textContent)`))
	if len(shown) != 2 || !strings.Contains(shown[0], colons(old)) || !strings.Contains(shown[1], colons(presented)) {
		t.Fatalf("the panel shows %q, want the old %s and the new %s", shown, colons(old), colons(presented))
	}
	// Nothing is pinned before the confirmation.
	if got, _ := e.st.GetRouterByID(context.Background(), r.ID); got.TLSFingerprint != old {
		t.Fatalf("pinned %s before the confirmation", got.TLSFingerprint)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`#repin-confirm`), chromedp.WaitVisible(`#repin-done`)); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	screenshot(t, ctx, art, "repin-2-done")
	if got, _ := e.st.GetRouterByID(context.Background(), r.ID); got.TLSFingerprint != presented {
		t.Errorf("pinned %s after the confirmation, want %s", got.TLSFingerprint, presented)
	}
	// Checking again: nothing to re-pin.
	if err := chromedp.Do(ctx, chromedp.Click(`#btn-repin`), chromedp.WaitVisible(`#repin-same`)); err != nil {
		t.Fatalf("check again: %v", err)
	}
	// A plain-API router has no certificate to re-pin.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, plain.ID)), chromedp.WaitVisible(`#router-name`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("btn-repin").dataset.tls === "false" && document.getElementById("btn-repin").classList.contains("hidden")`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("the plain-API router shows Re-pin: %v", err)
	}
}
