package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/internal/pcap"
	"github.com/flowbox/flowbox/store"
)

// maxDecodeWarnings bounds the per-datagram decode errors printed for one
// file; the summary counts all of them.
const maxDecodeWarnings = 20

// runDecode implements `flowbox decode [--config FILE] [--data-dir DIR]
// FILE...`: it reads pcap and pcapng files, decodes every UDP payload (any
// port; other packets are ignored) in order with one decoder, whose exporter
// is the packet's UDP source and whose clock is the capture time (templates
// never expire: they live for the whole run), and prints
// one JSON object per flow record on stdout. Every key is always present;
// addresses absent from a record (next hop, post-NAT addresses) are "" and
// absent numbers are 0. Options records are not flows and are not printed.
//
// A summary goes to stderr at the end. Datagrams that fail to decode are
// counted (and the first few printed) but do not fail the command; a file
// that cannot be opened or read (corrupt, truncated) does, naming the file
// and the offset, after the other files were decoded.
func runDecode(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decode")
	load := commonFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flowbox decode [--config FILE] [--data-dir DIR] FILE...")
		fmt.Fprintln(fs.Output(), "\nDecodes NetFlow v1/v5/v9 and IPFIX from pcap/pcapng files and prints one JSON")
		fmt.Fprintln(fs.Output(), "object per flow record on stdout, then a summary on stderr. Absent addresses are \"\".")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return usageError{"decode: at least one pcap FILE is needed"}
	}

	// A file's packets may have been captured days apart: its templates
	// and the data sets waiting for them live for the whole run, not for
	// the collector's wall-clock TTLs.
	dc := netflow.DefaultConfig()
	dc.TemplateTTL = netflow.NoExpiry
	dc.MaxTemplates = cfg.Collector.MaxTemplates
	dc.MaxPending = cfg.Collector.MaxPending
	dc.PendingTTL = netflow.NoExpiry
	dc.MaxExporters = cfg.Collector.MaxExporters
	if len(cfg.Collector.SamplingOverride) > 0 {
		dc.SamplingOverride = make(map[netip.Addr]uint32, len(cfg.Collector.SamplingOverride))
		for k, v := range cfg.Collector.SamplingOverride {
			a, err := netip.ParseAddr(k)
			if err != nil {
				return fmt.Errorf("cannot parse collector.sampling-override key %q: %w", k, err)
			}
			dc.SamplingOverride[a.Unmap()] = v
		}
	}

	d := &decodeRun{
		dec: netflow.New(dc),
		out: bufio.NewWriterSize(e.stdout, 256<<10),
		log: e.stderr,
	}
	var errs []error
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("decode interrupted: %w", err))
			break
		}
		if err := d.file(ctx, name); err != nil {
			errs = append(errs, err)
			if werr := (*writeError)(nil); errors.As(err, &werr) {
				break // stdout is gone; other files would fail the same way
			}
		}
	}
	if err := d.out.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("cannot write flows: %w", err))
	}
	d.summary(e.stderr)
	return errors.Join(errs...)
}

// decodeRun is the state of one `flowbox decode` invocation.
type decodeRun struct {
	dec   *netflow.Decoder
	out   *bufio.Writer
	log   io.Writer
	flows []store.Flow
	line  []byte
	// Packets read from the files (UDP only) and flow records printed.
	udpPackets, printed uint64
	// Datagrams cut short by the capture's snaplen (decoded as far as they
	// go), and frames skipped because they are not UDP.
	truncated, skipped uint64
}

// writeError marks a failure to write stdout.
type writeError struct{ err error }

func (w *writeError) Error() string { return fmt.Sprintf("cannot write flows: %v", w.err) }
func (w *writeError) Unwrap() error { return w.err }

// file decodes one capture file.
func (d *decodeRun) file(ctx context.Context, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("cannot open capture: %w", err)
	}
	defer f.Close()
	r, err := pcap.NewReader(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return fmt.Errorf("cannot read capture %s: %w", name, err)
	}
	warnings := 0
	for i := 0; ; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("decode of %s interrupted: %w", name, err)
			}
		}
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.skipped += uint64(r.Skipped())
			return fmt.Errorf("cannot read capture %s: %w", name, err)
		}
		d.udpPackets++
		if p.Truncated {
			d.truncated++
		}
		var derr error
		d.flows, derr = d.dec.Decode(d.flows[:0], p.Src, p.Payload, p.Time)
		for i := range d.flows {
			d.line = appendFlowJSON(d.line[:0], &d.flows[i])
			if _, err := d.out.Write(d.line); err != nil {
				return &writeError{err}
			}
		}
		d.printed += uint64(len(d.flows))
		if derr != nil {
			warnings++
			if warnings <= maxDecodeWarnings {
				fmt.Fprintf(d.log, "flowbox decode: %s: datagram at offset %d from %s: %v\n", name, p.Offset, p.Src, derr)
			} else if warnings == maxDecodeWarnings+1 {
				fmt.Fprintf(d.log, "flowbox decode: %s: more decode errors are only counted\n", name)
			}
		}
	}
	d.skipped += uint64(r.Skipped())
	return nil
}

