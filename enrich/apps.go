package enrich

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowbox/flowbox/store"
)

//go:embed data/applications.yaml
var builtinApplications []byte

// AppEntry is one row of the application table (see data/README.md).
type AppEntry struct {
	Name      string   `yaml:"name"`
	Category  string   `yaml:"category"`
	Protocols []string `yaml:"protocols"`
	Ports     []string `yaml:"ports"`
	ASNs      []uint32 `yaml:"asns"`
	Prefixes  []string `yaml:"prefixes"`
	Generic   bool     `yaml:"generic"`
}

// parseProto parses a protocol of the table (store.ParseProto: a keyword
// or a number).
func parseProto(s string) (uint8, error) {
	n, ok := store.ParseProto(s)
	if !ok {
		return 0, fmt.Errorf("unknown protocol %q", s)
	}
	return n, nil
}

func parsePorts(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y := x
	var err2 error
	if isRange {
		y, err2 = strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	}
	if err1 != nil || err2 != nil || x == 0 || y < x {
		return 0, 0, fmt.Errorf("invalid port or port range %q", s)
	}
	return uint16(x), uint16(y), nil
}

func (a *AppEntry) validate() error {
	if a.Name == "" {
		return errors.New("name: must not be empty")
	}
	if len(a.Ports) == 0 && len(a.ASNs) == 0 && len(a.Prefixes) == 0 && len(a.Protocols) == 0 {
		return fmt.Errorf("%s: needs ports, asns, prefixes or protocols", a.Name)
	}
	var errs []error
	for _, p := range a.Protocols {
		n, err := parseProto(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: protocols: %w", a.Name, err))
			continue
		}
		if len(a.Ports) > 0 && n != 6 && n != 17 {
			errs = append(errs, fmt.Errorf("%s: protocols: ports need tcp or udp, not %q", a.Name, p))
		}
	}
	for _, p := range a.Ports {
		if _, _, err := parsePorts(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: ports: %w", a.Name, err))
		}
	}
	for _, p := range a.Prefixes {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: prefixes: %w", a.Name, err))
		}
	}
	for _, n := range a.ASNs {
		if n == 0 {
			errs = append(errs, fmt.Errorf("%s: asns: 0 is not an AS number", a.Name))
		}
	}
	return errors.Join(errs...)
}

// loadAppEntries decodes an application table file strictly.
func loadAppEntries(r io.Reader) ([]AppEntry, error) {
	var doc struct {
		Applications []AppEntry `yaml:"applications"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("cannot parse application table: %w", err)
	}
	var errs []error
	for i := range doc.Applications {
		if err := doc.Applications[i].validate(); err != nil {
			errs = append(errs, fmt.Errorf("applications[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return doc.Applications, nil
}

// appNet is one prefix entry.
type appNet struct {
	prefix netip.Prefix
	label  uint16
}

// Apps classifies flows into applications. It is immutable after
// newApps and safe for concurrent use.
type Apps struct {
	labels   []string // label index -> name; 0 is ""
	category map[string]string
	generic  []bool // per label index: a network label overrides it
	tcp, udp []uint16
	byProto  [256]uint16
	byASN    map[uint32]uint16
	nets     []appNet
}

// newApps builds the classifier: extra (configuration) entries first, then
// the built-in table. The first entry to claim a port, ASN or prefix wins.
func newApps(extra []AppEntry) (*Apps, error) {
	builtin, err := loadAppEntries(bytes.NewReader(builtinApplications))
	if err != nil {
		return nil, fmt.Errorf("built-in %w", err)
	}
	a := &Apps{
		labels:   []string{""},
		generic:  []bool{false},
		category: map[string]string{},
		tcp:      make([]uint16, 65536),
		udp:      make([]uint16, 65536),
		byASN:    map[uint32]uint16{},
	}
	type labelKey struct {
		name    string
		generic bool
	}
	index := map[labelKey]uint16{}
	for _, e := range append(append([]AppEntry(nil), extra...), builtin...) {
		if err := e.validate(); err != nil {
			return nil, err
		}
		k := labelKey{e.Name, e.Generic}
		li, ok := index[k]
		if !ok {
			if len(a.labels) >= 65535 {
				return nil, errors.New("too many application labels")
			}
			li = uint16(len(a.labels))
			index[k] = li
			a.labels = append(a.labels, e.Name)
			a.generic = append(a.generic, e.Generic)
		}
		if _, ok := a.category[e.Name]; !ok && e.Category != "" {
			a.category[e.Name] = e.Category
		}
		protos := e.Protocols
		if len(e.Ports) > 0 && len(protos) == 0 {
			protos = []string{"tcp", "udp"}
		}
		for _, p := range protos {
			n, _ := parseProto(p) // validated
			if len(e.Ports) == 0 {
				if a.byProto[n] == 0 {
					a.byProto[n] = li
				}
				continue
			}
			table := a.tcp
			if n == 17 {
				table = a.udp
			}
			for _, ps := range e.Ports {
				lo, hi, _ := parsePorts(ps)
				for port := int(lo); port <= int(hi); port++ {
					if table[port] == 0 {
						table[port] = li
					}
				}
			}
		}
		for _, n := range e.ASNs {
			if _, ok := a.byASN[n]; !ok {
				a.byASN[n] = li
			}
		}
		for _, p := range e.Prefixes {
			pfx, _ := netip.ParsePrefix(p)
			a.nets = append(a.nets, appNet{netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()).Masked(), li})
		}
	}
	return a, nil
}

// Category returns the category of an application label, "" when unknown.
func (a *Apps) Category(label string) string { return a.category[label] }

// Classify returns the application label of a flow from its protocol, its
// ports and the remote side's address and AS number.
func (a *Apps) Classify(proto uint8, sport, dport uint16, remote netip.Addr, remoteAS uint32) string {
	var portLabel uint16
	var table []uint16
	switch proto {
	case 6:
		table = a.tcp
	case 17:
		table = a.udp
	}
	if table != nil {
		ls, ld := table[sport], table[dport]
		switch {
		case ls != 0 && ld != 0:
			portLabel = ld
			if sport < dport {
				portLabel = ls
			}
		case ls != 0:
			portLabel = ls
		default:
			portLabel = ld
		}
	}
	if portLabel != 0 && !a.generic[portLabel] {
		return a.labels[portLabel]
	}
	var netLabel uint16
	if len(a.nets) > 0 && remote.IsValid() {
		r := remote.Unmap()
		for i := range a.nets {
			if a.nets[i].prefix.Contains(r) {
				netLabel = a.nets[i].label
				break
			}
		}
	}
	if netLabel == 0 && remoteAS != 0 {
		netLabel = a.byASN[remoteAS]
	}
	switch {
	case netLabel != 0:
		return a.labels[netLabel]
	case portLabel != 0:
		return a.labels[portLabel]
	}
	return a.labels[a.byProto[proto]]
}
