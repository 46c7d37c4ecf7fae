// Package flowdb is flowbox's flow database on the shared SQLite file
// (store.DB): raw flows in 5-minute partitions with their row codec and
// host index, the rollups computed at ingest, subscriber usage, retention,
// and the single writer that fills them from one bounded queue. It
// imports nothing of the inventory (store/inventory): the router
// attribution of InsertFlows comes in through RouterResolver.
package flowdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// RouterResolver attributes an exporter address to a router: the router id
// and true; 0 and true for an address several routers may export from;
// false when it matches no router. The inventory implements it.
type RouterResolver interface {
	RouterFor(addr netip.Addr) (int64, bool)
}

// FlowDB is the flow database on a store.DB: raw partitions, host index,
// rollups and usage, and the single writer (Run) that fills them. All
// methods are safe for concurrent use.
type FlowDB struct {
	db       *store.DB
	cfg      store.Config
	logger   *slog.Logger
	path     string
	readOnly bool
	routers  RouterResolver // attributes InsertFlows' flows; may be nil

	w    *sql.DB // the DB's writer connection
	r    *sql.DB // the DB's readers
	meta *sql.DB // the DB's dictionary connection (see DB.Meta)

	metrics *metrics
	now     func() time.Time

	queue   chan *store.Batch
	free    *store.BatchPool // written batches for reuse, bounded
	closeMu sync.RWMutex     // held for reading while sending on queue
	closed  bool
	running atomic.Bool

	seenMu     sync.Mutex
	exporterTS map[netip.Addr]time.Time // last flow received per exporter address
	routerTS   map[int64]time.Time      // last flow received per router

	health healthState
	// observer learns the writer's outcome per flow (SetWriteObserver).
	observer store.WriteObserver

	// writer-owned state, only touched by Run's goroutine (and New).
	wr *writerState
	// nat is the writer's NAT mappings in memory (natmap.go); nil when
	// read-only. natCount are its counters.
	nat      *natCache
	natCount natCounters
	// rateGen counts the days of 5-minute samples packed (rates.go): a
	// report summary read before a pack is not kept.
	rateGen atomic.Uint64

	// tails are the host index tails of the format 2 partitions, by
	// partition name, published by the writer for readers.
	tailsMu sync.RWMutex
	tails   map[string]*hostTail

	cache nameCache // names and exporters for raw reads
	// lists caches the lists of packed blocks of the partitions read.
	lists *blockLists

	// zenc and zdec compress and decompress packed blocks (rawpack.go);
	// both are safe for concurrent EncodeAll and DecodeAll.
	zenc *zstd.Encoder
	zdec *zstd.Decoder
	// zraw compresses without entropy coding the block sections whose
	// reads must be fastest.
	zraw *zstd.Encoder
	// packRows is the number of rows of a packed block (a field for tests).
	packRows int
	packWake chan struct{} // capacity 1: the writer's maintenance wakes the packer
	pk       packerState   // the packer goroutine's own
	// scanSlots are the cores a raw scan may use beyond its own
	// (GOMAXPROCS-1), taken only when free (scan.go, splitScan).
	scanSlots   chan struct{}
	parallelMin int
	// wholeRows makes raw scans decode every row whole instead of reading
	// the columns they need (a field for tests, which compare the two).
	wholeRows bool
}

