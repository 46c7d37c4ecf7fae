package web

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestStaticVersions checks that pages link their assets with a content
// hash, that such links may be cached for good, and that other requests
// are revalidated with the ETag.
func TestStaticVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	_, html := e.do(http.MethodGet, "/", nil)
	m := regexp.MustCompile(`src="(/static/app\.js\?v=([0-9a-f]{12}))"`).FindStringSubmatch(string(html))
	if m == nil {
		t.Fatalf("the fleet page does not link a versioned app.js:\n%s", html)
	}
	res, err := e.client.Get(e.ts.URL + m[1])
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") || res.Header.Get("ETag") != `"`+m[2]+`"` {
		t.Errorf("versioned asset: %d, Cache-Control %q, ETag %q", res.StatusCode, res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
	}
	for _, u := range []string{"/static/app.js", "/static/app.js?v=000000000000"} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+u, nil)
		req.Header.Set("If-None-Match", `"`+m[2]+`"`)
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified || res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s revalidated: %d, Cache-Control %q", u, res.StatusCode, res.Header.Get("Cache-Control"))
		}
	}
	for _, u := range []string{"/static/nope.js", "/static/", "/static/vendor/"} {
		if code, _ := e.do(http.MethodGet, u, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", u, code)
		}
	}
}

// TestDevAssets checks that with dev-assets-dir the static files are read
// from the directory at each request and never cached.
func TestDevAssets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.CopyFS(dir, embedded); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config, _ *Deps) { c.DevAssetsDir = dir })
	e.login()
	if err := os.WriteFile(filepath.Join(dir, "static", "app.css"), []byte("/* edited */"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := e.client.Get(e.ts.URL + "/static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "/* edited */" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("dev asset: %q, Cache-Control %q", b, res.Header.Get("Cache-Control"))
	}
}
