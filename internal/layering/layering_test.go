package layering

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/flowbox/flowbox/"

// imports returns, for every package directory of the module (relative to
// the root), the module's packages its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root := filepath.Join("..", "..")
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		if _, ok := out[dir]; !ok {
			out[dir] = nil
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if rest, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[dir], rest) {
				out[dir] = append(out[dir], rest)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayering checks the import rules of the module's packages.
func TestLayering(t *testing.T) {
	deps := imports(t)
	for _, must := range []string{"store", "store/flowdb", "store/inventory", "store/storage", "store/storetest", "store/clickhouse", "store/clickhouse/chtest", "collector", "collector/netflow", "routeros", "provision", "enrich", "web", "simulator", "alerts", "alerts/notify", "report", "report/scheduler", "cmd/flowbox"} {
		if _, ok := deps[must]; !ok {
			t.Fatalf("package %s not found: the walk is broken", must)
		}
	}
	only := func(pkg string, allowed ...string) {
		for _, d := range deps[pkg] {
			if !slices.Contains(allowed, d) {
				t.Errorf("%s imports %s; it may import only %v", pkg, d, allowed)
			}
		}
	}
	// store is the leaf: the shared nouns, the database file and the
	// interfaces of its two halves. The flow database and the inventory
	// are built on it and know nothing of each other.
	only("store")
	only("store/flowdb", "store")
	only("store/inventory", "store")
	only("store/storage", "store", "store/clickhouse", "store/flowdb", "store/inventory")
	only("store/storetest", "store", "store/clickhouse/chtest", "store/storage")
	only("store/storetest/flowmodel", "store", "collector/netflowtest")
	// The ClickHouse store is built on the nouns only; its test endpoint
	// (chtest, and the chdbhttp command it runs) on nothing of flowbox's
	// but the test helpers.
	only("store/clickhouse", "store")
	only("store/clickhouse/chtest", "internal/testutil")
	only("store/clickhouse/chtest/chdbhttp")
	only("routeros")
	only("collector/netflow", "store")
	only("collector", "collector/netflow", "store")
	only("provision", "routeros", "store")
	// The router pollers share their loops (internal/poll, a leaf).
	only("internal/poll")
	only("enrich", "enrich/geodata", "internal/poll", "routeros", "store")
	only("coverage", "internal/poll", "routeros", "store")
	only("domains", "internal/poll", "routeros", "store")
	only("web", "store")
	// Reports: the builder reads the store's interfaces; the scheduler
	// only asks a store.Reporter. Alert notifications and scheduled
	// reports send mail through one SMTP client (a leaf).
	only("internal/smtpmail")
	only("report", "store")
	only("report/scheduler", "internal/smtpmail", "store")
	// Alerts: the detectors know only the nouns; notifications too;
	// mitigation talks RouterOS.
	only("alerts", "store")
	only("alerts/notify", "internal/smtpmail", "store")
	only("alerts/mitigate", "routeros", "store")
	testSupport := []string{"collector/netflowtest", "routeros/routerostest", "store/storetest", "store/storetest/flowmodel", "internal/testutil", "internal/browsertest", "store/clickhouse/chtest"}
	for pkg, ds := range deps {
		for _, d := range ds {
			switch {
			case strings.HasPrefix(d, "cmd/"):
				t.Errorf("%s imports %s: nothing imports cmd", pkg, d)
			case d == "web" && pkg != "cmd/flowbox":
				t.Errorf("%s imports web: only cmd/flowbox wires it", pkg)
			case (d == "store/flowdb" || d == "store/inventory" || d == "store/storage" || d == "store/clickhouse") &&
				pkg != "cmd/flowbox" && pkg != "store/storage" && pkg != "store/storetest":
				t.Errorf("%s imports %s: only store/storage composes the halves and cmd/flowbox wires them (the others consume interfaces)", pkg, d)
			case d == "simulator" && pkg != "cmd/flowbox":
				t.Errorf("%s imports the simulator: only cmd/flowbox runs it", pkg)
			case slices.Contains(testSupport, d) && pkg != "simulator" && pkg != "cmd/flowbox" && !slices.Contains(testSupport, pkg):
				t.Errorf("%s imports the test-support package %s in production code", pkg, d)
			}
		}
	}
}
