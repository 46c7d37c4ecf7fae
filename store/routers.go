package store

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

// ErrExporterConflict is wrapped by errors about two routers whose flows
// would come from one address: storing a router whose ExporterAddr is
// another router's, or (in provision) onboarding a router that cannot be
// told apart from another one.
var ErrExporterConflict = errors.New("exporter address used by another router")

// AddRouter inserts r and sets r.ID, r.CreatedAt and r.UpdatedAt. It returns
// an error wrapping ErrExists when the name is taken, and
// ErrExporterConflict when r.ExporterAddr is another router's. An empty
// State becomes StateNew.
func (s *Store) AddRouter(ctx context.Context, r *Router) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := validateRouter(r); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if r.State == "" {
		r.State = StateNew
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
			return fmt.Errorf("cannot add router %q: exporter address %s: %w", r.Name, r.ExporterAddr, ErrExporterConflict)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return fmt.Errorf("cannot add router %q: %w", r.Name, ErrExists)
		}
		return fmt.Errorf("cannot add router %q: %w", r.Name, describeWriteError(err))
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
// ErrExporterConflict when r.ExporterAddr is another router's.
func (s *Store) UpdateRouter(ctx context.Context, r *Router) error {
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
			return fmt.Errorf("cannot update router %q: exporter address %s: %w", r.Name, r.ExporterAddr, ErrExporterConflict)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return fmt.Errorf("cannot rename router %d to %q: %w", r.ID, r.Name, ErrExists)
		}
		return fmt.Errorf("cannot update router %q: %w", r.Name, describeWriteError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("cannot update router %q: %w", r.Name, err)
	} else if n == 0 {
		return fmt.Errorf("cannot update router %d: %w", r.ID, ErrNotFound)
	}
	r.UpdatedAt = now
	return s.refreshAttribution(ctx)
}

