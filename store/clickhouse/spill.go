package clickhouse

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flowbox/flowbox/store"
)

// The spill: while ClickHouse is down or slow, the writer puts the
// inserts it cannot make into files of a directory (each the insert's
// RowBinary and its name, its deduplication token), up to a bound in
// bytes, so that the queue keeps draining and the collector drops
// nothing; a replayer sends them, oldest first, once ClickHouse answers.
// Files are kept across restarts. Each holds the flows' count per
// exporter, so that they are counted per exporter once written (or
// refused) as the queue's are.

// spillMagic starts a spill file; its header (JSON, length-prefixed)
// follows, then the insert's rows.
const spillMagic = "FBSPILL1"

// errSpillFull is a spill without room for one more insert.
var errSpillFull = errors.New("the clickhouse spill is full")

// spillHeader describes the insert of a spill file.
type spillHeader struct {
	// Name is the insert's name (its deduplication token).
	Name string `json:"name"`
	// Flows is its flow count, Oldest the end of its oldest flow (unix
	// ms).
	Flows  int   `json:"flows"`
	Oldest int64 `json:"oldest"`
	// Exporters counts its flows per exporter.
	Exporters []spillExporter `json:"exporters"`
}

// spillExporter is an exporter's flows in a spill file.
type spillExporter struct {
	Addr netip.AddrPort `json:"a"`
	N    int            `json:"n"`
}

// spillFile is a file of the spill.
type spillFile struct {
	seq  uint64
	size int64
	spillHeader
}

// spill is the directory of spilled inserts. It is safe for concurrent
// use.
type spill struct {
	dir string
	max int64 // bytes

	mu    sync.Mutex
	files []spillFile // oldest first
	bytes int64       // of the files, and of those being written
	next  uint64      // the sequence number of the next file
}

// openSpill opens (creating) the spill directory dir of at most maxBytes
// bytes and lists its files: those a previous run left are sent first.
// A file it cannot read is set aside (renamed *.bad) and returned in bad,
// to be counted as dropped.
func openSpill(dir string, maxBytes int64) (s *spill, bad []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cannot create the clickhouse spill directory: %w", err)
	}
	files, damaged, err := scanSpill(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range damaged {
		path := filepath.Join(dir, d.name)
		if strings.HasSuffix(d.name, ".tmp") { // a write cut short
			os.Remove(path)
			continue
		}
		bad = append(bad, fmt.Sprintf("%s: %v", d.name, d.err))
		if rerr := os.Rename(path, path+".bad"); rerr != nil {
			return nil, bad, fmt.Errorf("cannot set aside the damaged spill file %s: %w", d.name, rerr)
		}
	}
	s = &spill{dir: dir, max: maxBytes, files: files}
	for _, f := range files {
		s.bytes += f.size
		s.next = max(s.next, f.seq+1)
	}
	return s, bad, nil
}

// damagedSpill is a file of the spill directory that cannot be sent: a
// write cut short (*.tmp, not counted), or a file that cannot be read.
type damagedSpill struct {
	name string
	err  error
}

// scanSpill lists, changing nothing, the spill files of dir, oldest
// first, and those that cannot be read; files set aside (*.bad) are not
// listed.
func scanSpill(dir string) (files []spillFile, damaged []damagedSpill, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot list the clickhouse spill directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			damaged = append(damaged, damagedSpill{name, errors.New("a write cut short")})
			continue
		}
		seqText, ok := strings.CutSuffix(name, ".spill")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(seqText, 10, 64)
		var f spillFile
		if err == nil {
			f, err = readSpillHeader(filepath.Join(dir, name))
		}
		if errors.Is(err, os.ErrNotExist) { // sent meanwhile (beside serve)
			continue
		}
		if err != nil {
			damaged = append(damaged, damagedSpill{name, err})
			continue
		}
		f.seq = seq
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b spillFile) int { return cmp.Compare(a.seq, b.seq) })
	return files, damaged, nil
}

// path returns the file of sequence number seq.
func (s *spill) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.spill", seq))
}

// add writes an insert (its header h and rows) as the newest file, or
// returns errSpillFull when it would pass the bound.
func (s *spill) add(h spillHeader, rows []byte) error {
	head, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("cannot spill flows: %w", err)
	}
	size := int64(len(spillMagic) + 4 + len(head) + len(rows))
	s.mu.Lock()
	if s.bytes+size > s.max {
		s.mu.Unlock()
		return errSpillFull
	}
	seq := s.next
	s.next++
	s.bytes += size // reserved
	s.mu.Unlock()
	path := s.path(seq)
	err = writeSpillFile(path, head, rows)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bytes -= size
		return err
	}
	// Files are listed in sequence order: a later add may have finished
	// first.
	f := spillFile{seq: seq, size: size, spillHeader: h}
	i, _ := slices.BinarySearchFunc(s.files, seq, func(f spillFile, seq uint64) int { return cmp.Compare(f.seq, seq) })
	s.files = slices.Insert(s.files, i, f)
	return nil
}

