package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"
)

// File names inside the data directory.
const (
	// DBFile is the SQLite database.
	DBFile = "flowbox.db"
	// KeyFile holds the 32-byte AES-256 key that encrypts router passwords.
	KeyFile = "flowbox.key"
)

// Store is flowbox's SQLite database. Open builds it; Run is the single
// writer goroutine. All methods are safe for concurrent use.
type Store struct {
	cfg      Config
	logger   *slog.Logger
	path     string
	readOnly bool
	key      []byte   // nil when opened read-only
	lock     *dirLock // the data directory's lock (OpenExclusive), or nil

	w *sql.DB // writer: one connection
	r *sql.DB // readers: mode=ro
	// meta is one read-only connection for the name, exporter and address
	// dictionaries that raw reads resolve while they hold a reader
	// connection: sharing the reader pool would deadlock once every reader
	// connection is held by a scan waiting for the dictionary lock.
	meta *sql.DB

	metrics *metrics
	now     func() time.Time

	queue   chan *Batch
	free    chan *Batch  // written batches for reuse, bounded
	closeMu sync.RWMutex // held for reading while sending on queue
	closed  bool
	running atomic.Bool

	// attribution maps exporter addresses to router ids.
	attribution atomic.Pointer[map[netip.Addr]int64]

	seenMu     sync.Mutex
	exporterTS map[netip.Addr]time.Time // last flow received per exporter address
	routerTS   map[int64]time.Time      // last flow received per router

	health healthState
	// observer learns the writer's outcome per flow (SetWriteObserver).
	observer WriteObserver

	// writer-owned state, only touched by Run's goroutine (and Open).
	wr *writerState

	// tails are the host index tails of the format 2 partitions, by
	// partition name, published by the writer for readers.
	tailsMu sync.RWMutex
	tails   map[string]*hostTail

	cache nameCache // names and exporters for raw reads
}

// Open opens (creating if needed) the database in dataDir, migrates it to
// the current schema and loads the router attribution table. It creates
// dataDir (mode 0750) and, for a database that holds no encrypted router
// password, the key file (mode 0600); when passwords are stored and the key
// file is missing, it refuses with a *KeyMissingError instead of creating a
// key that could not decrypt them. It starts no goroutine: call Run to
// write flows.
//
// Open takes no lock: short-lived writers (flowbox router, token,
// subscribers) open the data directory while flowbox serve runs. The one
// long-running writer opens it with OpenExclusive.
func Open(ctx context.Context, dataDir string, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return openStore(ctx, dataDir, cfg, logger, reg, false)
}

// OpenExclusive is Open for the data directory's long-running writer
// (flowbox serve and demo): before touching the database it takes the
// data directory's lock (LockFile, an exclusive flock(2) released by Close
// or by the process's exit), so that a second one on the same directory
// refuses to start with a *LockedError naming the holder's process id,
// instead of sharing the flows with it. Readers and the short-lived
// writers of Open do not take the lock and work beside it.
func OpenExclusive(ctx context.Context, dataDir string, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return openStore(ctx, dataDir, cfg, logger, reg, true)
}

