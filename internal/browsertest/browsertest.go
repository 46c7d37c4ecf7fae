// Package browsertest starts headless Chromium for the browser tests of
// the console (web) and of the whole app (cmd/flowbox).
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// Need returns the path of Chromium. Without it, or in -short mode, the
// test is skipped with the reason, unless FLOWBOX_FUNCTIONAL_TESTS=1, which
// makes a missing browser a failure.
func Need(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath(ChromiumPath); err != nil {
		if os.Getenv("FLOWBOX_FUNCTIONAL_TESTS") == "1" {
			t.Fatalf("chromium is required (FLOWBOX_FUNCTIONAL_TESTS=1): %v", err)
		}
		t.Skipf("chromium not installed at %s (apt-get install chromium): %v", ChromiumPath, err)
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	return ChromiumPath
}

// Artifacts returns where a test saves screenshots and downloads:
// $FLOWBOX_ARTIFACTS/sub, or a temporary directory.
func Artifacts(t testing.TB, sub string) string {
	t.Helper()
	a := os.Getenv("FLOWBOX_ARTIFACTS")
	if a == "" {
		return t.TempDir()
	}
	dir := filepath.Join(a, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cannot create the artifacts directory: %v", err)
	}
	return dir
}

// Start starts Chromium (see Need) with the flags that work in containers
// and CI, a 1280x1000 window and English as the page language, and
// returns a tab's context that ends after timeout. listen, if not nil,
// receives the tab's events. Everything stops when the test ends.
func Start(t testing.TB, timeout time.Duration, listen func(ev any)) context.Context {
	t.Helper()
	exe := Need(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
		// The console serves HTTPS with a self-signed certificate by
		// default; the tests reach it on loopback only.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	var copts []chromedp.ContextOption
	if listen != nil {
		copts = append(copts, chromedp.WithListener(listen))
	}
	ctx, cancel2 := chromedp.NewContext(actx, copts...)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("cannot start chromium: %v", err)
	}
	return ctx
}

// Screenshot saves a full-page PNG of the tab as dir/name.png.
func Screenshot(ctx context.Context, dir, name string) error {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("cannot take screenshot %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		return fmt.Errorf("cannot save screenshot %s: %w", name, err)
	}
	return nil
}

// ClickJS clicks the first element matching sel from inside the page, as
// soon as it exists (within 20 s). The console rebuilds its tables on
// every refresh, so a click by node id (chromedp.Click) can land on a row
// that was just replaced.
func ClickJS(sel string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel)
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))(ctx, tg); err != nil {
			return fmt.Errorf("cannot click %s: %w", sel, err)
		}
		return nil
	})
}
