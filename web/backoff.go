package web

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// Per-account login backoff: after backoffFree failed logins of one
// account, from any address, each further attempt must wait twice as long
// as the previous one (1 s, 2 s, 4 s... at most backoffMax) after the last
// failure. A success clears it; an account quiet for backoffForget is
// forgotten. It slows a password guess spread over many addresses without
// locking the real user out for long.
const (
	backoffFree   = 5
	backoffMax    = 5 * time.Minute
	backoffForget = 30 * time.Minute
)

// accountBackoff holds the failed logins per account name, bounded: when
// full, the least recently failed account is forgotten and counted.
type accountBackoff struct {
	mu      sync.Mutex
	byName  map[string]*list.Element
	lru     *list.List // least recently failed first
	max     int
	evicted func()
}

type backoffEntry struct {
	name  string
	fails int
	last  time.Time
}

func newAccountBackoff(max int, evicted func()) *accountBackoff {
	return &accountBackoff{byName: map[string]*list.Element{}, lru: list.New(), max: max, evicted: evicted}
}

// key folds the account name as the user table compares it.
func backoffKey(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// wait returns how long the account's next attempt must still wait (0: it
// may try now).
func (b *accountBackoff) wait(name string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.byName[backoffKey(name)]
	if !ok {
		return 0
	}
	ent := e.Value.(*backoffEntry)
	if now.Sub(ent.last) >= backoffForget {
		b.lru.Remove(e)
		delete(b.byName, ent.name)
		return 0
	}
	if ent.fails < backoffFree {
		return 0
	}
	d := backoffMax
	if shift := ent.fails - backoffFree; shift < 20 {
		d = min(time.Duration(1<<shift)*time.Second, backoffMax)
	}
	if left := ent.last.Add(d).Sub(now); left > 0 {
		return left
	}
	return 0
}

// failed records a failed login of the account.
func (b *accountBackoff) failed(name string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := backoffKey(name)
	if e, ok := b.byName[k]; ok {
		ent := e.Value.(*backoffEntry)
		if now.Sub(ent.last) >= backoffForget {
			ent.fails = 0
		}
		ent.fails++
		ent.last = now
		b.lru.MoveToBack(e)
		return
	}
	for len(b.byName) >= b.max {
		oldest := b.lru.Front()
		b.lru.Remove(oldest)
		delete(b.byName, oldest.Value.(*backoffEntry).name)
		b.evicted()
	}
	b.byName[k] = b.lru.PushBack(&backoffEntry{name: k, fails: 1, last: now})
}

// succeeded clears the account's failures.
func (b *accountBackoff) succeeded(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.byName[backoffKey(name)]; ok {
		b.lru.Remove(e)
		delete(b.byName, backoffKey(name))
	}
}
