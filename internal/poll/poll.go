// Package poll holds the loops the router pollers share (counters, DNS
// caches, subscribers): a round every interval, and a bounded fan-out
// over the routers of a round.
package poll

import (
	"context"
	"sync"
	"time"
)

// Every runs round at once, then every interval, until ctx ends.
func Every(ctx context.Context, interval time.Duration, round func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Each calls fn for every item, at most n at a time (at least one), and
// returns when every call has.
func Each[T any](items []T, n int, fn func(T)) {
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(it)
		}()
	}
	wg.Wait()
}