// summary prints the totals of the run.
func (d *decodeRun) summary(w io.Writer) {
	s := d.dec.Summary()
	fmt.Fprintf(w, "packets: %d\nflow records: %d\noptions records: %d\ndata sets without template: %d\nerrors: %d\n",
		d.udpPackets, d.printed, s.OptionsRecords, s.NoTemplateSets, s.Errors)
	if s.NoTemplateSets > 0 {
		fmt.Fprintf(w, "  decoded when their template came: %d sets (%d records); dropped by the bounds: %d sets; still waiting at the end: %d sets\n",
			s.PendingSetsDecoded, s.PendingDecoded, s.PendingDropped, s.PendingSets)
	}
	if s.TemplatesEvicted > 0 {
		fmt.Fprintf(w, "templates evicted by the quotas: %d\n", s.TemplatesEvicted)
	}
	if s.Restarts > 0 {
		fmt.Fprintf(w, "exporter restarts: %d\n", s.Restarts)
	}
	for _, reason := range slices.Sorted(maps.Keys(s.ErrorsByReason)) {
		fmt.Fprintf(w, "  %s: %d\n", reason, s.ErrorsByReason[reason])
	}
	if d.truncated > 0 {
		fmt.Fprintf(w, "datagrams cut short by the capture: %d\n", d.truncated)
	}
	if d.skipped > 0 {
		fmt.Fprintf(w, "frames skipped (not UDP): %d\n", d.skipped)
	}
}

// jsonTime is RFC 3339 with milliseconds; UTC prints as Z.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// appendFlowJSON appends one flow as a JSON object and a newline. The keys
// are fixed and the values are numbers or strings made of address and time
// characters, which never need escaping.
func appendFlowJSON(b []byte, f *store.Flow) []byte {
	b = append(b, `{"exporter":"`...)
	if f.Exporter.IsValid() {
		b = f.Exporter.AppendTo(b)
	}
	b = appendUint(b, `","version":`, uint64(f.Version))
	b = appendUint(b, `,"domain":`, uint64(f.Domain))
	b = appendUint(b, `,"template":`, uint64(f.TemplateID))
	b = append(b, `,"start":"`...)
	b = time.UnixMilli(f.Start).UTC().AppendFormat(b, jsonTime)
	b = append(b, `","end":"`...)
	b = time.UnixMilli(f.End).UTC().AppendFormat(b, jsonTime)
	b = appendAddr(b, `","src":"`, f.SrcAddr)
	b = appendAddr(b, `","dst":"`, f.DstAddr)
	b = appendUint(b, `","src_port":`, uint64(f.SrcPort))
	b = appendUint(b, `,"dst_port":`, uint64(f.DstPort))
	b = appendUint(b, `,"proto":`, uint64(f.Proto))
	b = appendUint(b, `,"tcp_flags":`, uint64(f.TCPFlags))
	b = appendUint(b, `,"in_if":`, uint64(f.InIf))
	b = appendUint(b, `,"out_if":`, uint64(f.OutIf))
	b = appendAddr(b, `,"next_hop":"`, f.NextHop)
	b = appendUint(b, `","src_as":`, uint64(f.SrcAS))
	b = appendUint(b, `,"dst_as":`, uint64(f.DstAS))
	b = appendAddr(b, `,"post_nat_src":"`, f.PostNATSrcAddr)
	b = appendAddr(b, `","post_nat_dst":"`, f.PostNATDstAddr)
	b = appendUint(b, `","post_nat_src_port":`, uint64(f.PostNATSrcPort))
	b = appendUint(b, `,"post_nat_dst_port":`, uint64(f.PostNATDstPort))
	b = appendUint(b, `,"bytes":`, f.Bytes)
	b = appendUint(b, `,"packets":`, f.Packets)
	b = appendUint(b, `,"sampling_rate":`, uint64(f.SamplingRate))
	return append(b, "}\n"...)
}

func appendUint(b []byte, key string, v uint64) []byte {
	return strconv.AppendUint(append(b, key...), v, 10)
}

// appendAddr appends key and the address, or nothing after the key when the
// address is absent.
func appendAddr(b []byte, key string, a netip.Addr) []byte {
	b = append(b, key...)
	if a.IsValid() {
		b = a.WithZone("").AppendTo(b)
	}
	return b
}