// writeSpillFile writes a spill file through a temporary one, synced, so
// that a crash leaves the whole file or none.
func writeSpillFile(path string, head, rows []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot spill flows: %w", err)
	}
	var pre [len(spillMagic) + 4]byte
	copy(pre[:], spillMagic)
	binary.LittleEndian.PutUint32(pre[len(spillMagic):], uint32(len(head)))
	_, err = f.Write(pre[:])
	if err == nil {
		_, err = f.Write(head)
	}
	if err == nil {
		_, err = f.Write(rows)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot spill flows: %w", err)
	}
	return nil
}

// readSpillHeader reads the header of the spill file at path.
func readSpillHeader(path string) (spillFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return spillFile{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return spillFile{}, err
	}
	h, _, err := readSpill(io.LimitReader(f, 1<<20), false)
	return spillFile{size: st.Size(), spillHeader: h}, err
}

// readSpill reads a spill file's header and, with rows, the rest.
func readSpill(r io.Reader, rows bool) (spillHeader, []byte, error) {
	var h spillHeader
	var pre [len(spillMagic) + 4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil || string(pre[:len(spillMagic)]) != spillMagic {
		return h, nil, errors.New("not a spill file")
	}
	head := make([]byte, binary.LittleEndian.Uint32(pre[len(spillMagic):]))
	if len(head) > 1<<20-len(pre) {
		return h, nil, errors.New("spill header too large")
	}
	if _, err := io.ReadFull(r, head); err != nil {
		return h, nil, fmt.Errorf("truncated spill header: %w", err)
	}
	if err := json.NewDecoder(bytes.NewReader(head)).Decode(&h); err != nil || h.Name == "" || h.Flows <= 0 {
		return h, nil, fmt.Errorf("bad spill header: %v", err)
	}
	if !rows {
		return h, nil, nil
	}
	b, err := io.ReadAll(r)
	return h, b, err
}

// oldest returns the oldest file (false: none).
func (s *spill) oldest() (spillFile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.files) == 0 {
		return spillFile{}, false
	}
	return s.files[0], true
}

// load reads the rows of f.
func (s *spill) load(f spillFile) ([]byte, error) {
	file, err := os.Open(s.path(f.seq))
	if err != nil {
		return nil, fmt.Errorf("cannot read spill file: %w", err)
	}
	defer file.Close()
	_, rows, err := readSpill(file, true)
	if err != nil {
		return nil, fmt.Errorf("cannot read spill file %s: %w", filepath.Base(s.path(f.seq)), err)
	}
	return rows, nil
}

// remove deletes f, sent or dropped.
func (s *spill) remove(f spillFile) error {
	err := os.Remove(s.path(f.seq))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove spill file: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.files, func(g spillFile) bool { return g.seq == f.seq }); i >= 0 {
		s.files = slices.Delete(s.files, i, i+1)
		s.bytes -= f.size
	}
	return nil
}

// state returns the flows and bytes waiting, and the oldest flow's end
// (unix ms; false: none).
func (s *spill) state() (flows uint64, bytes int64, oldest int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		flows += uint64(f.Flows)
		if !ok || f.Oldest < oldest {
			oldest, ok = f.Oldest, true
		}
	}
	return flows, s.bytes, oldest, ok
}

// spillHeaderOf describes the insert of batches named name.
func spillHeaderOf(name string, batches []*store.Batch) spillHeader {
	h := spillHeader{Name: name}
	at := map[netip.AddrPort]int{}
	for _, b := range batches {
		for i := range b.Flows {
			f := &b.Flows[i]
			if h.Flows == 0 || f.End < h.Oldest {
				h.Oldest = f.End
			}
			h.Flows++
			j, ok := at[f.Exporter]
			if !ok {
				j = len(h.Exporters)
				at[f.Exporter] = j
				h.Exporters = append(h.Exporters, spillExporter{Addr: f.Exporter})
			}
			h.Exporters[j].N++
		}
	}
	return h
}

// report tells o about the flows of h, per exporter: stored, or dropped
// for reason (stored when reason is "").
func (h *spillHeader) report(o store.WriteObserver, reason string) {
	if o == nil {
		return
	}
	const chunk = 1024
	buf := make([]store.Flow, chunk)
	for _, e := range h.Exporters {
		for i := range buf {
			buf[i].Exporter = e.Addr
		}
		for n := e.N; n > 0; n -= chunk {
			part := buf[:min(n, chunk)]
			if reason == "" {
				o.FlowsStored(part)
			} else {
				o.FlowsDropped(part, reason)
			}
		}
	}
}

// SpillState reads, changing nothing, what waits in the spill directory
// dir (for `flowbox stats` beside serve): its files, their flows and
// bytes, and the files that cannot be read or were set aside. No
// directory: nothing waits.
func SpillState(dir string) (files int, flows uint64, bytes int64, bad int, err error) {
	list, damaged, err := scanSpill(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for _, f := range list {
		flows, bytes = flows+uint64(f.Flows), bytes+f.size
	}
	setAside, err := filepath.Glob(filepath.Join(dir, "*.bad"))
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("cannot list the clickhouse spill directory: %w", err)
	}
	for _, d := range damaged {
		if !strings.HasSuffix(d.name, ".tmp") { // a write under way beside serve
			bad++
		}
	}
	return len(list), flows, bytes, bad + len(setAside), nil
}
