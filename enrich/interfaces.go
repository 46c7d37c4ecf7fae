package enrich

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maxInterfacesPerRouter bounds the interface names kept in memory per
// router (a PPPoE concentrator has one dynamic interface per session).
const maxInterfacesPerRouter = 20000

// interfaceRetention is how long ended interface names stay in the store:
// as long as the default hourly rollups (store hour-retention), which keep
// traffic per ifIndex.
const interfaceRetention = 400 * 24 * time.Hour

// InterfaceStore persists the interface-name history; *inventory.Inventory
// implements it. A nil InterfaceStore keeps the history in memory only,
// and a restart forgets the names of ended sessions.
type InterfaceStore interface {
	InterfaceHistory(ctx context.Context, since time.Time) ([]store.InterfaceName, error)
	ApplyInterfaceChanges(ctx context.Context, ends []store.InterfaceEnd, opens []store.InterfaceName) ([]int64, error)
	PruneInterfaceHistory(ctx context.Context, before time.Time) (int64, error)
}

type ifKey struct {
	router int64
	index  uint32
}

// ifName is one period during which an ifIndex had a name.
type ifName struct {
	id       int64 // store record id (negative without a store)
	name     string
	from, to int64 // unix ms; from is 0 for the first name learned, to is MaxInt64 while current
}

// ifHistory keeps interface names per router and ifIndex with their
// history (dynamic interfaces change names as sessions come and go): in
// memory for HistoryWindow, in the store (when there is one) for
// interfaceRetention. Changes go to the store first, then to memory, then
// into a new snapshot for lookups.
type ifHistory struct {
	st      InterfaceStore
	window  time.Duration
	metrics *metrics

	mu      sync.Mutex
	names   map[ifKey][]ifName
	count   map[int64]int
	localID int64 // ids handed out when there is no store (negative)

	snap atomic.Pointer[map[ifKey][]ifName]
}

func newIfHistory(st InterfaceStore, window time.Duration, m *metrics) *ifHistory {
	h := &ifHistory{st: st, window: window, metrics: m, names: map[ifKey][]ifName{}, count: map[int64]int{}}
	empty := map[ifKey][]ifName{}
	h.snap.Store(&empty)
	return h
}

