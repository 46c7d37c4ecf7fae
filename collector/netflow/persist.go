package netflow

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"time"
)

// Templates survive a restart: AppendTemplates encodes a decoder's
// templates and options templates, LoadTemplates adds encoded templates to
// a decoder, and SaveTemplateFile/LoadTemplateFile (file.go) keep them in a
// file, atomically replaced.
//
// The encoding is a block, version 1, all integers big-endian:
//
//	magic    "FBTP"
//	version  uint8 = 1
//	reserved 3 bytes, zero
//	count    uint32: the templates that follow
//	length   uint32: their bytes
//	count times:
//	  family   uint8: 4 or 6, then the exporter address (4 or 16 bytes)
//	  port     uint16: the exporter's last UDP source port
//	  version  uint16: NetFlow version, 9 or 10 (IPFIX)
//	  domain   uint32: source id (v9) or observation domain (IPFIX)
//	  options  uint8: 1 for an options template, else 0
//	  updated  int64: unix ms of the template's last definition or refresh
//	  length   uint16, then the template record as the exporter sent it
//	           (id, field count, [scope count,] fields)
//	crc      uint32: CRC-32C of every byte of the block before it
//
// Blocks concatenate: one file holds the blocks of several decoders (one
// per UDP reader), and every decoder loads them all. Templates are keyed
// as the decoder keys them, by exporter address (not port), version,
// domain and template id; of the same key in several blocks the most
// recently updated wins. A loaded template keeps its update time, so it
// expires TemplateTTL after its exporter last sent it.

// templateMagic starts every block of saved templates.
const templateMagic = "FBTP"

// TemplateFileVersion is the version of the template encoding written by
// AppendTemplates; LoadTemplates refuses any other.
const TemplateFileVersion = 1

// templateBlockHeaderLen and templateBlockTrailerLen frame a block.
const (
	templateBlockHeaderLen  = 16
	templateBlockTrailerLen = 4
)

// ErrTemplateFile is wrapped by every error of LoadTemplates and
// LoadTemplateFile about the content of saved templates (corrupted,
// truncated, unknown version, or not saved templates at all).
var ErrTemplateFile = errors.New("invalid saved templates")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxSavedMs is the latest update time (unix ms) a saved template may have:
// the end of year 9999.
const maxSavedMs = 253402300799999

// AppendTemplates appends one block holding every cached template of d
// (expired ones included until swept; LoadTemplates skips them) to dst and
// returns the extended slice. Call it from the goroutine that calls Decode.
func (d *Decoder) AppendTemplates(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, templateMagic...)
	dst = append(dst, TemplateFileVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(d.templates))
	dst = binary.BigEndian.AppendUint32(dst, 0) // length, set below
	body := len(dst)
	exporters := make([]*exporter, 0, len(d.exporters))
	for _, e := range d.exporters {
		exporters = append(exporters, e)
	}
	slices.SortFunc(exporters, func(a, b *exporter) int { return a.addr.Compare(b.addr) })
	for _, e := range exporters {
		for t := e.tmpl.head; t != nil; t = t.link[byExporter].next {
			if e.addr.Is4() {
				a := e.addr.As4()
				dst = append(dst, 4)
				dst = append(dst, a[:]...)
			} else {
				a := e.addr.As16()
				dst = append(dst, 6)
				dst = append(dst, a[:]...)
			}
			dst = binary.BigEndian.AppendUint16(dst, e.port)
			dst = binary.BigEndian.AppendUint16(dst, t.key.version)
			dst = binary.BigEndian.AppendUint32(dst, t.key.domain)
			var opt byte
			if t.options {
				opt = 1
			}
			dst = append(dst, opt)
			dst = binary.BigEndian.AppendUint64(dst, uint64(t.updated/1e6))
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(t.raw)))
			dst = append(dst, t.raw...)
		}
	}
	binary.BigEndian.PutUint32(dst[start+12:], uint32(len(dst)-body))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// savedTemplate is one template read from saved blocks.
type savedTemplate struct {
	addr      netip.Addr
	port      uint16
	version   uint16
	domain    uint32
	id        uint16
	options   bool
	updatedMs int64
	raw       []byte
	fields    []field
}

// LoadTemplates adds the templates of b (one or more blocks written by
// AppendTemplates) to d and returns how many it added. Templates that
// expired (TemplateTTL after their update time, at now) are skipped, and
// so is any template d already holds with a more recent update; the
// quotas apply as for received templates. b is checked whole first: a
// corrupted, truncated or unknown-version input returns an error wrapping
// ErrTemplateFile and adds nothing. Call it from the goroutine that calls
// Decode.
func (d *Decoder) LoadTemplates(b []byte, now time.Time) (int, error) {
	saved, err := parseTemplateBlocks(b)
	if err != nil {
		return 0, fmt.Errorf("cannot load templates: %w", err)
	}
	return d.loadSaved(saved, now), nil
}

// parseTemplateBlocks decodes and checks every block of b, and returns the
// templates, the most recent of each key, oldest first.
func parseTemplateBlocks(b []byte) ([]savedTemplate, error) {
	var out []savedTemplate
	for off := 0; off < len(b); {
		ts, n, err := parseTemplateBlock(b[off:])
		if err != nil {
			return nil, fmt.Errorf("%w: block at byte %d: %w", ErrTemplateFile, off, err)
		}
		out = append(out, ts...)
		off += n
	}
	// The most recent definition of each key, then oldest first (the order
	// of the decoder's age lists).
	type key struct {
		addr    netip.Addr
		version uint16
		domain  uint32
		id      uint16
	}
	latest := make(map[key]int, len(out))
	kept := out[:0]
	for _, t := range out {
		k := key{t.addr, t.version, t.domain, t.id}
		if i, ok := latest[k]; ok {
			if t.updatedMs >= kept[i].updatedMs {
				kept[i] = t
			}
			continue
		}
		latest[k] = len(kept)
		kept = append(kept, t)
	}
	slices.SortStableFunc(kept, func(a, b savedTemplate) int { return cmp.Compare(a.updatedMs, b.updatedMs) })
	return kept, nil
}

