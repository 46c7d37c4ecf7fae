package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/flowbox/flowbox/store"
)

// Provisioning history bounds per router: the newest historyOK successful
// runs and the newest historyFailed failed runs are kept, so failures stay
// visible after many later successes.
const (
	historyOK     = 50
	historyFailed = 100
)

const routerColumns = `id, name, address, tls, tls_fingerprint, username, password,
	identity, board, model, serial, version, interfaces, addresses, exporter_addr,
	state, state_detail, previous, target_id, target_created,
	created_at, updated_at, last_contact`

// AddRouter inserts r and sets r.ID, r.CreatedAt and r.UpdatedAt. It returns
// an error wrapping ErrExists when the name is taken, and
// store.ErrExporterConflict when r.ExporterAddr is another router's. An empty
// State becomes StateNew.
func (s *Inventory) AddRouter(ctx context.Context, r *store.Router) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := validateRouter(r); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if r.State == "" {
		r.State = store.StateNew
	}
	args, err := s.routerArgs(r)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO routers (name, address, tls, tls_fingerprint, username, password,
		identity, board, model, serial, version, interfaces, addresses, exporter_addr,
		state, state_detail, previous, target_id, target_created, last_contact, created_at, updated_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		append(args, now.UnixMilli(), now.UnixMilli())...)
	if err != nil {
		if exporterTaken(err) {
			return fmt.Errorf("cannot add router %q: exporter address %s: %w", r.Name, r.ExporterAddr, store.ErrExporterConflict)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return fmt.Errorf("cannot add router %q: %w", r.Name, store.ErrExists)
		}
		return fmt.Errorf("cannot add router %q: %w", r.Name, store.DescribeWriteError(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("cannot add router %q: %w", r.Name, err)
	}
	r.ID, r.CreatedAt, r.UpdatedAt = id, now, now
	return s.refreshAttribution(ctx)
}

// UpdateRouter replaces every field of the router with id r.ID (CreatedAt is
// kept) and sets r.UpdatedAt. It returns an error wrapping ErrNotFound when
// no such router exists, ErrExists when renaming onto a taken name, and
// store.ErrExporterConflict when r.ExporterAddr is another router's.
func (s *Inventory) UpdateRouter(ctx context.Context, r *store.Router) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := validateRouter(r); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	args, err := s.routerArgs(r)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE routers SET name=?, address=?, tls=?, tls_fingerprint=?, username=?, password=?,
		identity=?, board=?, model=?, serial=?, version=?, interfaces=?, addresses=?, exporter_addr=?,
		state=?, state_detail=?, previous=?, target_id=?, target_created=?, last_contact=?, updated_at=?
		WHERE id=?`, append(args, now.UnixMilli(), r.ID)...)
	if err != nil {
		if exporterTaken(err) {
			return fmt.Errorf("cannot update router %q: exporter address %s: %w", r.Name, r.ExporterAddr, store.ErrExporterConflict)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return fmt.Errorf("cannot rename router %d to %q: %w", r.ID, r.Name, store.ErrExists)
		}
		return fmt.Errorf("cannot update router %q: %w", r.Name, store.DescribeWriteError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("cannot update router %q: %w", r.Name, err)
	} else if n == 0 {
		return fmt.Errorf("cannot update router %d: %w", r.ID, store.ErrNotFound)
	}
	r.UpdatedAt = now
	return s.refreshAttribution(ctx)
}

// GetRouter returns the router with that name, or an error wrapping ErrNotFound.
func (s *Inventory) GetRouter(ctx context.Context, name string) (*store.Router, error) {
	r, err := s.scanRouter(s.r.QueryRowContext(ctx, "SELECT "+routerColumns+" FROM routers WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("router %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get router %q: %w", name, err)
	}
	return r, nil
}

// GetRouterByID returns the router with that id, or an error wrapping ErrNotFound.
func (s *Inventory) GetRouterByID(ctx context.Context, id int64) (*store.Router, error) {
	r, err := s.scanRouter(s.r.QueryRowContext(ctx, "SELECT "+routerColumns+" FROM routers WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("router %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get router %d: %w", id, err)
	}
	return r, nil
}

// ListRouters returns every router, ordered by name.
func (s *Inventory) ListRouters(ctx context.Context) ([]store.Router, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+routerColumns+" FROM routers ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	defer rows.Close()
	var out []store.Router
	for rows.Next() {
		r, err := s.scanRouter(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list routers: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	return out, nil
}

// RemoveRouter deletes the router and its provisioning history. Its flows
// and rollups stay until retention removes them (they keep the router id, so
// the UI can show them as a removed router); flows arriving afterwards from
// its addresses are stored as from an unknown exporter.
func (s *Inventory) RemoveRouter(ctx context.Context, name string) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM routers WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("cannot remove router %q: %w", name, store.DescribeWriteError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("cannot remove router %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("cannot remove router %q: %w", name, store.ErrNotFound)
	}
	return s.refreshAttribution(ctx)
}

func validateRouter(r *store.Router) error {
	if strings.TrimSpace(r.Name) == "" {
		return errors.New("invalid router: name must not be empty")
	}
	if r.Address == "" {
		return fmt.Errorf("invalid router %q: address must not be empty", r.Name)
	}
	if _, _, err := net.SplitHostPort(r.Address); err != nil {
		return fmt.Errorf("invalid router %q: address %q is not host:port", r.Name, r.Address)
	}
	return nil
}

// routerArgs returns the column values of r in the order of the INSERT and
// UPDATE statements (without the timestamps they add).
func (s *Inventory) routerArgs(r *store.Router) ([]any, error) {
	pw, err := seal(s.key, r.Password, r.Name)
	if err != nil {
		return nil, fmt.Errorf("cannot encrypt password of router %q: %w", r.Name, err)
	}
	ifs, err := json.Marshal(nonNil(r.Interfaces))
	if err != nil {
		return nil, fmt.Errorf("cannot encode interfaces of router %q: %w", r.Name, err)
	}
	addrs, err := json.Marshal(nonNil(r.Addresses))
	if err != nil {
		return nil, fmt.Errorf("cannot encode addresses of router %q: %w", r.Name, err)
	}
	prev := r.Previous
	if prev == nil {
		prev = map[string]string{}
	}
	prevJSON, err := json.Marshal(prev)
	if err != nil {
		return nil, fmt.Errorf("cannot encode previous values of router %q: %w", r.Name, err)
	}
	exp := ""
	if r.ExporterAddr.IsValid() {
		exp = r.ExporterAddr.Unmap().String()
	}
	return []any{r.Name, r.Address, r.TLS, r.TLSFingerprint, r.Username, pw,
		r.Identity, r.Board, r.Model, r.Serial, r.Version, string(ifs), string(addrs), exp,
		r.State, r.StateDetail, string(prevJSON), r.TargetID, r.TargetCreated, store.UnixMilli(r.LastContact)}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type rowScanner interface{ Scan(dest ...any) error }

func (s *Inventory) scanRouter(row rowScanner) (*store.Router, error) {
	var (
		r                       store.Router
		pw                      []byte
		ifs, addrs, prev, exp   string
		created, updated, contd int64
	)
	err := row.Scan(&r.ID, &r.Name, &r.Address, &r.TLS, &r.TLSFingerprint, &r.Username, &pw,
		&r.Identity, &r.Board, &r.Model, &r.Serial, &r.Version, &ifs, &addrs, &exp,
		&r.State, &r.StateDetail, &prev, &r.TargetID, &r.TargetCreated,
		&created, &updated, &contd)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ifs), &r.Interfaces); err != nil {
		return nil, fmt.Errorf("router %q: bad interfaces column: %w", r.Name, err)
	}
	if err := json.Unmarshal([]byte(addrs), &r.Addresses); err != nil {
		return nil, fmt.Errorf("router %q: bad addresses column: %w", r.Name, err)
	}
	if err := json.Unmarshal([]byte(prev), &r.Previous); err != nil {
		return nil, fmt.Errorf("router %q: bad previous column: %w", r.Name, err)
	}
	if exp != "" {
		if r.ExporterAddr, err = netip.ParseAddr(exp); err != nil {
			return nil, fmt.Errorf("router %q: bad exporter_addr column: %w", r.Name, err)
		}
	}
	if len(r.Interfaces) == 0 {
		r.Interfaces = nil
	}
	if len(r.Addresses) == 0 {
		r.Addresses = nil
	}
	if len(r.Previous) == 0 {
		r.Previous = nil
	}
	if s.key != nil {
		if r.Password, err = open(s.key, pw, r.Name); err != nil {
			return nil, fmt.Errorf("router %q: %w", r.Name, err)
		}
	}
	r.CreatedAt, r.UpdatedAt, r.LastContact = store.FromMilli(created), store.FromMilli(updated), store.FromMilli(contd)
	return &r, nil
}

// exporterTaken reports a violation of the unique index on
// routers.exporter_addr.
func exporterTaken(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique &&
		strings.Contains(se.Error(), "exporter_addr")
}

// attributionRouters loads what attribution needs of every router.
func attributionRouters(ctx context.Context, db *sql.DB) ([]store.Router, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, name, address, addresses, exporter_addr FROM routers ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("cannot load router addresses: %w", err)
	}
	defer rows.Close()
	var out []store.Router
	for rows.Next() {
		var (
			r           store.Router
			prefix, exp string
		)
		if err := rows.Scan(&r.ID, &r.Name, &r.Address, &prefix, &exp); err != nil {
			return nil, fmt.Errorf("cannot load router addresses: %w", err)
		}
		if err := json.Unmarshal([]byte(prefix), &r.Addresses); err != nil {
			return nil, fmt.Errorf("cannot load addresses of router %q: %w", r.Name, err)
		}
		if exp != "" {
			if r.ExporterAddr, err = netip.ParseAddr(exp); err != nil {
				return nil, fmt.Errorf("cannot load exporter address of router %q: %w", r.Name, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load router addresses: %w", err)
	}
	return out, nil
}

// refreshAttribution rebuilds the exporter address -> router id map from
// the inventory (see Attribute) and logs the conflicts that appeared or
// went away since the previous map.
func (s *Inventory) refreshAttribution(ctx context.Context) error {
	routers, err := attributionRouters(ctx, s.w)
	if err != nil {
		return err
	}
	m, conflicts := store.Attribute(routers)
	old := *s.attribution.Swap(&m)
	// Ambiguous addresses are the ones mapped to 0.
	for _, c := range conflicts {
		if id, ok := old[c.Addr]; !ok || id != 0 {
			s.logger.Warn("routers may export from the same address: its flows are kept but attributed to none of them; give each router its own address towards flowbox (provisioning sets the traffic-flow target's src-address where it can)",
				"address", c.Addr.String(), "routers", strings.Join(c.Routers, ","))
		}
	}
	for a, id := range old {
		if id != 0 || slices.ContainsFunc(conflicts, func(c store.AttributionConflict) bool { return c.Addr == a }) {
			continue
		}
		s.logger.Info("exporter address no longer claimed by several routers", "address", a.String(), "router_id", m[a])
	}
	return nil
}

// AttributionConflicts returns the addresses several routers may export
// from, whose flows are attributed to none of them, read from the
// inventory (so it includes routers added by another process).
func (s *Inventory) AttributionConflicts(ctx context.Context) ([]store.AttributionConflict, error) {
	routers, err := attributionRouters(ctx, s.r)
	if err != nil {
		return nil, err
	}
	_, conflicts := store.Attribute(routers)
	return conflicts, nil
}

// RouterFor returns the router id an exporter address is attributed to
// (see Attribute) and true; 0 and true for an address several routers may
// export from (their flows are trusted, kept and attributed to none); false
// when it matches no router.
func (s *Inventory) RouterFor(addr netip.Addr) (int64, bool) {
	id, ok := (*s.attribution.Load())[addr.Unmap()]
	return id, ok
}

// AddProvisionRun appends run to its router's history, sets run.ID (and
// run.Time when zero) and prunes the history to its bounds.
func (s *Inventory) AddProvisionRun(ctx context.Context, run *store.ProvisionRun) error {
	if err := s.writable(); err != nil {
		return err
	}
	if run.Time.IsZero() {
		run.Time = s.now()
	}
	run.Time = run.Time.UTC().Truncate(time.Millisecond)
	changes, err := json.Marshal(nonNil(run.Changes))
	if err != nil {
		return fmt.Errorf("cannot encode provision run: %w", err)
	}
	transcript, err := json.Marshal(nonNil(run.Transcript))
	if err != nil {
		return fmt.Errorf("cannot encode provision run: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot add provision run: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO provision_runs (router_id, time, action, ok, summary, changes, transcript, error)
		VALUES (?,?,?,?,?,?,?,?)`, run.RouterID, run.Time.UnixMilli(), run.Action, run.OK, run.Summary,
		string(changes), string(transcript), run.Error)
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey {
			return fmt.Errorf("cannot add provision run for router %d: %w", run.RouterID, store.ErrNotFound)
		}
		return fmt.Errorf("cannot add provision run: %w", store.DescribeWriteError(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("cannot add provision run: %w", err)
	}
	for _, b := range []struct {
		ok   bool
		keep int
	}{{true, historyOK}, {false, historyFailed}} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM provision_runs WHERE router_id = ?1 AND ok = ?2 AND id NOT IN
			(SELECT id FROM provision_runs WHERE router_id = ?1 AND ok = ?2 ORDER BY time DESC, id DESC LIMIT ?3)`,
			run.RouterID, b.ok, b.keep); err != nil {
			return fmt.Errorf("cannot prune provision history: %w", store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot add provision run: %w", store.DescribeWriteError(err))
	}
	run.ID = id
	return nil
}

// ProvisionRuns returns up to limit runs of the router, newest first
// (limit <= 0 means all that are kept).
func (s *Inventory) ProvisionRuns(ctx context.Context, routerID int64, limit int) ([]store.ProvisionRun, error) {
	if limit <= 0 {
		limit = historyOK + historyFailed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, router_id, time, action, ok, summary, changes, transcript, error
		FROM provision_runs WHERE router_id = ? ORDER BY time DESC, id DESC LIMIT ?`, routerID, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read provision runs: %w", err)
	}
	defer rows.Close()
	var out []store.ProvisionRun
	for rows.Next() {
		var (
			p                   store.ProvisionRun
			t                   int64
			changes, transcript string
		)
		if err := rows.Scan(&p.ID, &p.RouterID, &t, &p.Action, &p.OK, &p.Summary, &changes, &transcript, &p.Error); err != nil {
			return nil, fmt.Errorf("cannot read provision runs: %w", err)
		}
		p.Time = store.FromMilli(t)
		if err := json.Unmarshal([]byte(changes), &p.Changes); err != nil {
			return nil, fmt.Errorf("cannot read provision run %d: %w", p.ID, err)
		}
		if err := json.Unmarshal([]byte(transcript), &p.Transcript); err != nil {
			return nil, fmt.Errorf("cannot read provision run %d: %w", p.ID, err)
		}
		if len(p.Changes) == 0 {
			p.Changes = nil
		}
		if len(p.Transcript) == 0 {
			p.Transcript = nil
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read provision runs: %w", err)
	}
	return out, nil
}
