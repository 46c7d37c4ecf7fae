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
// returns the store of the flows of cfg.Site with a writer queue of
// queueSize batches; exporters gives the ids of exporter addresses (the
// source of flows no router matched). Call Run to write.
func Open(ctx context.Context, cfg Config, exporters func(netip.Addr) int64, queueSize int, logger *slog.Logger) (*Store, error) {
	c, err := NewClient(cfg, logger)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, c); err != nil {
		return nil, fmt.Errorf("cannot open the clickhouse store: %w", err)
	}
	return newStore(c, exporters, queueSize, logger)
}

// OpenReader connects to ClickHouse (cfg) for queries alone, as the
// commands beside a running serve do: it changes nothing, and refuses a
// schema this flowbox does not know (older: serve migrates it; newer:
// upgrade flowbox). The store's writer is there but must not be run.
func OpenReader(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	c, err := NewClient(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := CheckSchema(ctx, c); err != nil {
		return nil, fmt.Errorf("cannot open the clickhouse store: %w", err)
	}
	return newStore(c, nil, 1, logger)
}

// Close releases the client's idle connections.
func (s *Store) Close() error {
	s.c.http.CloseIdleConnections()
	return nil
}

func newStore(c *Client, exporters func(netip.Addr) int64, queueSize int, logger *slog.Logger) (*Store, error) {
	site := c.cfg.Site
	w, err := NewFlowWriter(c, site, exporters)
	if err != nil {
		return nil, err
	}
	in, err := NewIngest(w, queueSize, logger)
	if err != nil {
		return nil, err
	}
	r := NewReader(c, site, time.Now)
	r.backlog = in.Backlog
	return &Store{Ingest: in, Reader: r, c: c}, nil
}

// Run is the writer (Ingest.Run) with the top-N rollups beside it: every
// minute, the hours over are rolled up from their raw flows (RollupTop).
// A failed round is counted in Health (RollupErrors) and retried at the
// next.
func (s *Store) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(topEvery)
		defer t.Stop()
		for {
			if _, err := s.Reader.RollupTop(ctx, s.Ingest.now()); err != nil && ctx.Err() == nil {
				s.Ingest.rollupFailed(err)
				s.Ingest.logger.Warn("cannot roll up the top-N lists; the next round retries", "err", err)
			} else if err == nil {
				s.Ingest.rollupFailed(nil)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	err := s.Ingest.Run(ctx)
	<-done
	return err
}
