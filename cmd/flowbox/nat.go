package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// parseAt parses the time of a complaint as the console does
// (store.ParseComplaintTime), a time without offset read in tz (an IANA
// name; "" means UTC).
func parseAt(s, tz string) (time.Time, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return time.Time{}, fmt.Errorf("time zone %q: %v (want an IANA name such as America/Sao_Paulo, or UTC)", tz, err)
		}
		loc = l
	}
	return store.ParseComplaintTime(s, loc, "--tz")
}

// runNAT runs `flowbox nat lookup`: which customer used a public address
// and port at a time. It opens the database read-only, so it works while
// serve runs.
func runNAT(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "lookup" {
		return usageError{"usage: flowbox nat lookup --address IP [--port N] [--proto tcp|udp] --at TIME [--tz ZONE] [--window DUR] [--json]"}
	}
	fs := newFlagSet(e, "nat lookup")
	load := commonFlags(fs)
	address := fs.String("address", "", "the public `IP` of the complaint")
	port := fs.Int("port", 0, "the public `PORT` (default: any)")
	proto := fs.String("proto", "", "`tcp`, udp, icmp or a number (default: any)")
	at := fs.String("at", "", "the complaint's `TIME`: RFC 3339 with its offset, or a local time with --tz")
	tz := fs.String("tz", "", "time `ZONE` of an --at without offset (IANA name; default UTC)")
	window := fs.Duration("window", storagepkg.DefaultNATWindow, "tolerance on both sides of --at (clocks and timeouts differ), up to 1h")
	asJSON := fs.Bool("json", false, "print a JSON list of the matches")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("nat lookup: unexpected argument %q", fs.Arg(0))}
	}
	var q store.NATQuery
	a, err := netip.ParseAddr(*address)
	if err != nil {
		return usageError{fmt.Sprintf("nat lookup: --address %q is not an IP address", *address)}
	}
	q.Public = a.Unmap()
	if *port < 0 || *port > 65535 {
		return usageError{fmt.Sprintf("nat lookup: --port %d is outside 1..65535", *port)}
	}
	q.Port = uint16(*port)
	if *proto != "" {
		p, ok := store.ParseProto(*proto)
		if !ok || p == 0 {
			return usageError{fmt.Sprintf("nat lookup: --proto %q is not a protocol (tcp, udp, icmp or a number 1..255)", *proto)}
		}
		q.Proto = p
	}
	if *at == "" {
		return usageError{"nat lookup: --at is required (the complaint's time, e.g. 2026-03-03T14:02:11Z)"}
	}
	if q.At, err = parseAt(*at, *tz); err != nil {
		return usageError{"nat lookup: --at " + err.Error()}
	}
	if *window <= 0 || *window > time.Hour {
		return usageError{fmt.Sprintf("nat lookup: --window %s is outside (0, 1h]", *window)}
	}
	q.Window = *window
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	ans, err := st.NATLookup(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ans.Matches); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		fmt.Fprintln(e.stderr, ans.Message)
		return nil
	}
	fmt.Fprintln(e.stdout, ans.Message)
	if len(ans.Matches) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTER\tPROTO\tPUBLIC\tINSIDE\tREMOTE\tFIRST SEEN (UTC)\tLAST SEEN (UTC)\tFLOWS\tSUBSCRIBER")
	for _, m := range ans.Matches {
		remote := "-"
		if m.RemoteAddr.IsValid() {
			remote = netip.AddrPortFrom(m.RemoteAddr, m.RemotePort).String()
		}
		sub := m.Subscriber
		if sub == "" {
			sub = "-"
		} else if m.CustomerID != "" {
			sub += " (" + m.CustomerID + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Router, m.ProtoName,
			netip.AddrPortFrom(m.PublicAddr, m.PublicPort), netip.AddrPortFrom(m.InsideAddr, m.InsidePort), remote,
			m.FirstSeen.UTC().Format(time.RFC3339), m.LastSeen.UTC().Format(time.RFC3339), m.Flows, sub)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ans.FlowsKept {
		fmt.Fprintf(e.stdout, "%d raw flows of these mappings are still kept (flowbox's Flows page, or the console's Abuse lookup).\n", len(ans.Flows))
	} else {
		fmt.Fprintln(e.stdout, "The raw flows of that time are no longer kept (store.raw-retention); the mapping is the evidence.")
	}
	return nil
}

// runSubscribersAt runs `flowbox subscribers at`: who had an address at
// a time, from the subscriber history.
func runSubscribersAt(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "subscribers at")
	load := commonFlags(fs)
	address := fs.String("address", "", "the `IP` (an inside address, or a public one given to a customer)")
	at := fs.String("at", "", "the `TIME`: RFC 3339 with its offset, or a local time with --tz")
	tz := fs.String("tz", "", "time `ZONE` of an --at without offset (IANA name; default UTC)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*address)
	if err != nil {
		return usageError{fmt.Sprintf("subscribers at: --address %q is not an IP address", *address)}
	}
	if *at == "" {
		return usageError{"subscribers at: --at is required"}
	}
	t, err := parseAt(*at, *tz)
	if err != nil {
		return usageError{"subscribers at: --at " + err.Error()}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	h, err := st.AddressHolder(ctx, a, t)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(h)
	}
	fmt.Fprintln(e.stdout, h.Message)
	return nil
}
