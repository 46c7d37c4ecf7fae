package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// embedded holds the console's templates and static files.
//
//go:embed templates static
var embedded embed.FS

// pageNames are the templates of templates/ rendered inside layout.html.
var pageNames = []string{"login", "setup", "dashboard", "fleet", "router", "subscribers", "flows", "settings", "alerts", "alert", "abuse", "reports"}

// assetsFS returns the embedded assets, or the directory dir (the source
// tree's web/) when set, for editing templates without rebuilding.
func assetsFS(dir string) (fs.FS, error) {
	if dir == "" {
		return embedded, nil
	}
	if _, err := fs.Stat(os.DirFS(dir), "templates/layout.html"); err != nil {
		return nil, fmt.Errorf("dev-assets-dir %s holds no templates/layout.html: %w", dir, err)
	}
	return os.DirFS(dir), nil
}

// assetVersions returns a short content hash of every static file, by
// path under static/. Pages link "/static/app.js?v=<hash>", so a browser
// may cache the files for good and still never mixes an old script with
// a new page after an upgrade.
func assetVersions(static fs.FS) (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[p] = hex.EncodeToString(h[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot hash static assets: %w", err)
	}
	return out, nil
}

// templateFuncs are available to every template: join, and static, which
// turns a path under static/ into its versioned URL.
func templateFuncs(versions map[string]string) template.FuncMap {
	return template.FuncMap{
		"join": strings.Join,
		"static": func(name string) (string, error) {
			v, ok := versions[name]
			if !ok {
				return "", fmt.Errorf("no static file %q", name)
			}
			return "/static/" + name + "?v=" + v, nil
		},
	}
}

// parsePages parses each page with the layout.
func parsePages(assets fs.FS, versions map[string]string) (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs(versions)).ParseFS(assets, "templates/layout.html", path.Join("templates", name+".html"))
		if err != nil {
			return nil, fmt.Errorf("cannot parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// staticHandler serves the static files with their content hash as ETag.
// A versioned URL (?v= the current hash, as the pages link them) is cached
// for a year; any other is revalidated. With DevAssetsDir, files are
// served as they are on disk and never cached, so edits show at once.
func (s *Server) staticHandler() http.Handler {
	fsrv := http.FileServerFS(s.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.DevAssetsDir != "" {
			if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			fsrv.ServeHTTP(w, r)
			return
		}
		v, ok := s.assetVersions[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+v+`"`)
		if r.URL.Query().Get("v") == v {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		fsrv.ServeHTTP(w, r)
	})
}
