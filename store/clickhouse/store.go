package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Store is the ClickHouse flow store of one site: its writer (Ingest) and
// its queries (Reader) on one client, the schema migrated.
type Store struct {
	*Ingest
	*Reader
	c *Client
}

// Open connects to ClickHouse (cfg), migrates flowbox's schema, and
// returns the store of site's flows with a writer queue of queueSize
// batches; exporters gives the ids of exporter addresses (the source of
// flows no router matched). Call Run to write.
func Open(ctx context.Context, cfg Config, site string, exporters func(netip.Addr) int64, queueSize int, logger *slog.Logger) (*Store, error) {
	c, err := NewClient(cfg, logger)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, c); err != nil {
		return nil, fmt.Errorf("cannot open the clickhouse store: %w", err)
	}
	w, err := NewFlowWriter(c, site, exporters)
	if err != nil {
		return nil, err
	}
	in, err := NewIngest(w, queueSize, logger)
	if err != nil {
		return nil, err
	}
	return &Store{Ingest: in, Reader: NewReader(c, site, time.Now), c: c}, nil
}
