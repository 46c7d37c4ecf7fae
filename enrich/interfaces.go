package enrich

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxInterfacesPerRouter bounds the interface names kept per router (a
// PPPoE concentrator has one dynamic interface per session).
const maxInterfacesPerRouter = 20000

type ifKey struct {
	router int64
	index  uint32
}

// ifName is one period during which an ifIndex had a name.
type ifName struct {
	name     string
	from, to int64 // unix ms; to is MaxInt64 while current
}

// ifHistory keeps interface names per router and ifIndex with their
// history (dynamic interfaces change names as sessions come and go), for
// HistoryWindow.
type ifHistory struct {
	window  time.Duration
	metrics *metrics

	mu    sync.Mutex
	names map[ifKey][]ifName
	count map[int64]int

	snap atomic.Pointer[map[ifKey][]ifName]
}

func newIfHistory(window time.Duration, m *metrics) *ifHistory {
	h := &ifHistory{window: window, metrics: m, names: map[ifKey][]ifName{}, count: map[int64]int{}}
	empty := map[ifKey][]ifName{}
	h.snap.Store(&empty)
	return h
}

// update records the names of router's interfaces seen at now. With
// seedOnly (names from the inventory) only unknown indexes are added;
// otherwise (a poll) changed names start a new period and missing indexes
// end theirs.
func (h *ifHistory) update(router int64, names map[uint32]string, now time.Time, seedOnly bool) {
	ms := now.UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := false
	for idx, name := range names {
		k := ifKey{router, idx}
		list := h.names[k]
		if n := len(list); n > 0 && list[n-1].to == math.MaxInt64 {
			if list[n-1].name == name || seedOnly {
				continue
			}
			list[n-1].to = ms
		} else if seedOnly && n > 0 {
			continue
		}
		if h.count[router] >= maxInterfacesPerRouter {
			h.metrics.interfaceDrops.Inc()
			continue
		}
		h.names[k] = append(list, ifName{name: name, from: 0, to: math.MaxInt64})
		if len(list) > 0 {
			h.names[k][len(list)].from = ms
		}
		h.count[router]++
		changed = true
	}
	if !seedOnly {
		for k, list := range h.names {
			if k.router != router {
				continue
			}
			if _, ok := names[k.index]; !ok && list[len(list)-1].to == math.MaxInt64 {
				list[len(list)-1].to = ms
				changed = true
			}
		}
	}
	// Forget periods that ended before the window.
	limit := now.Add(-h.window).UnixMilli()
	for k, list := range h.names {
		kept := slices.DeleteFunc(slices.Clone(list), func(n ifName) bool { return n.to < limit })
		if len(kept) != len(list) {
			h.count[k.router] -= len(list) - len(kept)
			changed = true
			if len(kept) == 0 {
				delete(h.names, k)
			} else {
				h.names[k] = kept
			}
		}
	}
	if changed {
		snap := make(map[ifKey][]ifName, len(h.names))
		for k, v := range h.names {
			snap[k] = slices.Clone(v)
		}
		h.snap.Store(&snap)
	}
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