// New builds the flow database on db. On a writable db it loads the
// writer's state (partitions, host index tails, rollup watermarks); on a
// read-only one it only answers queries. routers (optional) attributes
// the flows of InsertFlows whose RouterID is 0. It starts no goroutine:
// call Run to write flows. reg may be nil.
func New(ctx context.Context, db *store.DB, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer, routers RouterResolver) (*FlowDB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid store config: %w", err)
	}
	if db == nil {
		return nil, errors.New("cannot build the flow database: nil database")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &FlowDB{
		db:          db,
		cfg:         cfg,
		logger:      logger,
		path:        db.Path(),
		readOnly:    db.ReadOnly(),
		routers:     routers,
		w:           db.Writer(),
		r:           db.Reader(),
		meta:        db.Meta(),
		now:         time.Now,
		queue:       make(chan *store.Batch, cfg.QueueSize),
		free:        store.NewBatchPool(store.FreeBatches),
		exporterTS:  make(map[netip.Addr]time.Time),
		routerTS:    make(map[int64]time.Time),
		tails:       make(map[string]*hostTail),
		packRows:    packRowsDefault,
		scanSlots:   make(chan struct{}, runtime.GOMAXPROCS(0)-1),
		parallelMin: parallelMinRows,
		packWake:    make(chan struct{}, 1),
	}
	var err error
	if s.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecoderMaxMemory(64<<20)); err != nil {
		return nil, fmt.Errorf("cannot build the flow database: %w", err)
	}
	if s.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false)); err != nil {
		return nil, fmt.Errorf("cannot build the flow database: %w", err)
	}
	if s.zraw, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false),
		zstd.WithNoEntropyCompression(true)); err != nil {
		return nil, fmt.Errorf("cannot build the flow database: %w", err)
	}
	if s.readOnly {
		s.metrics = newUnregisteredMetrics()
		s.lists = newBlockLists(s.metrics)
		return s, nil
	}
	if s.metrics, err = newMetrics(reg, s); err != nil {
		return nil, err
	}
	s.lists = newBlockLists(s.metrics)
	if s.wr, err = newWriterState(ctx, s); err != nil {
		return nil, err
	}
	if cfg.NATRetention > 0 { // 0: no NAT store
		if s.nat, err = newNATCache(ctx, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close refuses further flows and writes. Call it after Run has returned;
// flows queued but not written by Run are lost. It does not close the DB.
func (s *FlowDB) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closed = true
	return nil
}

// writable returns nil when the flow database can be written.
func (s *FlowDB) writable() error {
	if err := s.db.Writable(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// healthState is the writer's outcome, behind Health.
type healthState struct {
	mu             sync.Mutex
	err            error
	since          time.Time
	droppedBatches uint64
	droppedFlows   uint64
	packErrors     uint64
	packError      string
}

// Health returns the writer's current status.
func (s *FlowDB) Health() store.Health {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	h := store.Health{
		OK:             s.health.err == nil,
		Since:          s.health.since,
		DroppedBatches: s.health.droppedBatches,
		DroppedFlows:   s.health.droppedFlows,
		QueueLength:    len(s.queue),
		QueueCapacity:  cap(s.queue),
	}
	h.NATMappingsDropped, h.NATEvicted = s.natCount.dropped.Load(), s.natCount.evicted.Load()
	h.PackErrors, h.PackError = s.health.packErrors, s.health.packError
	if s.health.err != nil {
		h.Error = s.health.err.Error()
	}
	return h
}

// setHealth records the outcome of a write. It logs state changes only, so
// a full disk logs one error, not one per batch.
func (s *FlowDB) setHealth(err error) {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	was := s.health.err
	switch {
	case err == nil && was != nil:
		s.logger.Info("writes resumed", "after", s.now().Sub(s.health.since).Round(time.Second).String())
		s.health.err, s.health.since = nil, s.now()
		s.metrics.healthy.Set(1)
	case err != nil && (was == nil || was.Error() != err.Error()):
		s.logger.Error("cannot write to the database; flows are being dropped", "err", err)
		s.health.err, s.health.since = err, s.now()
		s.metrics.healthy.Set(0)
	}
}

func (s *FlowDB) countDropped(batches, flows uint64) {
	s.health.mu.Lock()
	s.health.droppedBatches += batches
	s.health.droppedFlows += flows
	s.health.mu.Unlock()
}

// FlowDB is the SQLite implementation of store.FlowDB.
var _ store.FlowDB = (*FlowDB)(nil)
