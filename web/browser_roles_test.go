package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// hiddenJS says whether the element sel exists and is not displayed.
func hiddenJS(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && getComputedStyle(e).display === "none"; })()`, sel)
}

// TestBrowserViewer logs in as a viewer: no "Add router", no Apply, Verify,
// Undo or Remove on the router page, no user management, token creation
// or audit log on Settings, and the API refuses a POST (403). An admin in
// the same browser sees all of them, so the test can tell.
func TestBrowserViewer(t *testing.T) {
	browsertest.Need(t)
	e := newEnv(t)
	e.addUser("admin", store.RoleAdmin)
	e.addUser("view", store.RoleViewer)
	r := e.addRouter(store.Router{Name: "tower-1", Address: "192.0.2.1:8728", State: store.StateConfigured})
	ctx := browsertest.Start(t, 60*time.Second, nil)
	art := browsertest.Artifacts(t, "web-roles")
	base := e.ts.URL

	login := func(user string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(base+"/login?next=%2Ffleet"),
			chromedp.WaitVisible(`#login-form`),
			chromedp.SendKeys(`#username`, user),
			chromedp.SendKeys(`#password`, testPassword),
			chromedp.Submit(`#login-form`),
			chromedp.WaitVisible(`#fleet tbody a.router-link`),
		); err != nil {
			t.Fatalf("log in as %s: %v", user, err)
		}
	}
	// check asserts that each selector is hidden (or shown) on the page.
	check := func(page, who string, hidden bool, sels ...string) {
		t.Helper()
		for _, sel := range sels {
			if got := must(t, ctx, chromedp.Evaluate[bool](hiddenJS(sel))); got != hidden {
				t.Errorf("%s as %s: %s hidden = %v, want %v", page, who, sel, got, hidden)
			}
		}
	}
	visit := func(path, waitFor string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(base+path), chromedp.WaitVisible(waitFor)); err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
	}
	routerPage := fmt.Sprintf("/routers/%d", r.ID)
	fleetOnly := []string{`#add-open`}
	routerOnly := []string{`#btn-apply`, `#btn-verify`, `#btn-undo`, `#btn-remove`}
	settingsOnly := []string{`#users-card`, `#token-form`, `#audit-card`}

	login("view")
	if role := must(t, ctx, chromedp.Evaluate[string](`document.body.dataset.role + " " + window.fb.role + " " + window.fb.can("operator")`)); role != "viewer viewer false" {
		t.Fatalf("the page's role: %q", role)
	}
	check("fleet", "viewer", true, fleetOnly...)
	screenshot(t, ctx, art, "viewer-fleet")
	visit(routerPage, `#btn-plan`)
	check("router", "viewer", true, routerOnly...)
	check("router", "viewer", false, `#btn-plan`)
	visit("/settings", `#password-form`)
	check("settings", "viewer", true, settingsOnly...)
	check("settings", "viewer", false, `#password-form`, `#tokens-card`)
	screenshot(t, ctx, art, "viewer-settings")
	// The API refuses what the page hides.
	status := must(t, ctx, chromedp.Evaluate[string](`(() => { const x = new XMLHttpRequest();
		x.open("POST", "/api/v1/routers", false); x.setRequestHeader("Content-Type", "application/json");
		x.send(JSON.stringify({ address: "192.0.2.9", username: "admin" })); return x.status + " " + x.responseText; })()`))
	if !strings.HasPrefix(status, "403 ") || !strings.Contains(status, "operator role") {
		t.Fatalf("a viewer's POST /api/v1/routers: %s", status)
	}

	// The same pages as an admin show everything.
	if err := chromedp.Do(ctx, browsertest.ClickJS(`form.logout button`), chromedp.WaitVisible(`#login-form`)); err != nil {
		t.Fatalf("log out: %v", err)
	}
	login("admin")
	check("fleet", "admin", false, fleetOnly...)
	visit(routerPage, `#btn-plan`)
	check("router", "admin", false, routerOnly...)
	visit("/settings", `#users tbody tr[data-user="view"]`)
	check("settings", "admin", false, settingsOnly...)
	// The admin's audit log shows the viewer's refused POST.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#audit tbody tr.fail`)); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	audit := must(t, ctx, chromedp.TextContent(`#audit tbody`))
	if !strings.Contains(audit, "router.add (failed)") || !strings.Contains(audit, "refused: needs the operator role") {
		t.Fatalf("audit log on Settings: %s", audit)
	}
	screenshot(t, ctx, art, "admin-settings")
}