// GetRouter returns the router with that name, or an error wrapping ErrNotFound.
func (s *Store) GetRouter(ctx context.Context, name string) (*Router, error) {
	r, err := s.scanRouter(s.r.QueryRowContext(ctx, "SELECT "+routerColumns+" FROM routers WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("router %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get router %q: %w", name, err)
	}
	return r, nil
}

// GetRouterByID returns the router with that id, or an error wrapping ErrNotFound.
func (s *Store) GetRouterByID(ctx context.Context, id int64) (*Router, error) {
	r, err := s.scanRouter(s.r.QueryRowContext(ctx, "SELECT "+routerColumns+" FROM routers WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("router %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get router %d: %w", id, err)
	}
	return r, nil
}

// ListRouters returns every router, ordered by name.
func (s *Store) ListRouters(ctx context.Context) ([]Router, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+routerColumns+" FROM routers ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	defer rows.Close()
	var out []Router
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
func (s *Store) RemoveRouter(ctx context.Context, name string) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM routers WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("cannot remove router %q: %w", name, describeWriteError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("cannot remove router %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("cannot remove router %q: %w", name, ErrNotFound)
	}
	return s.refreshAttribution(ctx)
}

func validateRouter(r *Router) error {
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
func (s *Store) routerArgs(r *Router) ([]any, error) {
	pw, err := seal(s.key, r.Password)
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
		r.State, r.StateDetail, string(prevJSON), r.TargetID, r.TargetCreated, unixMilli(r.LastContact)}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type rowScanner interface{ Scan(dest ...any) error }

func (s *Store) scanRouter(row rowScanner) (*Router, error) {
	var (
		r                       Router
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
		if r.Password, err = open(s.key, pw); err != nil {
			return nil, fmt.Errorf("router %q: %w", r.Name, err)
		}
	}
	r.CreatedAt, r.UpdatedAt, r.LastContact = fromMilli(created), fromMilli(updated), fromMilli(contd)
	return &r, nil
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// exporterTaken reports a violation of the unique index on
// routers.exporter_addr.
func exporterTaken(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique &&
		strings.Contains(se.Error(), "exporter_addr")
}

// APIHost returns the host of r.Address when it is an IP address (not a
// name).
func (r *Router) APIHost() (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Claims returns the addresses that are r's, for attributing flows: its
// ExporterAddr, its /ip/address addresses, and the host of its API
// address when that is an IP address (a router reached through NAT
// exports from the NAT's address). Addresses are unmapped and listed once.
func (r *Router) Claims() []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.Unmap()
		if a.IsValid() && !a.IsUnspecified() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(r.ExporterAddr)
	for _, p := range r.Addresses {
		add(p.Addr())
	}
	if a, ok := r.APIHost(); ok {
		add(a)
	}
	return out
}

// Sources returns the addresses r may export flows from: its ExporterAddr
// when flowbox pinned one (the router sends from that address only), else
// every address it claims (RouterOS sends from the address of the
// interface towards the collector, which flowbox cannot know in advance).
func (r *Router) Sources() []netip.Addr {
	if r.ExporterAddr.IsValid() {
		return []netip.Addr{r.ExporterAddr.Unmap()}
	}
	return r.Claims()
}

// AttributionConflict is an address that several routers may export from
// (see Router.Sources): their flows cannot be told apart, so flows from it
// are attributed to none of them.
type AttributionConflict struct {
	Addr netip.Addr
	// Routers are the names of the routers, sorted.
	Routers []string
}

// String renders the conflict as "10.0.0.1 (tower-a, tower-b)".
func (c AttributionConflict) String() string {
	return fmt.Sprintf("%s (%s)", c.Addr, strings.Join(c.Routers, ", "))
}

// Attribute maps exporter addresses to routers, and never merges two
// routers:
//   - an address exactly one router may export from (Sources) is that
//     router's;
//   - an address several routers may export from is ambiguous: it maps to
//     id 0 (an onboarded router's address, whose flows are kept but
//     attributed to none) and is returned as a conflict;
//   - an address that no router may export from but that one router
//     claims (an address of a router pinned to another one) is that
//     router's; claimed by several, it maps to nothing.
//
// A loopback API host that several routers share is nobody's and no
// conflict: flowbox reaches those routers through local tunnels (or they
// are simulated on this host), and they export from addresses of their
// own. Conflicts are sorted by address.
func Attribute(routers []Router) (map[netip.Addr]int64, []AttributionConflict) {
	loopbackAPI := map[netip.Addr]int{}
	for i := range routers {
		if a, ok := routers[i].APIHost(); ok && a.IsLoopback() {
			loopbackAPI[a]++
		}
	}
	// tunnelled reports a that is only router i's shared loopback API host.
	tunnelled := func(i int, a netip.Addr) bool {
		r := &routers[i]
		if host, _ := r.APIHost(); host != a || loopbackAPI[a] < 2 || r.ExporterAddr.Unmap() == a {
			return false
		}
		return !slices.ContainsFunc(r.Addresses, func(p netip.Prefix) bool { return p.Addr().Unmap() == a })
	}
	may := map[netip.Addr][]int{}
	claims := map[netip.Addr][]int{}
	for i := range routers {
		for _, a := range routers[i].Sources() {
			if !tunnelled(i, a) {
				may[a] = append(may[a], i)
			}
		}
		for _, a := range routers[i].Claims() {
			if !tunnelled(i, a) {
				claims[a] = append(claims[a], i)
			}
		}
	}
	m := make(map[netip.Addr]int64, len(claims))
	var conflicts []AttributionConflict
	for a, idx := range may {
		if len(idx) == 1 {
			m[a] = routers[idx[0]].ID
			continue
		}
		m[a] = 0
		c := AttributionConflict{Addr: a}
		for _, i := range idx {
			c.Routers = append(c.Routers, routers[i].Name)
		}
		slices.Sort(c.Routers)
		conflicts = append(conflicts, c)
	}
	for a, idx := range claims {
		if _, done := may[a]; !done && len(idx) == 1 {
			m[a] = routers[idx[0]].ID
		}
	}
	slices.SortFunc(conflicts, func(x, y AttributionConflict) int { return x.Addr.Compare(y.Addr) })
	return m, conflicts
}

// attributionRouters loads what attribution needs of every router.
func attributionRouters(ctx context.Context, db *sql.DB) ([]Router, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, name, address, addresses, exporter_addr FROM routers ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("cannot load router addresses: %w", err)
	}
	defer rows.Close()
	var out []Router
	for rows.Next() {
		var (
			r           Router
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
func (s *Store) refreshAttribution(ctx context.Context) error {
	routers, err := attributionRouters(ctx, s.w)
	if err != nil {
		return err
	}
	m, conflicts := Attribute(routers)
	old := *s.attribution.Swap(&m)
	// Ambiguous addresses are the ones mapped to 0.
	for _, c := range conflicts {
		if id, ok := old[c.Addr]; !ok || id != 0 {
			s.logger.Warn("routers may export from the same address: its flows are kept but attributed to none of them; give each router its own address towards flowbox (provisioning sets the traffic-flow target's src-address where it can)",
				"address", c.Addr.String(), "routers", strings.Join(c.Routers, ","))
		}
	}
	for a, id := range old {
		if id != 0 || slices.ContainsFunc(conflicts, func(c AttributionConflict) bool { return c.Addr == a }) {
			continue
		}
		s.logger.Info("exporter address no longer claimed by several routers", "address", a.String(), "router_id", m[a])
	}
	return nil
}

// AttributionConflicts returns the addresses several routers may export
// from, whose flows are attributed to none of them, read from the
// inventory (so it includes routers added by another process).
func (s *Store) AttributionConflicts(ctx context.Context) ([]AttributionConflict, error) {
	routers, err := attributionRouters(ctx, s.r)
	if err != nil {
		return nil, err
	}
	_, conflicts := Attribute(routers)
	return conflicts, nil
}

// RouterFor returns the router id an exporter address is attributed to
// (see Attribute) and true; 0 and true for an address several routers may
// export from (their flows are trusted, kept and attributed to none); false
// when it matches no router.
func (s *Store) RouterFor(addr netip.Addr) (int64, bool) {
	id, ok := (*s.attribution.Load())[addr.Unmap()]
	return id, ok
}

// AddProvisionRun appends run to its router's history, sets run.ID (and
// run.Time when zero) and prunes the history to its bounds.
func (s *Store) AddProvisionRun(ctx context.Context, run *ProvisionRun) error {
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
		return fmt.Errorf("cannot add provision run: %w", describeWriteError(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO provision_runs (router_id, time, action, ok, summary, changes, transcript, error)
		VALUES (?,?,?,?,?,?,?,?)`, run.RouterID, run.Time.UnixMilli(), run.Action, run.OK, run.Summary,
		string(changes), string(transcript), run.Error)
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey {
			return fmt.Errorf("cannot add provision run for router %d: %w", run.RouterID, ErrNotFound)
		}
		return fmt.Errorf("cannot add provision run: %w", describeWriteError(err))
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
			return fmt.Errorf("cannot prune provision history: %w", describeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot add provision run: %w", describeWriteError(err))
	}
	run.ID = id
	return nil
}

// ProvisionRuns returns up to limit runs of the router, newest first
// (limit <= 0 means all that are kept).
func (s *Store) ProvisionRuns(ctx context.Context, routerID int64, limit int) ([]ProvisionRun, error) {
	if limit <= 0 {
		limit = historyOK + historyFailed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, router_id, time, action, ok, summary, changes, transcript, error
		FROM provision_runs WHERE router_id = ? ORDER BY time DESC, id DESC LIMIT ?`, routerID, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read provision runs: %w", err)
	}
	defer rows.Close()
	var out []ProvisionRun
	for rows.Next() {
		var (
			p                   ProvisionRun
			t                   int64
			changes, transcript string
		)
		if err := rows.Scan(&p.ID, &p.RouterID, &t, &p.Action, &p.OK, &p.Summary, &changes, &transcript, &p.Error); err != nil {
			return nil, fmt.Errorf("cannot read provision runs: %w", err)
		}
		p.Time = fromMilli(t)
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
