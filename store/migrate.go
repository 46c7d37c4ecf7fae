package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// SchemaVersionError is returned when the database was written by another
// version of flowbox whose schema this one does not know.
type SchemaVersionError struct {
	Have, Want int
}

func (e *SchemaVersionError) Error() string {
	if e.Have > e.Want {
		return fmt.Sprintf("database schema version %d is newer than this flowbox supports (%d): upgrade flowbox (the database was not modified)", e.Have, e.Want)
	}
	return fmt.Sprintf("database schema version %d, want %d: run `flowbox serve` once to migrate it", e.Have, e.Want)
}

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationFiles returns the embedded migrations in order. Files are named
// NNNN_description.sql and numbered from 1 without gaps (checked by tests).
func migrationFiles() []migration {
	entries, err := fs.ReadDir(migrationsFS, "migrations")
	if err != nil {
		panic(fmt.Sprintf("embedded migrations: %v", err)) // cannot happen: embedded at build time
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		b, err := migrationsFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("embedded migration %s: %v", e.Name(), err))
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out
}

// migrate applies the missing migrations, each in its own transaction that
// also sets PRAGMA user_version. A database newer than the binary is refused
// before anything is written.
func migrate(ctx context.Context, db *sql.DB) error {
	ms := migrationFiles()
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("cannot read schema version: %w", DescribeWriteError(err))
	}
	if have > len(ms) {
		return &SchemaVersionError{Have: have, Want: len(ms)}
	}
	for _, m := range ms {
		if m.version <= have {
			continue
		}
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot start migration %s: %w", m.name, DescribeWriteError(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("cannot apply migration %s: %w", m.name, DescribeWriteError(err))
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return fmt.Errorf("cannot record migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit migration %s: %w", m.name, DescribeWriteError(err))
	}
	return nil
}
