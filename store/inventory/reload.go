package inventory

import "context"

// ReloadRouters re-reads the router inventory's addresses, which attribute
// exporters to routers. Routers changed through this Inventory are picked up at
// once; ReloadRouters picks up changes made by another process on the same
// database (for example `flowbox router add` while `flowbox serve` runs).
func (s *Inventory) ReloadRouters(ctx context.Context) error {
	return s.refreshAttribution(ctx)
}
