package main

import (
	"context"
	"log/slog"

	"github.com/flowbox/flowbox/collector"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/inventory"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/web"
)

// storage is the data directory's database with its two halves built on
// it (store/storage composes them); the components get the half (or,
// through the embedding, the methods of both) that their interfaces ask
// for.
type storage = storagepkg.Storage

// inventoryOnly is the inventory alone, for the short-lived commands that
// touch no flow (token, exporters, subscribers import): the flow
// database's writer state (partitions, host index tails) is not loaded.
type inventoryOnly struct {
	db *store.DB
	*inventory.Inventory
}

// openInventory opens the database of dataDir without the lock (beside a
// running serve) and builds the inventory on it.
func openInventory(ctx context.Context, dataDir string, logger *slog.Logger) (*inventoryOnly, error) {
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	inv, err := inventory.New(ctx, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &inventoryOnly{db: db, Inventory: inv}, nil
}

// Close closes the database.
func (s *inventoryOnly) Close() error { return s.db.Close() }

// The halves implement what the components consume (checked here, where
// they are wired, since the components import neither half).
var (
	_ enrich.RouterResolver  = (*inventory.Inventory)(nil)
	_ enrich.SubscriberStore = (*inventory.Inventory)(nil)
	_ enrich.InterfaceStore  = (*inventory.Inventory)(nil)
	_ collector.Sink         = (*flowdb.FlowDB)(nil)
	_ provision.Inventory    = (*storage)(nil)
	_ web.FlowQuerier        = (*storage)(nil)
	_ web.UserStore          = (*inventory.Inventory)(nil)
	_ store.FlowDB           = (*flowdb.FlowDB)(nil)
	_ store.Inventory        = (*inventory.Inventory)(nil)
)