// load fills memory from the store (names current or ended within the
// window).
func (h *ifHistory) load(ctx context.Context, now time.Time) error {
	if h.st == nil {
		return nil
	}
	rows, err := h.st.InterfaceHistory(ctx, now.Add(-h.window))
	if err != nil {
		return fmt.Errorf("cannot load interface name history: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names, h.count = map[ifKey][]ifName{}, map[int64]int{}
	for _, r := range rows {
		if h.count[r.RouterID] >= maxInterfacesPerRouter {
			h.metrics.interfaceDrops.Inc()
			continue
		}
		n := ifName{id: r.ID, name: r.Name, to: math.MaxInt64}
		if !r.ValidFrom.IsZero() {
			n.from = r.ValidFrom.UnixMilli()
		}
		if !r.ValidTo.IsZero() {
			n.to = r.ValidTo.UnixMilli()
		}
		k := ifKey{r.RouterID, r.Index}
		h.names[k] = append(h.names[k], n)
		h.count[r.RouterID]++
	}
	h.publishLocked()
	return nil
}

// ifEnd is a planned end of the current period of an index.
type ifEnd struct {
	key ifKey
	at  int64
}

// update records the names of router's interfaces seen at now. With
// seedOnly (names from the inventory) only unknown indexes are added;
// otherwise (a poll) changed names start a new period and missing indexes
// end theirs. When the store cannot save the changes, memory is left as
// it was (the next poll tries again) and the error is returned.
func (h *ifHistory) update(ctx context.Context, router int64, names map[uint32]string, now time.Time, seedOnly bool) error {
	ms := now.UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	var (
		ends     []ifEnd
		opens    []ifKey
		openName []string
		added    int
	)
	indexes := make([]uint32, 0, len(names))
	for idx := range names {
		indexes = append(indexes, idx)
	}
	slices.Sort(indexes)
	for _, idx := range indexes {
		name := names[idx]
		k := ifKey{router, idx}
		list := h.names[k]
		if n := len(list); n > 0 && list[n-1].to == math.MaxInt64 {
			if list[n-1].name == name || seedOnly {
				continue
			}
			ends = append(ends, ifEnd{k, ms})
		} else if seedOnly && n > 0 {
			continue
		}
		if h.count[router]+added >= maxInterfacesPerRouter {
			h.metrics.interfaceDrops.Inc()
			continue
		}
		opens, openName = append(opens, k), append(openName, name)
		added++
	}
	if !seedOnly {
		for k, list := range h.names {
			if k.router != router {
				continue
			}
			if _, ok := names[k.index]; !ok && list[len(list)-1].to == math.MaxInt64 {
				ends = append(ends, ifEnd{k, ms})
			}
		}
	}
	changed := len(ends) > 0 || len(opens) > 0
	if changed {
		if err := h.saveLocked(ctx, router, ends, opens, openName, ms); err != nil {
			return err
		}
	}
	if h.pruneLocked(now) || changed {
		h.publishLocked()
	}
	return nil
}

// saveLocked writes the planned changes to the store, then to memory.
func (h *ifHistory) saveLocked(ctx context.Context, router int64, ends []ifEnd, opens []ifKey, names []string, ms int64) error {
	storeEnds := make([]store.InterfaceEnd, len(ends))
	for i, e := range ends {
		list := h.names[e.key]
		storeEnds[i] = store.InterfaceEnd{ID: list[len(list)-1].id, At: time.UnixMilli(e.at)}
	}
	periods := make([]ifName, len(opens))
	storeOpens := make([]store.InterfaceName, len(opens))
	for i, k := range opens {
		p := ifName{name: names[i], from: ms, to: math.MaxInt64}
		if len(h.names[k]) == 0 {
			p.from = 0 // the first name known also names the index before
		}
		periods[i] = p
		storeOpens[i] = store.InterfaceName{RouterID: router, Index: k.index, Name: p.name}
		if p.from != 0 {
			storeOpens[i].ValidFrom = time.UnixMilli(p.from)
		}
	}
	if h.st != nil {
		ids, err := h.st.ApplyInterfaceChanges(ctx, storeEnds, storeOpens)
		if err != nil {
			return err
		}
		for i := range periods {
			periods[i].id = ids[i]
		}
	} else {
		for i := range periods {
			h.localID--
			periods[i].id = h.localID
		}
	}
	for _, e := range ends {
		list := h.names[e.key]
		list[len(list)-1].to = e.at
	}
	for i, k := range opens {
		h.names[k] = append(h.names[k], periods[i])
		h.count[k.router]++
	}
	return nil
}

// pruneLocked forgets periods that ended before the window (the store
// keeps them) and reports whether it forgot any.
func (h *ifHistory) pruneLocked(now time.Time) bool {
	limit := now.Add(-h.window).UnixMilli()
	pruned := false
	for k, list := range h.names {
		kept := slices.DeleteFunc(slices.Clone(list), func(n ifName) bool { return n.to < limit })
		if len(kept) == len(list) {
			continue
		}
		h.count[k.router] -= len(list) - len(kept)
		pruned = true
		if len(kept) == 0 {
			delete(h.names, k)
		} else {
			h.names[k] = kept
		}
	}
	return pruned
}

// publishLocked replaces the lookup snapshot with a copy of memory.
func (h *ifHistory) publishLocked() {
	snap := make(map[ifKey][]ifName, len(h.names))
	for k, v := range h.names {
		snap[k] = slices.Clone(v)
	}
	h.snap.Store(&snap)
}

// prune deletes the store's records that ended before the retention.
func (h *ifHistory) prune(ctx context.Context, now time.Time) (int64, error) {
	if h.st == nil {
		return 0, nil
	}
	n, err := h.st.PruneInterfaceHistory(ctx, now.Add(-interfaceRetention))
	if err != nil {
		return 0, fmt.Errorf("cannot prune interface name history: %w", err)
	}
	return n, nil
}

// lookup returns the name of router's ifIndex at t (unix ms); the first
// name known is used for times before it was first seen.
func (h *ifHistory) lookup(router int64, index uint32, t int64) string {
	list := (*h.snap.Load())[ifKey{router, index}]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].from <= t && t < list[i].to {
			return list[i].name
		}
	}
	return ""
}