func openStore(ctx context.Context, dataDir string, cfg Config, logger *slog.Logger, reg prometheus.Registerer, exclusive bool) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid store config: %w", err)
	}
	if logger == nil {
		return nil, errors.New("cannot open store: nil logger")
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", describeDirError(dataDir, err))
	}
	if err := writable(dataDir); err != nil {
		return nil, describeDirError(dataDir, err)
	}
	s := newStore(cfg, logger, filepath.Join(dataDir, DBFile))
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	if exclusive {
		if s.lock, err = lockDataDir(dataDir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(s.path); err == nil {
		if err := writable(s.path); err != nil {
			return nil, fmt.Errorf("database %s is not writable (check its owner and mode): %w", s.path, err)
		}
	}
	s.w, err = openDB(s.path, "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000&_foreign_keys=on&_txlock=immediate&_cache_size=-16384")
	if err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	if err := migrate(ctx, s.w); err != nil {
		return nil, err
	}
	s.key, err = loadOrCreateKey(filepath.Join(dataDir, KeyFile), func() (int, error) { return countSecrets(ctx, s.w) })
	if err != nil {
		return nil, err
	}
	s.r, err = openDB(s.path, "mode=ro&_busy_timeout=5000&_cache_size=-16384")
	if err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	s.r.SetMaxIdleConns(4)
	if s.meta, err = openMeta(s.path, "mode=ro&_busy_timeout=5000"); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(reg, s); err != nil {
		return nil, err
	}
	if err := s.refreshAttribution(ctx); err != nil {
		return nil, err
	}
	s.wr, err = newWriterState(ctx, s)
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// OpenReadOnly opens an existing database for reading only, for example from
// `flowbox stats` while `flowbox serve` runs. It never creates or migrates
// anything and refuses a schema it does not know. Writing methods return an
// error; router passwords are not decrypted (Password stays empty).
//
// It reads a data directory on a read-only file system too: when the
// directory cannot be written and holds no write-ahead log, nothing can
// change the database, and SQLite is told so (immutable=1) instead of
// failing to create its shared-memory file.
func OpenReadOnly(ctx context.Context, dataDir string) (*Store, error) {
	return OpenReadOnlyConfig(ctx, dataDir, DefaultConfig())
}

// OpenReadOnlyConfig is OpenReadOnly with the store configuration the
// writer uses, so that queries pick the same tables (retention decides
// between hourly and daily usage, raw flows and rollups).
func OpenReadOnlyConfig(ctx context.Context, dataDir string, cfg Config) (*Store, error) {
	path := filepath.Join(dataDir, DBFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cannot open store: no database in %s (flowbox serve creates it on its first start): %w", dataDir, err)
		}
		return nil, fmt.Errorf("cannot open store: %w", err)
	}
	opts, err := readOnlyOptions(path, false)
	if err != nil {
		return nil, fmt.Errorf("cannot open store: %w", err)
	}
	s := newStore(cfg, slog.New(slog.DiscardHandler), path)
	s.readOnly = true
	s.r, err = openDB(path, opts)
	if err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(2)
	if s.meta, err = openMeta(path, opts); err != nil {
		s.r.Close()
		return nil, err
	}
	var v int
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		s.r.Close()
		s.meta.Close()
		return nil, fmt.Errorf("cannot read schema version: %w", err)
	}
	if v != len(migrationFiles()) {
		s.r.Close()
		s.meta.Close()
		return nil, &SchemaVersionError{Have: v, Want: len(migrationFiles())}
	}
	s.metrics = newUnregisteredMetrics()
	return s, nil
}

// readOnlyOptions returns the SQLite options of read-only connections to
// the database at path. SQLite reads a WAL database through its
// shared-memory file (-shm), which it creates next to the database when it
// is missing: on a directory it cannot write, that fails ("unable to open
// database file"). There, when no -wal exists, every committed
// transaction is in the database file and no writer can start beside us,
// so the file is opened as immutable (no locks, no -shm). With snapshot
// (Inspect, for flowbox check, which must create no file), immutable is
// used whenever no -wal exists, that is when no connection has the
// database open: the check reads two values at once, and a writer that
// starts meanwhile could at worst make them stale.
func readOnlyOptions(path string, snapshot bool) (string, error) {
	const ro = "mode=ro&_busy_timeout=5000"
	dir := filepath.Dir(path)
	wal := fileExists(path + "-wal")
	if wal || fileExists(path+"-journal") {
		if wal && !fileExists(path+"-shm") && writable(dir) != nil {
			return "", fmt.Errorf("data directory %s is read-only and its database has a write-ahead log (%s-wal) but no %s-shm, which SQLite needs to read it: copy the data directory to a writable place and read the copy, or make it writable", dir, DBFile, DBFile)
		}
		return ro, nil
	}
	if snapshot || writable(dir) != nil {
		return ro + "&immutable=1", nil
	}
	return ro, nil
}