// parseTemplateBlock decodes the block at the start of b and returns its
// templates and length.
func parseTemplateBlock(b []byte) ([]savedTemplate, int, error) {
	if len(b) < templateBlockHeaderLen {
		return nil, 0, fmt.Errorf("truncated header (%d bytes)", len(b))
	}
	if string(b[:4]) != templateMagic {
		return nil, 0, fmt.Errorf("not saved templates (magic %q)", b[:4])
	}
	if v := b[4]; v != TemplateFileVersion {
		return nil, 0, fmt.Errorf("unknown version %d (this flowbox reads version %d)", v, TemplateFileVersion)
	}
	count := int(binary.BigEndian.Uint32(b[8:]))
	length := int(binary.BigEndian.Uint32(b[12:]))
	if length > len(b)-templateBlockHeaderLen-templateBlockTrailerLen {
		return nil, 0, fmt.Errorf("truncated: %d bytes of templates announced, %d present", length, max(len(b)-templateBlockHeaderLen-templateBlockTrailerLen, 0))
	}
	end := templateBlockHeaderLen + length
	if sum, want := crc32.Checksum(b[:end], castagnoli), binary.BigEndian.Uint32(b[end:]); sum != want {
		return nil, 0, fmt.Errorf("corrupted: checksum %08x, want %08x", sum, want)
	}
	if count > length/24 { // a template takes at least 24 bytes
		return nil, 0, fmt.Errorf("%d templates cannot fit in %d bytes", count, length)
	}
	out := make([]savedTemplate, 0, count)
	p := b[templateBlockHeaderLen:end]
	var fields []field
	for i := range count {
		t, n, err := parseSavedTemplate(p, fields[:0])
		if err != nil {
			return nil, 0, fmt.Errorf("template %d: %w", i, err)
		}
		fields = t.fields
		t.fields = slices.Clone(t.fields)
		out = append(out, t)
		p = p[n:]
	}
	if len(p) != 0 {
		return nil, 0, fmt.Errorf("%d bytes after the %d templates", len(p), count)
	}
	return out, end + templateBlockTrailerLen, nil
}

// parseSavedTemplate decodes one saved template at the start of p,
// compiling its fields into fields.
func parseSavedTemplate(p []byte, fields []field) (savedTemplate, int, error) {
	var t savedTemplate
	if len(p) < 1 {
		return t, 0, errors.New("truncated")
	}
	q := 1
	switch p[0] {
	case 4:
		if len(p) < q+4 {
			return t, 0, errors.New("truncated address")
		}
		t.addr = netip.AddrFrom4([4]byte(p[q:]))
		q += 4
	case 6:
		if len(p) < q+16 {
			return t, 0, errors.New("truncated address")
		}
		t.addr = netip.AddrFrom16([16]byte(p[q:]))
		q += 16
	default:
		return t, 0, fmt.Errorf("address family %d", p[0])
	}
	if len(p) < q+19 {
		return t, 0, errors.New("truncated")
	}
	t.port = binary.BigEndian.Uint16(p[q:])
	t.version = binary.BigEndian.Uint16(p[q+2:])
	t.domain = binary.BigEndian.Uint32(p[q+4:])
	opt := p[q+8]
	t.updatedMs = int64(binary.BigEndian.Uint64(p[q+9:]))
	rawLen := int(binary.BigEndian.Uint16(p[q+17:]))
	q += 19
	if t.updatedMs < 0 || t.updatedMs > maxSavedMs {
		return t, 0, fmt.Errorf("update time %d ms", t.updatedMs)
	}
	if t.version != 9 && t.version != 10 {
		return t, 0, fmt.Errorf("NetFlow version %d", t.version)
	}
	if opt > 1 {
		return t, 0, fmt.Errorf("options flag %d", opt)
	}
	t.options = opt == 1
	if len(p) < q+rawLen {
		return t, 0, errors.New("truncated definition")
	}
	t.raw = p[q : q+rawLen : q+rawLen]
	var perr *Error
	var n int
	t.fields, n, perr = parseTemplate(t.raw, 0, t.version == 10, t.options, fields)
	if perr != nil {
		return t, 0, perr
	}
	if n != rawLen {
		return t, 0, fmt.Errorf("definition of %d bytes, %d used", rawLen, n)
	}
	t.id = binary.BigEndian.Uint16(t.raw)
	return t, q + rawLen, nil
}

// loadSaved adds saved templates (oldest first) to d.
func (d *Decoder) loadSaved(saved []savedTemplate, now time.Time) int {
	nowNs := now.UnixNano()
	ttl := int64(d.cfg.TemplateTTL)
	n := 0
	for i := range saved {
		s := &saved[i]
		// A time after now (the saving host's clock was ahead) is now.
		updated := min(s.updatedMs*1e6, nowNs)
		if ttl > 0 && nowNs-updated > ttl {
			continue
		}
		e := d.exporters[s.addr]
		if e == nil {
			e = d.newExporter(s.addr, s.port)
			e.lastSeen = updated
		}
		dom := d.domain(e, s.version, s.domain, nowNs)
		if t := dom.templates[s.id]; t != nil && t.updated >= updated {
			continue // d has a definition at least as recent
		}
		last := e.lastTemplate
		d.refreshTemplate(dom, s.id, s.options, s.raw, s.fields, updated)
		e.lastTemplate = max(last, updated)
		n++
	}
	return n
}
