package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestSubscribersImportCustomerColumns imports a billing system's export
// (a header row, columns in its own order, extra columns), with a column
// named by flag, and reads the customer ids back; a bad file is refused
// with errors naming line and column.
func TestSubscribersImportCustomerColumns(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	file := filepath.Join(dir, "billing.csv")
	csv := "Contract No,Plan,Customer Name,Status,IP Address\n" +
		"C-1042,20M,Maria Lopez,active,100.64.0.10\n" +
		"C-2001,50M,\"Perez, Jose\",active,100.64.8.0/29\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runIn(t, "subscribers", "import", "--data-dir", data, "--id-column", "contract no", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "2 rows: 2 customers started or changed") {
		t.Errorf("import printed %q", out)
	}
	ctx := context.Background()
	st, err := storetest.Open(ctx, data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids, err := st.SubscriberCustomerIDs(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ids[store.SubscriberRef{Name: "Maria Lopez"}] != "C-1042" || ids[store.SubscriberRef{Name: "Perez, Jose"}] != "C-2001" || len(ids) != 2 {
		t.Errorf("customer ids %v", ids)
	}

	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("account,name,ip\nA-1,Maria,100.64.0.300\nA-2,,100.64.0.11\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runIn(t, "subscribers", "import", "--data-dir", data, bad)
	want := "cannot import " + bad + ":\n" +
		`line 2, column "ip": invalid address or prefix "100.64.0.300"` + "\n" +
		`line 3, column "name": customer name must not be empty`
	if err == nil || err.Error() != want {
		t.Errorf("bad file: %v\nwant %s", err, want)
	}
	_, _, err = runIn(t, "subscribers", "import", "--data-dir", data, "--name-column", "holder", bad)
	if err == nil || !strings.Contains(err.Error(), `line 1: no name column "holder" in the header ("account", "name", "ip")`) {
		t.Errorf("missing named column: %v", err)
	}
	_, _, err = runIn(t, "subscribers")
	if err == nil || !strings.Contains(err.Error(), "--id-column NAME") {
		t.Errorf("usage: %v", err)
	}
}

// TestCustomerIDPatternConfig: a bad enrich.customer-id-pattern is a
// configuration error naming the key.
func TestCustomerIDPatternConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowbox.yaml")
	if err := os.WriteFile(cfg, []byte("enrich:\n  customer-id-pattern: '#(\\d+'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runIn(t, "check", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	want := "invalid config:\nenrich.customer-id-pattern: invalid regexp \"#(\\\\d+\": error parsing regexp: missing closing ): `#(\\d+`"
	if err == nil || err.Error() != want {
		t.Errorf("check: %v\nwant %s", err, want)
	}
	if err := os.WriteFile(cfg, []byte("enrich:\n  customer-id-pattern: ''\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runIn(t, "check", "--config", cfg, "--data-dir", filepath.Join(dir, "data")); err != nil {
		t.Errorf("an empty pattern (disabled) is valid: %v", err)
	}
}