// fileExists reports whether path exists (as far as this process can tell).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// openMeta opens the single dictionary connection (see Store.meta) with
// the given read-only options.
func openMeta(path, opts string) (*sql.DB, error) {
	db, err := openDB(path, opts)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

func newStore(cfg Config, logger *slog.Logger, path string) *Store {
	s := &Store{
		cfg:        cfg,
		logger:     logger,
		path:       path,
		now:        time.Now,
		queue:      make(chan *Batch, cfg.QueueSize),
		free:       make(chan *Batch, freeBatches),
		exporterTS: make(map[netip.Addr]time.Time),
		routerTS:   make(map[int64]time.Time),
		tails:      make(map[string]*hostTail),
	}
	empty := map[netip.Addr]int64{}
	s.attribution.Store(&empty)
	return s
}

// openDB opens a database/sql handle on the file: URI of path with the
// given query options. The driver is used directly (no global
// registration), with flowbox's SQL functions on every connection.
func openDB(path, opts string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve database path: %w", err)
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: opts}
	c := &connector{dsn: u.String(), drv: &sqlite3.SQLiteDriver{}}
	db := sql.OpenDB(c)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	return db, nil
}

// connector opens connections of one DSN with the sqlite3 driver.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c *connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c *connector) Driver() driver.Driver                        { return c.drv }

// Close closes the database handles. Call it after Run has returned; flows
// queued but not written by Run are lost.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	var errs []error
	if s.meta != nil {
		errs = append(errs, s.meta.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	// Released last: the next writer may start once the database is closed.
	errs = append(errs, s.lock.unlock())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close store: %w", err)
	}
	return nil
}

func (s *Store) writable() error {
	if s.readOnly {
		return errors.New("store is opened read-only")
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Health is the writer's status for the status page.
type Health struct {
	// OK is false while writes fail (disk full, read-only file system...).
	OK bool
	// Error is the last write error, "" when OK.
	Error string
	// Since is when the current state began.
	Since time.Time
	// DroppedBatches counts batches of flows lost because they could not be written.
	DroppedBatches uint64
	// DroppedFlows counts the flows of those batches and of the full queue.
	DroppedFlows uint64
	// QueueLength is the number of batches waiting for the writer.
	QueueLength int
	// QueueCapacity is the bound of that queue.
	QueueCapacity int
}

type healthState struct {
	mu             sync.Mutex
	err            error
	since          time.Time
	droppedBatches uint64
	droppedFlows   uint64
}

// Health returns the writer's current status.
func (s *Store) Health() Health {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	h := Health{
		OK:             s.health.err == nil,
		Since:          s.health.since,
		DroppedBatches: s.health.droppedBatches,
		DroppedFlows:   s.health.droppedFlows,
		QueueLength:    len(s.queue),
		QueueCapacity:  cap(s.queue),
	}
	if s.health.err != nil {
		h.Error = s.health.err.Error()
	}
	return h
}

// setHealth records the outcome of a write. It logs state changes only, so
// a full disk logs one error, not one per batch.
func (s *Store) setHealth(err error) {
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

func (s *Store) countDropped(batches, flows uint64) {
	s.health.mu.Lock()
	s.health.droppedBatches += batches
	s.health.droppedFlows += flows
	s.health.mu.Unlock()
}

// describeWriteError turns SQLite's full/read-only errors into a message an
// operator can act on.
func describeWriteError(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull:
			return fmt.Errorf("disk full: %w", err)
		case sqlite3.ErrReadonly:
			return fmt.Errorf("database is read-only (read-only file system or permissions): %w", err)
		case sqlite3.ErrIoErr, sqlite3.ErrCantOpen:
			return fmt.Errorf("i/o error (disk full, read-only or failing disk): %w", err)
		}
	}
	return err
}
