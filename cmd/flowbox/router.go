package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// passwordEnv is the environment variable `router add` reads the router
// password from when --password-file is not given.
const passwordEnv = "FLOWBOX_ROUTER_PASSWORD"

// routerUsage lists the subcommands of `flowbox router`.
const routerUsage = `usage: flowbox router COMMAND [flags]

commands:
  add --name NAME --address HOST[:PORT] [--tls=false] --user USER [--password-file FILE] [--dry-run] [--create-user] [--no-verify]
                 connect, detect, store and provision a router (password from --password-file,
                 $` + passwordEnv + ` or a prompt)
  list           list the routers
  show NAME      show what flowbox knows of a router and its recent history
  provision NAME apply the plan again (idempotent), then verify
  verify NAME    wait for flows from the router [--timeout DURATION]
  undo NAME      restore the router's previous traffic-flow settings
  remove NAME [--keep-router-config]
                 undo, then delete the router from the inventory
  create-user NAME
                 create a least-privilege RouterOS user (api,read,write) and store it

every command also takes --config FILE and --data-dir DIR
`

// runRouter dispatches `flowbox router ...`. The commands open the store
// directly, so they work whether or not `flowbox serve` runs (SQLite WAL).
func runRouter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, routerUsage)
		if len(args) == 0 {
			return usageError{"router: missing command"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
		return routerAdd(ctx, e, args)
	case "list":
		return routerList(ctx, e, args)
	case "show", "provision", "verify", "undo", "remove", "create-user":
		return routerNamed(ctx, e, sub, args)
	}
	fmt.Fprint(e.stderr, routerUsage)
	return usageError{fmt.Sprintf("router: unknown command %q", sub)}
}

// openProvisioner opens the store and builds a provisioner on it.
func openProvisioner(ctx context.Context, e *env, cfg Config) (*provision.Provisioner, func(), error) {
	prov, _, closeStore, err := openProvisionerStore(ctx, e, cfg)
	return prov, closeStore, err
}

// openProvisionerStore is openProvisioner that also returns the storage.
func openProvisionerStore(ctx context.Context, e *env, cfg Config) (*provision.Provisioner, *storage, func(), error) {
	logger := newLogger(e.stderr, cfg.Log)
	reg := prometheus.NewRegistry()
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.Shared, logger.With("component", "store"), reg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot open store: %w", err)
	}
	prov, err := provision.New(cfg.Provision, provision.Deps{
		Store: st, Collector: savedExporters{st}, Logger: logger.With("component", "provision"), Registerer: reg,
	})
	if err != nil {
		_ = st.Close()
		return nil, nil, nil, err
	}
	return prov, st, func() { _ = st.Close() }, nil
}

// savedExporters gives `router verify`, in a process of its own, the
// per-exporter counters that `flowbox serve` saves every few seconds, so
// that it can tell whose flows arrive from the router's addresses.
type savedExporters struct{ st *storage }

func (s savedExporters) Exporters() []store.ExporterStats {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := s.st.ExporterStats(ctx)
	if err != nil {
		return nil
	}
	return stats
}

func routerAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "router add")
	load := commonFlags(fs)
	var req provision.AddRequest
	fs.StringVar(&req.Name, "name", "", "router `NAME` in flowbox")
	fs.StringVar(&req.Address, "address", "", "API address `HOST[:PORT]` (port 8729 for API-SSL, 8728 with --tls=false)")
	fs.BoolVar(&req.TLS, "tls", true, "use API-SSL (the default; the certificate is pinned on first use); --tls=false uses the plain API, which sends the password in clear")
	fs.StringVar(&req.Username, "user", "", "RouterOS `USER` (an admin, or a user with policy api,read,write)")
	pwFile := fs.String("password-file", "", "read the password from `FILE` (else $"+passwordEnv+", else a prompt)")
	fs.BoolVar(&req.DryRun, "dry-run", false, "only connect, detect and print the plan")
	fs.BoolVar(&req.CreateUser, "create-user", false, "create a least-privilege flowbox user on the router and store it instead")
	noVerify := fs.Bool("no-verify", false, "do not wait for the first flows after provisioning")
	timeout := fs.Duration("timeout", 0, "how long to wait for flows (default: provision.verify-timeout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("router add: unexpected argument %q", fs.Arg(0))}
	}
	if req.Name == "" || req.Address == "" || req.Username == "" {
		return usageError{"router add: --name, --address and --user are required"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	pw, err := readPassword(e, *pwFile, req.Username, req.Address)
	if err != nil {
		return err
	}
	req.Password = pw
	if !req.TLS {
		fmt.Fprintln(e.stderr, "warning: the plain API (--tls=false) sends the router's password in clear on every login; use API-SSL where the router has a certificate")
	}
	prov, closeStore, err := openProvisioner(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	r, plan, err := prov.Add(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "router %s: %s, RouterOS %s, %s\n", r.Name, r.Identity, r.Version, r.Board)
	printPlan(e.stdout, plan)
	if req.DryRun {
		fmt.Fprintln(e.stdout, "dry run: nothing was stored or changed")
		return nil
	}
	return provisionAndVerify(ctx, e, prov, r.Name, *noVerify, *timeout)
}

func printPlan(w io.Writer, plan *provision.Plan) {
	fmt.Fprintf(w, "collector: %s\n", plan.Collector)
	if why := plan.SourceReason(); why != "" {
		fmt.Fprintf(w, "source:    %s\n", why)
	}
	if plan.InPlace() {
		fmt.Fprintln(w, "plan: configuration already in place")
		return
	}
	fmt.Fprintln(w, "plan:")
	for _, l := range plan.Lines() {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

func provisionAndVerify(ctx context.Context, e *env, prov *provision.Provisioner, name string, noVerify bool, timeout time.Duration) error {
	res, err := prov.Apply(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "applied: %s\n", res.Summary)
	for _, c := range res.Changes {
		fmt.Fprintf(e.stdout, "  %s\n", c)
	}
	if noVerify {
		return nil
	}
	return verify(ctx, e, prov, name, timeout)
}

func verify(ctx context.Context, e *env, prov *provision.Provisioner, name string, timeout time.Duration) error {
	fmt.Fprintf(e.stdout, "waiting for flows from %s...\n", name)
	v, err := prov.Verify(ctx, name, timeout)
	if err != nil {
		return err
	}
	if !v.OK {
		return fmt.Errorf("no flows from router %s yet: %s", name, v.Diagnosis)
	}
	from := ""
	if v.Exporter.IsValid() {
		from = " from " + v.Exporter.String()
	}
	fmt.Fprintf(e.stdout, "flows arrive%s (after %v)\n", from, v.Waited.Round(time.Second))
	return nil
}

func routerList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "router list")
	load := commonFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	prov, closeStore, err := openProvisioner(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	rs, err := prov.Routers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tIDENTITY\tVERSION\tSTATE\tLAST CONTACT")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Address, r.Identity, r.Version, r.State, formatTime(r.LastContact))
	}
	return tw.Flush()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// routerNamed runs the commands that take a router name.
func routerNamed(ctx context.Context, e *env, sub string, args []string) error {
	fs := newFlagSet(e, "router "+sub)
	load := commonFlags(fs)
	keep := fs.Bool("keep-router-config", false, "remove: leave the router's traffic-flow settings as they are")
	noVerify := fs.Bool("no-verify", false, "provision: do not wait for the first flows")
	timeout := fs.Duration("timeout", 0, "provision, verify: how long to wait for flows (default: provision.verify-timeout)")
	name, err := parseNamed(fs, sub, args)
	if err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	prov, st, closeStore, err := openProvisionerStore(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	// Undo and remove take flowbox's mitigation entries off the router.
	mitigation := func() (int, error) {
		mit, err := newMitigator(cfg, st, newLogger(e.stderr, cfg.Log))
		if err != nil {
			return 0, err
		}
		return undoMitigation(ctx, mit, cfg.Mitigation, name, func(msg string) {
			fmt.Fprintf(e.stderr, "warning: %s\n", msg)
		})
	}
	switch sub {
	case "show":
		return routerShow(ctx, e, prov, name)
	case "provision":
		return provisionAndVerify(ctx, e, prov, name, *noVerify, *timeout)
	case "verify":
		return verify(ctx, e, prov, name, *timeout)
	case "undo":
		res, err := prov.Undo(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "undone: %s\n", res.Summary)
		for _, c := range res.Changes {
			fmt.Fprintf(e.stdout, "  %s\n", c)
		}
		n, err := mitigation()
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintf(e.stdout, "mitigation: removed %d entries\n", n)
		}
		return nil
	case "remove":
		if !*keep {
			if _, err := mitigation(); err != nil {
				return fmt.Errorf("%w (remove with --keep-router-config to delete it anyway)", err)
			}
		}
		if err := prov.Remove(ctx, name, *keep); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "router %s removed\n", name)
		return nil
	case "create-user":
		r, err := prov.CreateUser(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "router %s now uses the RouterOS user %s\n", name, r.Username)
		return nil
	}
	return usageError{fmt.Sprintf("router: unknown command %q", sub)}
}

// parseNamed accepts the router name before or after the flags.
func parseNamed(fs *flag.FlagSet, sub string, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "" {
		return "", usageError{fmt.Sprintf("router %s: missing router NAME", sub)}
	}
	if len(rest) > 0 {
		return "", usageError{fmt.Sprintf("router %s: unexpected argument %q", sub, rest[0])}
	}
	return name, nil
}

func routerShow(ctx context.Context, e *env, prov *provision.Provisioner, name string) error {
	r, err := prov.Router(ctx, name)
	if err != nil {
		return err
	}
	w := e.stdout
	tls := "no"
	if r.TLS {
		tls = "yes, fingerprint " + r.TLSFingerprint
	}
	fmt.Fprintf(w, "name:         %s\naddress:      %s\ntls:          %s\nuser:         %s\n", r.Name, r.Address, tls, r.Username)
	fmt.Fprintf(w, "identity:     %s\nversion:      %s\nboard:        %s\nmodel:        %s\nserial:       %s\n", r.Identity, r.Version, r.Board, r.Model, r.Serial)
	fmt.Fprintf(w, "state:        %s\n", r.State)
	if r.StateDetail != "" {
		fmt.Fprintf(w, "detail:       %s\n", r.StateDetail)
	}
	fmt.Fprintf(w, "last contact: %s\n", formatTime(r.LastContact))
	var addrs []string
	for _, a := range r.Addresses {
		addrs = append(addrs, a.String())
	}
	fmt.Fprintf(w, "addresses:    %s\n", strings.Join(addrs, ", "))
	if r.ExporterAddr.IsValid() {
		fmt.Fprintf(w, "exports from: %s (the src-address flowbox set: another router may export from its other addresses)\n", r.ExporterAddr)
	}
	conflicts, err := prov.Conflicts(ctx)
	if err != nil {
		return err
	}
	for _, c := range conflicts {
		if slices.Contains(c.Routers, r.Name) {
			fmt.Fprintf(w, "conflict:     routers %s may all export from %s: its flows are attributed to none of them\n",
				strings.Join(c.Routers, ", "), c.Addr)
		}
	}
	fmt.Fprintln(w, "interfaces:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, i := range r.Interfaces {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", i.Index, i.Name, i.Type, i.Comment)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write: %w", err)
	}
	if len(r.Previous) > 0 {
		fmt.Fprintln(w, "values before flowbox (restored by undo):")
		for _, k := range slices.Sorted(maps.Keys(r.Previous)) {
			fmt.Fprintf(w, "  %s: %s\n", k, r.Previous[k])
		}
	}
	runs, err := prov.History(ctx, name, 10)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "history:")
	for _, run := range runs {
		status := "ok"
		if !run.OK {
			status = "FAILED: " + run.Error
		}
		fmt.Fprintf(w, "  %s  %-11s %s (%s)\n", formatTime(run.Time), run.Action, run.Summary, status)
		for _, c := range run.Changes {
			fmt.Fprintf(w, "      %s\n", c)
		}
	}
	return nil
}

// readPassword takes the router password from a file, the environment or
// a prompt on stdin (echo off on a terminal) — never from a flag, which
// would show in ps.
func readPassword(e *env, file, user, address string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("cannot read password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", errors.New("password file is empty")
		}
		return pw, nil
	}
	if pw := e.getenv(passwordEnv); pw != "" {
		return pw, nil
	}
	fmt.Fprintf(e.stderr, "password for %s@%s: ", user, address)
	restore := disableEcho(e.stdin)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	restore()
	fmt.Fprintln(e.stderr)
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("cannot read password (use --password-file or $%s): %w", passwordEnv, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
