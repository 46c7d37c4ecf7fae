package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// runCheckReadOnly validates the configuration and reports on the data
// directory without writing to it, so it is safe beside a running serve
// and before an upgrade: it creates no data directory, key or database,
// migrates nothing and takes no lock. It checks the files the
// configuration names (TLS certificate and key), builds the whole
// component graph as serve does against an empty database in a temporary
// directory (removed after), then inspects the real data directory
// read-only: the schema (and whether serve would migrate it), the key
// file, and what would stop serve from opening it. With --dump it prints
// the effective configuration, secrets redacted.
func runCheckReadOnly(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "check")
	load := commonFlags(fs)
	dump := fs.Bool("dump", false, "print the effective configuration (secrets redacted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(e, load, "", "", envOverrides(e.getenv, fs))
	if err != nil {
		return err
	}
	if *dump {
		red := cfg
		red.Web = cfg.Web.Redacted()
		red.Notifications = cfg.Notifications.Redacted()
		b, err := yaml.Marshal(red)
		if err != nil {
			return fmt.Errorf("cannot print config: %w", err)
		}
		_, _ = e.stdout.Write(b)
		return nil
	}
	logger := newLogger(e.stderr, cfg.Log)
	var problems []error
	if err := prefixErr("web", cfg.Web.CheckFiles()); err != nil {
		problems = append(problems, err)
	}
	if err := buildInScratch(ctx, cfg, logger); err != nil {
		problems = append(problems, err)
	}
	d, err := store.Inspect(ctx, cfg.DataDir)
	if err != nil {
		problems = append(problems, err)
	} else {
		fmt.Fprintln(e.stdout, describeDataDir(d))
		problems = append(problems, d.Problems()...)
	}
	if cfg.Store.Backend == storagepkg.BackendClickHouse {
		line, err := checkClickHouse(ctx, cfg.Store.ClickHouse, logger)
		if err != nil {
			problems = append(problems, err)
		} else {
			fmt.Fprintln(e.stdout, line)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("check failed:\n%w", errors.Join(problems...))
	}
	fmt.Fprintln(e.stdout, "configuration OK")
	return nil
}

// buildInScratch builds every component from cfg, as serve does, without
// starting any, against a new database in a temporary directory that it
// removes: the constructors check what Validate cannot (geo databases,
// application table, console templates) and the data directory is not
// touched. Without a writable temporary directory it warns and skips.
func buildInScratch(ctx context.Context, cfg Config, logger *slog.Logger) error {
	tmp, err := os.MkdirTemp("", "flowbox-check-*")
	if err != nil {
		logger.Warn("components not built: no temporary directory for an empty database", "err", err)
		return nil
	}
	defer os.RemoveAll(tmp)
	scratch := cfg
	scratch.DataDir = tmp
	// The flow store in the scratch directory too: check migrates no
	// ClickHouse database (checkClickHouse only reads its version).
	scratch.Store.Backend = storagepkg.BackendSQLite
	a, err := buildApp(ctx, scratch, logger)
	if err != nil {
		return err
	}
	return a.close()
}

// checkClickHouse says in one line what the ClickHouse database of
// store.clickhouse holds and what serve will do with it, changing
// nothing; unreachable, or a newer schema, is a problem.
func checkClickHouse(ctx context.Context, cfg clickhouse.Config, logger *slog.Logger) (string, error) {
	c, err := clickhouse.NewClient(cfg, logger)
	if err != nil {
		return "", err
	}
	have, want, err := clickhouse.SchemaVersion(ctx, c)
	where := fmt.Sprintf("clickhouse database %s on %s", cfg.Database, strings.Join(cfg.Addresses, ", "))
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: %w", where, err)
	case have == 0:
		return where + ": no flowbox schema yet (flowbox serve creates it)", nil
	case have > want:
		return "", fmt.Errorf("%s: schema %d, newer than this flowbox's %d: upgrade flowbox", where, have, want)
	case have < want:
		return fmt.Sprintf("%s: schema %d: flowbox serve will migrate it to %d on start", where, have, want), nil
	}
	return fmt.Sprintf("%s: schema %d (current)", where, have), nil
}

// describeDataDir says in one line what the data directory holds and what
// serve will do with it.
func describeDataDir(d *store.DirStatus) string {
	if !d.Exists {
		return fmt.Sprintf("data directory %s does not exist yet: flowbox serve will create it, with a new database and key", d.Dir)
	}
	var parts []string
	switch {
	case !d.Database:
		parts = append(parts, "no database yet (flowbox serve creates it)")
	case d.SchemaVersion > d.SchemaWant:
		parts = append(parts, fmt.Sprintf("database schema %d, newer than this flowbox's %d", d.SchemaVersion, d.SchemaWant))
	case d.NeedsMigration():
		parts = append(parts, fmt.Sprintf("database schema %d: flowbox serve will migrate it to %d on start (`flowbox backup` first keeps a copy)", d.SchemaVersion, d.SchemaWant))
	default:
		parts = append(parts, fmt.Sprintf("database schema %d (current)", d.SchemaVersion))
	}
	switch {
	case d.Key:
		parts = append(parts, "key file present")
	case d.Secrets > 0:
		parts = append(parts, "key file MISSING")
	default:
		parts = append(parts, "no key file yet (flowbox serve creates one)")
	}
	if d.Database {
		parts = append(parts, fmt.Sprintf("%d encrypted router password(s)", d.Secrets))
	}
	return fmt.Sprintf("data directory %s: %s", d.Dir, strings.Join(parts, "; "))
}
