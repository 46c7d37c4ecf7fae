package web

import (
	"embed"
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
var pageNames = []string{"login", "setup", "fleet", "router", "flows", "settings"}

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

// templateFuncs are available to every template.
var templateFuncs = template.FuncMap{
	"join": strings.Join,
}

// parsePages parses each page with the layout.
func parsePages(assets fs.FS) (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(assets, "templates/layout.html", path.Join("templates", name+".html"))
		if err != nil {
			return nil, fmt.Errorf("cannot parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// staticHandler serves the static files with a validator and a short
// cache lifetime (the files change only with the binary).
func (s *Server) staticHandler() http.Handler {
	fsrv := http.FileServerFS(s.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
