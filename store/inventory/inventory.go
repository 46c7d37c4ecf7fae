// Package inventory is what flowbox knows besides flows, on the shared
// database (store.DB): the routers (with their encrypted API passwords and
// the attribution of exporter addresses to them), their provisioning
// history, the subscriber and interface-name histories, the console users,
// sessions and API tokens, and the exporters an operator accepted. It
// imports nothing of the flow database (store/flowdb).
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Inventory is the inventory on a store.DB. All methods are safe for
// concurrent use. On a read-only DB, writing methods return an error and
// router passwords stay empty.
type Inventory struct {
	db     *store.DB
	logger *slog.Logger
	key    []byte  // nil when read-only
	w      *sql.DB // the DB's writer connection (nil when read-only)
	r      *sql.DB // the DB's readers
	now    func() time.Time

	// attribution maps exporter addresses to router ids.
	attribution atomic.Pointer[map[netip.Addr]int64]
}

// New builds the inventory on db and loads the router attribution table
// (see store.Attribute). logger may be nil.
func New(ctx context.Context, db *store.DB, logger *slog.Logger) (*Inventory, error) {
	if db == nil {
		return nil, errors.New("cannot build the inventory: nil database")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Inventory{db: db, logger: logger, key: db.Key(), w: db.Writer(), r: db.Reader(), now: time.Now}
	empty := map[netip.Addr]int64{}
	s.attribution.Store(&empty)
	if !db.ReadOnly() {
		if err := s.refreshAttribution(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// writable returns nil when the inventory can be written.
func (s *Inventory) writable() error { return s.db.Writable() }

// Inventory is the SQLite implementation of store.Inventory.
var _ store.Inventory = (*Inventory)(nil)
