package clickhouse

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered file of migrations/, rendered for a Config.
type migration struct {
	version int
	name    string
	stmts   []string
}

// schemaParams are what the migrations' templates use.
type schemaParams struct {
	DB                                       string // the database, a plain identifier
	RawTTL, MinuteTTL, HourTTL, UsageHourTTL int64  // seconds
	NATTTL                                   int64  // seconds
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// migrations returns the migrations rendered for cfg, in version order.
func migrations(cfg *Config) ([]migration, error) {
	p := schemaParams{DB: cfg.tablesDB(), RawTTL: int64(cfg.RawTTL.Seconds()),
		MinuteTTL: int64(cfg.MinuteTTL.Seconds()), HourTTL: int64(cfg.HourTTL.Seconds()), UsageHourTTL: int64(cfg.UsageHourTTL.Seconds()),
		NATTTL: int64(cfg.NATTTL.Seconds())}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot list clickhouse migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("clickhouse migration %s: not NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		text, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("cannot read clickhouse migration %s: %w", e.Name(), err)
		}
		tmpl, err := template.New(e.Name()).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("clickhouse migration %s: %w", e.Name(), err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, p); err != nil {
			return nil, fmt.Errorf("clickhouse migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: m[2], stmts: splitStatements(b.String())})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("clickhouse migrations: version %d twice", out[i].version)
		}
	}
	return out, nil
}

// splitStatements splits a migration's text into statements: each ends
// with a line that ends with ";", or with the text. Comment lines are
// dropped (ClickHouse's HTTP interface takes one statement a request).
func splitStatements(text string) []string {
	var out []string
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			out = append(out, strings.TrimSuffix(s, ";"))
		}
		cur = cur[:0]
	}
	for line := range strings.Lines(text) {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") {
			continue
		}
		cur = append(cur, strings.TrimRight(line, "\n"))
		if strings.HasSuffix(t, ";") {
			flush()
		}
	}
	flush()
	return out
}

// Migrate brings flowbox's database on ClickHouse to the newest schema:
// it creates the database and the table of applied migrations, then runs
// the migrations not applied yet, in order, each recorded once done. It
// returns the number applied. A database migrated by a newer flowbox is
// an error: this one would not know its tables.
//
// With a cluster (Config.Cluster) it does so on every server of
// Addresses in turn (no ON CLUSTER: no Keeper is needed): the tables and
// views go into the local database of each, and the Distributed tables
// flowbox reads and writes into Database (syncDistributed). Every server
// must answer.
func Migrate(ctx context.Context, c *Client) (int, error) {
	if c.cfg.Cluster == "" || len(c.bases) == 1 {
		return migrate(ctx, c)
	}
	applied := 0
	for i := range c.bases {
		n, err := migrate(ctx, c.only(i))
		if err != nil {
			return applied, fmt.Errorf("server %s of cluster %s: %w", c.bases[i].Host, c.cfg.Cluster, err)
		}
		applied = max(applied, n)
	}
	return applied, nil
}

// migrate is Migrate on the server c reaches.
func migrate(ctx context.Context, c *Client) (int, error) {
	ms, err := migrations(&c.cfg)
	if err != nil {
		return 0, err
	}
	db := c.cfg.Database
	if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return 0, fmt.Errorf("cannot create clickhouse database %s: %w", db, err)
	}
	if err := checkLayout(ctx, c); err != nil {
		return 0, err
	}
	if local := c.cfg.tablesDB(); local != db {
		if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+local); err != nil {
			return 0, fmt.Errorf("cannot create clickhouse database %s: %w", local, err)
		}
	}
	if err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+".flowbox_migrations (version UInt32, name String, applied DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"); err != nil {
		return 0, fmt.Errorf("cannot create the clickhouse migrations table: %w", err)
	}
	out, err := c.Query(ctx, "SELECT DISTINCT version FROM "+db+".flowbox_migrations ORDER BY version FORMAT TabSeparated")
	if err != nil {
		return 0, fmt.Errorf("cannot read the clickhouse migrations applied: %w", err)
	}
	done := map[int]bool{}
	newest := 0
	for line := range strings.Lines(string(out)) {
		v, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return 0, fmt.Errorf("cannot read the clickhouse migrations applied: %q", line)
		}
		done[v], newest = true, max(newest, v)
	}
	if known := ms[len(ms)-1].version; newest > known {
		return 0, fmt.Errorf("clickhouse database %s has schema version %d, newer than this flowbox knows (%d): upgrade flowbox", db, newest, known)
	}
	applied := 0
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		for i, s := range m.stmts {
			if err := c.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("clickhouse migration %04d_%s, statement %d: %w", m.version, m.name, i+1, err)
			}
		}
		if err := c.Exec(ctx, fmt.Sprintf("INSERT INTO %s.flowbox_migrations (version, name) VALUES (%d, '%s')", db, m.version, m.name)); err != nil {
			return applied, fmt.Errorf("cannot record clickhouse migration %04d_%s: %w", m.version, m.name, err)
		}
		applied++
	}
	if c.cfg.Cluster != "" {
		if err := syncDistributed(ctx, c); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// SchemaVersion returns, changing nothing, the schema version of
// flowbox's database on ClickHouse (0: none yet, or no database) and the
// version this flowbox migrates it to.
func SchemaVersion(ctx context.Context, c *Client) (have, want int, err error) {
	ms, err := migrations(&c.cfg)
	if err != nil {
		return 0, 0, err
	}
	want = ms[len(ms)-1].version
	db := c.cfg.Database
	out, err := c.Query(ctx, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = %s AND name = 'flowbox_migrations' FORMAT TabSeparated", quote(db)))
	if err != nil {
		return 0, want, fmt.Errorf("cannot read the clickhouse schema: %w", err)
	}
	if strings.TrimSpace(string(out)) == "0" {
		return 0, want, nil
	}
	out, err = c.Query(ctx, "SELECT max(version) FROM "+db+".flowbox_migrations FORMAT TabSeparated")
	if err != nil {
		return 0, want, fmt.Errorf("cannot read the clickhouse migrations applied: %w", err)
	}
	if have, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
		return 0, want, fmt.Errorf("cannot read the clickhouse migrations applied: %q", out)
	}
	return have, want, nil
}

// CheckSchema checks, changing nothing, that flowbox's database on
// ClickHouse has exactly the schema this flowbox knows.
func CheckSchema(ctx context.Context, c *Client) error {
	v, known, err := SchemaVersion(ctx, c)
	if err != nil {
		return err
	}
	db := c.cfg.Database
	switch {
	case v == 0:
		return fmt.Errorf("clickhouse database %s has no flowbox schema yet: start flowbox serve with store.backend: clickhouse first", db)
	case v > known:
		return fmt.Errorf("clickhouse database %s has schema version %d, newer than this flowbox knows (%d): upgrade flowbox", db, v, known)
	case v < known:
		return fmt.Errorf("clickhouse database %s has schema version %d, older than this flowbox's (%d): start flowbox serve to migrate it", db, v, known)
	}
	return nil
}
