package clickhouse

import (
	"context"
	"fmt"
	"strings"
)

// A cluster (Config.Cluster): every server of Addresses holds the tables
// and views of the migrations in its local database (Database+"_local"),
// and flowbox reads and writes them through Distributed tables of the
// same names in Database, which spread an insert over the cluster's
// shards and gather a query's answer from them. The views fire on the
// shard a row lands on, so each shard rolls up its own flows, and the
// queries sum the shards' rows as they sum a table's parts.

// checkLayout refuses a database laid out for the other mode: plain
// tables where a cluster wants Distributed ones, or the reverse.
func checkLayout(ctx context.Context, c *Client) error {
	db := c.cfg.Database
	out, err := c.Query(ctx, fmt.Sprintf("SELECT engine FROM system.tables WHERE database = %s AND name = 'flows' FORMAT TabSeparated", quote(db)))
	if err != nil {
		return fmt.Errorf("cannot read the clickhouse schema: %w", err)
	}
	engine := strings.TrimSpace(string(out))
	switch {
	case engine == "":
	case c.cfg.Cluster != "" && engine != "Distributed":
		return fmt.Errorf("clickhouse database %s holds the flows of one server (not of cluster %s): set no clickhouse.cluster, or use another database", db, c.cfg.Cluster)
	case c.cfg.Cluster == "" && engine == "Distributed":
		return fmt.Errorf("clickhouse database %s is laid out for a cluster (Distributed tables): set clickhouse.cluster", db)
	}
	return nil
}

// syncDistributed creates in Database a Distributed table over each table
// of the local database, and makes again one whose columns no longer
// match its table's (a migration changed them). Inserts into them are
// synchronous (foregroundInsert): nothing waits in a Distributed table
// when it is made again.
func syncDistributed(ctx context.Context, c *Client) error {
	db, local := c.cfg.Database, c.cfg.tablesDB()
	tables, err := tableColumns(ctx, c, local, "engine LIKE '%MergeTree'")
	if err != nil {
		return err
	}
	dist, err := tableColumns(ctx, c, db, "engine = 'Distributed'")
	if err != nil {
		return err
	}
	for _, t := range tables {
		if have, ok := dist[t.name]; ok && have.columns == t.columns {
			continue
		} else if ok {
			if err := c.Exec(ctx, fmt.Sprintf("DROP TABLE %s.%s", db, t.name)); err != nil {
				return fmt.Errorf("cannot drop the outdated distributed table %s.%s: %w", db, t.name, err)
			}
		}
		stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[3]s AS %[2]s.%[3]s ENGINE = Distributed(%[4]s, %[2]s, %[3]s, %[5]s)",
			db, local, t.name, quote(c.cfg.Cluster), shardingKey(t.name, t.columns))
		if err := c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("cannot create the distributed table %s.%s on cluster %s: %w", db, t.name, c.cfg.Cluster, err)
		}
	}
	return nil
}

// tableInfo is a table and its columns ("name type, ...", in order).
type tableInfo struct {
	name, columns string
}

// tableColumns returns the tables of db whose engine matches cond, by
// name, with their columns.
func tableColumns(ctx context.Context, c *Client, db, cond string) (map[string]tableInfo, error) {
	out, err := c.Query(ctx, fmt.Sprintf(`SELECT table, arrayStringConcat(arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((position, concat(name, ' ', type))))), ', ')
FROM system.columns
WHERE database = %[1]s AND table IN (SELECT name FROM system.tables WHERE database = %[1]s AND %[2]s)
GROUP BY table FORMAT TabSeparated`, quote(db), cond))
	if err != nil {
		return nil, fmt.Errorf("cannot read the tables of clickhouse database %s: %w", db, err)
	}
	m := map[string]tableInfo{}
	for line := range strings.Lines(string(out)) {
		name, cols, ok := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		if !ok {
			return nil, fmt.Errorf("cannot read the tables of clickhouse database %s: %q", db, line)
		}
		m[name] = tableInfo{name: name, columns: cols}
	}
	return m, nil
}

// shardingKey is the expression that picks a row's shard in table: a
// function of the row alone, so that an insert tried again splits as it
// did the first time and each shard recognizes its part (the
// deduplication token). Raw flows spread by their id; the rows of one
// rollup key go to one shard, so that a ReplacingMergeTree replaces them.
func shardingKey(table, columns string) string {
	switch {
	case table == "flows":
		return "id"
	case table == "nat":
		return "cityHash64(site, public, public_port)"
	case strings.HasPrefix(columns, "site ") && strings.Contains(", "+columns, ", t DateTime"):
		return "cityHash64(site, t)"
	}
	return "rand()"
}

// foregroundInsert makes an INSERT into a Distributed table return once
// the shards hold its rows (distributed_foreground_insert), as an insert
// into a table does, rather than once they are queued on this server:
// the writer's queue and drop counters stay the truth. It adds the
// setting to the statement's SETTINGS clause, or makes one before its
// data (FORMAT, VALUES or SELECT).
func foregroundInsert(stmt string) string {
	const set = "distributed_foreground_insert = 1"
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt)), "INSERT") {
		return stmt
	}
	data := len(stmt)
	for _, kw := range []string{" FORMAT ", " VALUES", "\nSELECT", " SELECT"} {
		if i := strings.Index(stmt, kw); i >= 0 && i < data {
			data = i
		}
	}
	if i := strings.Index(stmt[:data], "SETTINGS "); i >= 0 {
		i += len("SETTINGS ")
		return stmt[:i] + set + ", " + stmt[i:]
	}
	return stmt[:data] + " SETTINGS " + set + stmt[data:]
}

// only returns a client of c's i-th server alone.
func (c *Client) only(i int) *Client {
	return &Client{cfg: c.cfg, http: c.http, bases: c.bases[i : i+1], password: c.password, logger: c.logger}
}
