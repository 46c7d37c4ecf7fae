package provision

import (
	"errors"

	"context"
	"fmt"
	"github.com/flowbox/flowbox/routeros"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// memInventory is an in-memory Inventory with the store's semantics
// (copies in and out, ErrNotFound, ErrExists), for unit tests.
type memInventory struct {
	mu       sync.Mutex
	nextID   int64
	routers  map[string]*store.Router
	runs     []store.ProvisionRun
	lastFlow map[int64]time.Time
	seen     map[netip.Addr]time.Time
}

func newMemInventory() *memInventory {
	return &memInventory{routers: map[string]*store.Router{}, lastFlow: map[int64]time.Time{}, seen: map[netip.Addr]time.Time{}}
}

func cloneRouter(r *store.Router) *store.Router {
	c := *r
	c.Interfaces = slices.Clone(r.Interfaces)
	c.Addresses = slices.Clone(r.Addresses)
	c.Previous = maps.Clone(r.Previous)
	return &c
}

func (m *memInventory) AddRouter(_ context.Context, r *store.Router) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.routers[r.Name]; ok {
		return fmt.Errorf("router %s: %w", r.Name, store.ErrExists)
	}
	m.nextID++
	r.ID = m.nextID
	m.routers[r.Name] = cloneRouter(r)
	return nil
}

func (m *memInventory) UpdateRouter(_ context.Context, r *store.Router) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.routers[r.Name]; !ok {
		return fmt.Errorf("router %s: %w", r.Name, store.ErrNotFound)
	}
	m.routers[r.Name] = cloneRouter(r)
	return nil
}

func (m *memInventory) GetRouter(_ context.Context, name string) (*store.Router, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.routers[name]
	if !ok {
		return nil, fmt.Errorf("router %s: %w", name, store.ErrNotFound)
	}
	return cloneRouter(r), nil
}

func (m *memInventory) ListRouters(context.Context) ([]store.Router, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Router
	for _, r := range m.routers {
		out = append(out, *cloneRouter(r))
	}
	slices.SortFunc(out, func(a, b store.Router) int { return int(a.ID - b.ID) })
	return out, nil
}

func (m *memInventory) RemoveRouter(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.routers[name]; !ok {
		return fmt.Errorf("router %s: %w", name, store.ErrNotFound)
	}
	delete(m.routers, name)
	return nil
}

func (m *memInventory) AddProvisionRun(_ context.Context, run *store.ProvisionRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	run.ID = int64(len(m.runs) + 1)
	m.runs = append(m.runs, *run)
	return nil
}

func (m *memInventory) ProvisionRuns(_ context.Context, routerID int64, limit int) ([]store.ProvisionRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.ProvisionRun
	for i := len(m.runs) - 1; i >= 0 && len(out) < limit; i-- {
		if m.runs[i].RouterID == routerID {
			out = append(out, m.runs[i])
		}
	}
	return out, nil
}

func (m *memInventory) LastFlowFrom(_ context.Context, routerID int64) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.lastFlow[routerID]
	return t, ok, nil
}

func (m *memInventory) ExporterLastSeen(addr netip.Addr) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.seen[addr]
	return t, ok
}

func (m *memInventory) allRuns() []store.ProvisionRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs)
}

var _ Inventory = (*memInventory)(nil)

type (
	routerosOptions = routeros.Options
	routerosConn    = routeros.Conn
)

var errUnreachable = errors.New("router unreachable")
