package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// File names inside the data directory.
const (
	// DBFile is the SQLite database.
	DBFile = "flowbox.db"
	// KeyFile holds the 32-byte AES-256 key that encrypts router passwords.
	KeyFile = "flowbox.key"
)

// DB is flowbox's database file (DBFile in the data directory) with its
// connections: one writer connection, a pool of read-only connections and
// one read-only connection for dictionaries (Meta). The flow database
// (store/flowdb) and the inventory (store/inventory) are built on it and
// share it; Open migrates the one schema of both. All methods are safe for
// concurrent use.
type DB struct {
	dir      string
	path     string
	readOnly bool
	key      []byte   // nil when opened read-only
	lock     *dirLock // the data directory's lock (OpenExclusive), or nil

	w    *sql.DB // writer: one connection; nil when read-only
	r    *sql.DB // readers: mode=ro
	meta *sql.DB // one read-only connection (see Meta)

	closeMu sync.RWMutex
	closed  bool
}

// Open opens (creating if needed) the database in dataDir and migrates it
// to the current schema. It creates dataDir (mode 0750) and, for a
// database that holds no encrypted router password, the key file (mode
// 0600); when passwords are stored and the key file is missing, it refuses
// with a *KeyMissingError instead of creating a key that could not decrypt
// them. It starts no goroutine.
//
// Open takes no lock: short-lived writers (flowbox router, token,
// subscribers) open the data directory while flowbox serve runs. The one
// long-running writer opens it with OpenExclusive.
func Open(ctx context.Context, dataDir string) (*DB, error) {
	return openDB(ctx, dataDir, false)
}

// OpenExclusive is Open for the data directory's long-running writer
// (flowbox serve and demo): before touching the database it takes the
// data directory's lock (LockFile, an exclusive flock(2) released by Close
// or by the process's exit), so that a second one on the same directory
// refuses to start with a *LockedError naming the holder's process id,
// instead of sharing the flows with it. Readers and the short-lived
// writers of Open do not take the lock and work beside it.
func OpenExclusive(ctx context.Context, dataDir string) (*DB, error) {
	return openDB(ctx, dataDir, true)
}

func openDB(ctx context.Context, dataDir string, exclusive bool) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", describeDirError(dataDir, err))
	}
	if err := writable(dataDir); err != nil {
		return nil, describeDirError(dataDir, err)
	}
	d := &DB{dir: dataDir, path: filepath.Join(dataDir, DBFile)}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	var err error
	if exclusive {
		if d.lock, err = lockDataDir(dataDir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(d.path); err == nil {
		if err := writable(d.path); err != nil {
			return nil, fmt.Errorf("database %s is not writable (check its owner and mode): %w", d.path, err)
		}
	}
	d.w, err = openConns(d.path, "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000&_foreign_keys=on&_txlock=immediate&_cache_size=-16384")
	if err != nil {
		return nil, err
	}
	d.w.SetMaxOpenConns(1)
	d.w.SetMaxIdleConns(1)
	d.w.SetConnMaxLifetime(0)
	if err := migrate(ctx, d.w); err != nil {
		return nil, err
	}
	d.key, err = loadOrCreateKey(filepath.Join(dataDir, KeyFile), func() (int, error) { return countSecrets(ctx, d.w) })
	if err != nil {
		return nil, err
	}
	d.r, err = openConns(d.path, "mode=ro&_busy_timeout=5000&_cache_size=-4096")
	if err != nil {
		return nil, err
	}
	d.r.SetMaxOpenConns(4)
	d.r.SetMaxIdleConns(4)
	if d.meta, err = openMeta(d.path, "mode=ro&_busy_timeout=5000"); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// OpenReadOnly opens an existing database for reading only, for example from
// `flowbox stats` while `flowbox serve` runs. It never creates or migrates
// anything and refuses a schema it does not know. Writing methods of the
// halves built on it return an error; router passwords are not decrypted
// (Key is nil).
//
// It reads a data directory on a read-only file system too: when the
// directory cannot be written and holds no write-ahead log, nothing can
// change the database, and SQLite is told so (immutable=1) instead of
// failing to create its shared-memory file.
func OpenReadOnly(ctx context.Context, dataDir string) (*DB, error) {
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
	d := &DB{dir: dataDir, path: path, readOnly: true}
	d.r, err = openConns(path, opts)
	if err != nil {
		return nil, err
	}
	d.r.SetMaxOpenConns(2)
	if d.meta, err = openMeta(path, opts); err != nil {
		d.r.Close()
		return nil, err
	}
	var v int
	if err := d.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		d.r.Close()
		d.meta.Close()
		return nil, fmt.Errorf("cannot read schema version: %w", err)
	}
	if v != len(migrationFiles()) {
		d.r.Close()
		d.meta.Close()
		return nil, &SchemaVersionError{Have: v, Want: len(migrationFiles())}
	}
	return d, nil
}

// Writer is the one writer connection (nil when opened read-only). Write
// transactions on it are serialized.
func (d *DB) Writer() *sql.DB { return d.w }

// Reader is the pool of read-only connections.
func (d *DB) Reader() *sql.DB { return d.r }

// Meta is one read-only connection for the dictionaries that raw reads
// resolve while they hold a Reader connection: sharing the reader pool
// would deadlock once every reader connection is held by a scan waiting
// for the dictionary lock.
func (d *DB) Meta() *sql.DB { return d.meta }

// Path is the database file's path.
func (d *DB) Path() string { return d.path }

// Dir is the data directory.
func (d *DB) Dir() string { return d.dir }

// ReadOnly reports whether the database was opened with OpenReadOnly.
func (d *DB) ReadOnly() bool { return d.readOnly }

// Key is the 32-byte key that encrypts router passwords (nil when opened
// read-only).
func (d *DB) Key() []byte { return d.key }

// Writable returns nil when the database can be written: an error when it
// was opened read-only, one wrapping ErrClosed after Close.
func (d *DB) Writable() error {
	if d.readOnly {
		return errors.New("store is opened read-only")
	}
	if d.Closed() {
		return ErrClosed
	}
	return nil
}

// Closed reports whether Close was called.
func (d *DB) Closed() bool {
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	return d.closed
}

// Close closes the database handles and releases the data directory's
// lock. Call it after the flow database's Run has returned.
func (d *DB) Close() error {
	d.closeMu.Lock()
	if d.closed {
		d.closeMu.Unlock()
		return nil
	}
	d.closed = true
	d.closeMu.Unlock()
	var errs []error
	if d.meta != nil {
		errs = append(errs, d.meta.Close())
	}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		errs = append(errs, d.w.Close())
	}
	// Released last: the next writer may start once the database is closed.
	errs = append(errs, d.lock.unlock())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close store: %w", err)
	}
	return nil
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

// openMeta opens the single dictionary connection (see DB.Meta) with
// the given read-only options.
func openMeta(path, opts string) (*sql.DB, error) {
	db, err := openConns(path, opts)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// openConns opens a database/sql handle on the file: URI of path with the
// given query options. The driver is used directly (no global
// registration), with flowbox's SQL functions on every connection.
func openConns(path, opts string) (*sql.DB, error) {
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

// DescribeWriteError turns SQLite's full/read-only errors into a message an
// operator can act on.
func DescribeWriteError(err error) error {
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
